"""Users, passwords, API tokens, browser sessions and project roles."""

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from app.db.accounts import ApiToken, Membership, Role, User, WebSession
from app.db.session import utcnow
from app.errors import Conflict, Forbidden, InvalidRequest, NotFound
from app.identity import Actor

#: Tokens start with this, so a leaked one is recognisable (secret scanners, logs).
TOKEN_PREFIX = "hocr_"
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
SESSION_DAYS = 14

_HASHER = PasswordHasher()
#: Verified against when a user does not exist, so a login takes as long either way.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def sha256(secret: str) -> str:
    """The stored form of a high-entropy secret (token, session key): a plain SHA-256 is enough
    for 256 random bits; passwords use argon2."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_user_name(name: str) -> str:
    """A user name: 1–64 letters, digits and `._@-`, starting with a letter or digit."""
    if not USER_NAME.match(name):
        raise InvalidRequest(
            "a user name is 1-64 characters: letters, digits and . _ @ -, "
            "starting with a letter or digit"
        )
    return name


def any_user(session: Session) -> bool:
    """Whether at least one user exists (no user: single-user mode may apply)."""
    return bool(session.scalar(select(exists().where(User.id.is_not(None)))))


def create_user(
    session: Session, name: str, *, admin: bool = False, password: str | None = None
) -> tuple[User, str]:
    """A new user and its password (a random one when none is given, to be shown once)."""
    check_user_name(name)
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict(f"a user called {name!r} exists")
    password = password or new_password()
    user = User(name=name, password_hash=_HASHER.hash(password), is_admin=admin)
    session.add(user)
    session.flush()
    return user, password


def new_password() -> str:
    """A random password to hand over once (96 bits)."""
    return secrets.token_urlsafe(12)


def set_password(session: Session, user: User, password: str) -> None:
    """Replace a user's password and end its browser sessions."""
    if len(password) < 8:
        raise InvalidRequest("a password has at least 8 characters")
    user.password_hash = _HASHER.hash(password)
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()


def user_named(session: Session, name: str) -> User:
    """The user called `name`, or NotFound."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user called {name!r}")
    return user


def authenticate(session: Session, name: str, password: str) -> User | None:
    """The enabled user with this name and password, else None (same work either way)."""
    user = session.scalar(select(User).where(User.name == name))
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled:
        return None
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = _HASHER.hash(password)
    return user


def actor_for(user: User, *, read_only: bool = False) -> Actor:
    """The acting identity of a user (through a token or a browser session)."""
    return Actor(
        user_id=user.id,
        name=user.name,
        is_admin=user.is_admin,
        read_only=read_only,
        quota_uploads_per_day=user.quota_uploads_per_day,
        quota_runs_per_day=user.quota_runs_per_day,
    )


def create_token(
    session: Session,
    user: User,
    *,
    name: str = "",
    read_only: bool = False,
    expires_days: float | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for `user`; the secret is returned once and stored only as a hash."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        token_hash=sha256(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        name=name[:100],
        read_only=read_only,
        expires_at=utcnow() + timedelta(days=expires_days) if expires_days else None,
    )
    session.add(token)
    session.flush()
    return token, secret


def token_user(session: Session, secret: str, now: datetime) -> tuple[User, ApiToken] | None:
    """The user and token of a bearer secret that is valid now, else None."""
    row = session.execute(
        select(User, ApiToken)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == sha256(secret))
    ).first()
    if row is None:
        return None
    user, token = row
    if user.disabled or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    return user, token


def revoke_token(session: Session, actor: Actor, token_id: int) -> ApiToken:
    """Revoke one of the actor's tokens (an administrator may revoke anyone's)."""
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.user_id and not actor.is_admin):
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    session.flush()
    return token


@dataclass(frozen=True)
class NewSession:
    """A browser session just created: the cookie's secret and the CSRF token."""

    key: str
    csrf_token: str
    expires_at: datetime


def start_session(session: Session, user: User) -> NewSession:
    """Log a browser in: a random cookie key (stored hashed) and a CSRF token."""
    key = secrets.token_urlsafe(32)
    row = WebSession(
        user_id=user.id,
        key_hash=sha256(key),
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + timedelta(days=SESSION_DAYS),
    )
    session.add(row)
    session.flush()
    return NewSession(key, row.csrf_token, row.expires_at)


def session_user(session: Session, key: str, now: datetime) -> tuple[User, WebSession] | None:
    """The user and session of a cookie key that is valid now, else None."""
    row = session.execute(
        select(User, WebSession)
        .join(WebSession, WebSession.user_id == User.id)
        .where(WebSession.key_hash == sha256(key))
    ).first()
    if row is None or row[0].disabled or row[1].expires_at <= now:
        return None
    return row[0], row[1]


def end_session(session: Session, key: str) -> None:
    """Log a browser out."""
    session.execute(delete(WebSession).where(WebSession.key_hash == sha256(key)))


def project_role(session: Session, actor: Actor, project_id: int) -> Role | None:
    """The actor's role in a project: owner for administrators, else its membership's."""
    if actor.is_admin:
        return Role.OWNER
    if actor.user_id is None:
        return None
    role = session.scalar(
        select(Membership.role).where(
            Membership.project_id == project_id, Membership.user_id == actor.user_id
        )
    )
    return Role(role) if role else None


def require_role(session: Session, actor: Actor, project_id: int, needed: Role) -> Role:
    """The actor's role if it is at least `needed`; a project the actor may not see is a 404
    (its existence is not disclosed), one it may only see a 403."""
    role = project_role(session, actor, project_id)
    if role is None:
        raise NotFound(f"project {project_id} not found")
    if role.rank < needed.rank:
        raise Forbidden(f"this needs the {needed.value} role in project {project_id}")
    return role


def visible_project_ids(session: Session, actor: Actor) -> list[int] | None:
    """The projects the actor may see (None: all of them)."""
    if actor.is_admin:
        return None
    return list(
        session.scalars(select(Membership.project_id).where(Membership.user_id == actor.user_id))
    )


def set_member(session: Session, project_id: int, user: User, role: Role) -> Membership:
    """Give a user a role in a project (or change it)."""
    member = session.get(Membership, (project_id, user.id))
    if member is None:
        member = Membership(project_id=project_id, user_id=user.id, role=role.value)
        session.add(member)
    else:
        member.role = role.value
    session.flush()
    return member


def remove_member(session: Session, project_id: int, user: User) -> None:
    """Take a user's role in a project away; the last owner stays."""
    member = session.get(Membership, (project_id, user.id))
    if member is None:
        raise NotFound(f"{user.name} is not a member of project {project_id}")
    if member.role == Role.OWNER and _owners(session, project_id) == 1:
        raise Conflict("a project keeps at least one owner")
    session.delete(member)
    session.flush()


def _owners(session: Session, project_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Membership.project_id == project_id, Membership.role == Role.OWNER
            )
        )
        or 0
    )


def require_admin(actor: Actor) -> None:
    """Refuse (403) anyone but a site administrator."""
    if not actor.is_admin:
        raise Forbidden("this needs a site administrator")
