"""Accounts over the API: who am I, my tokens, users (administrators), project members, and
the audit trail."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response, status
from sqlalchemy import select

from app.api.actor import ActorDep
from app.api.auth import auth_required
from app.api.deps import ProjectDep, RowId, SessionDep, SettingsDep, found
from app.api.responses import DocumentedRoute, errors
from app.db.accounts import ApiToken, AuditEvent, Membership, Role, User
from app.db.tables import MAX_ID
from app.errors import Forbidden, InvalidRequest
from app.schemas.accounts import (
    AuditEventPublic,
    Me,
    MemberPublic,
    MemberSet,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserCreated,
    UserPublic,
    UserUpdate,
)
from app.services import accounts

router = APIRouter(tags=["accounts"], route_class=DocumentedRoute)
UserNamePath = Annotated[str, Path(min_length=1, max_length=64)]


def _forget_credentials(request: Request) -> None:
    auth = request.scope.get("state", {}).get("auth")
    if auth is not None:
        auth.invalidate()


@router.get("/me", response_model=Me)
def me(actor: ActorDep, settings: SettingsDep) -> Me:
    """The caller: a user, or the local single user when no account is needed."""
    single = actor.user_id is None and not auth_required(settings)
    return Me(
        id=actor.user_id,
        name=actor.name,
        is_admin=actor.is_admin,
        read_only=actor.read_only,
        mode="single-user" if single else "authenticated",
    )


def _own_user(session: SessionDep, actor: ActorDep) -> User:
    if actor.user_id is None:
        raise InvalidRequest(
            "single-user mode has no tokens: create a user first (histocr users create NAME)"
        )
    return session.get_one(User, actor.user_id)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(session: SessionDep, actor: ActorDep) -> list[ApiToken]:
    """The caller's tokens (first characters only), newest first."""
    if actor.user_id is None:
        return []
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == actor.user_id).order_by(ApiToken.id.desc())
        )
    )


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, session: SessionDep, actor: ActorDep) -> TokenCreated:
    """A new token for the caller; its secret is in this answer only."""
    user = _own_user(session, actor)
    token, secret = accounts.create_token(
        session, user, name=body.name, read_only=body.read_only, expires_days=body.expires_days
    )
    return TokenCreated(**TokenPublic.model_validate(token).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(
    token_id: RowId, session: SessionDep, actor: ActorDep, request: Request
) -> Response:
    """Revoke a token (at once in this process, within seconds in the others)."""
    accounts.revoke_token(session, actor, token_id)
    _forget_credentials(request)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[UserPublic])
def list_users(session: SessionDep, actor: ActorDep) -> list[User]:
    """Every user (administrators only)."""
    accounts.require_admin(actor)
    return list(session.scalars(select(User).order_by(User.id)))


@router.post(
    "/users", status_code=status.HTTP_201_CREATED, response_model=UserCreated, responses=errors(409)
)
def create_user(
    body: UserCreate, session: SessionDep, actor: ActorDep, request: Request
) -> UserCreated:
    """A new user with a one-time password (administrators only; in single-user mode the
    local administrator creates the first one, which ends single-user mode)."""
    accounts.require_admin(actor)
    user, password = accounts.create_user(session, body.name, admin=body.is_admin)
    _forget_credentials(request)
    return UserCreated(**UserPublic.model_validate(user).model_dump(), password=password)


@router.patch("/users/{user_id}", response_model=UserPublic)
def update_user(
    user_id: RowId, body: UserUpdate, session: SessionDep, actor: ActorDep, request: Request
) -> User:
    """Change a user's rights, quotas or disable it (administrators only)."""
    accounts.require_admin(actor)
    user = found(session, User, user_id, "user")
    if user.id == actor.user_id and (body.disabled or body.is_admin is False):
        raise InvalidRequest("administrators cannot disable or demote themselves")
    for key, value in body.model_dump(exclude_unset=True).items():
        setattr(user, key, value)
    session.flush()
    _forget_credentials(request)
    return user


@router.get("/projects/{project_id}/members", response_model=list[MemberPublic])
def list_members(project: ProjectDep, session: SessionDep) -> list[MemberPublic]:
    """Who has which role in the project."""
    rows = session.execute(
        select(Membership.user_id, User.name, Membership.role)
        .join(User, User.id == Membership.user_id)
        .where(Membership.project_id == project.id)
        .order_by(User.name)
    )
    return [MemberPublic(user_id=uid, name=name, role=Role(role)) for uid, name, role in rows]


def _require_owner(session: SessionDep, actor: ActorDep, project_id: int) -> None:
    if accounts.project_role(session, actor, project_id) != Role.OWNER:
        raise Forbidden(f"managing members needs the owner role in project {project_id}")


@router.put("/projects/{project_id}/members/{user_name}", response_model=MemberPublic)
def set_member(
    project: ProjectDep,
    user_name: UserNamePath,
    body: MemberSet,
    session: SessionDep,
    actor: ActorDep,
) -> MemberPublic:
    """Give a user a role in the project (owners only)."""
    _require_owner(session, actor, project.id)
    user = accounts.user_named(session, user_name)
    accounts.set_member(session, project.id, user, body.role)
    return MemberPublic(user_id=user.id, name=user.name, role=body.role)


@router.delete(
    "/projects/{project_id}/members/{user_name}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=errors(409),
)
def remove_member(
    project: ProjectDep, user_name: UserNamePath, session: SessionDep, actor: ActorDep
) -> Response:
    """Take a user's role in the project away (owners only; the last owner stays)."""
    _require_owner(session, actor, project.id)
    accounts.remove_member(session, project.id, accounts.user_named(session, user_name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/projects/{project_id}/audit", response_model=list[AuditEventPublic])
def project_audit(
    project: ProjectDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="events older than this id")
    ] = None,
) -> list[AuditEvent]:
    """Who did what in the project, newest first."""
    query = select(AuditEvent).where(AuditEvent.project_id == project.id)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    return list(session.scalars(query.order_by(AuditEvent.id.desc()).limit(limit)))
