"""`histocr users …` and `histocr tokens …`: accounts, managed on the server's own machine.

Whoever can run these can read the database, so they act as the local administrator (their
changes are in the audit trail as `local`). Secrets go to stdout alone on one line; everything
else a person reads goes to stderr, so `TOKEN=$(histocr tokens create NAME)` just works.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import get_settings
from app.db import audit  # noqa: F401  (the audit trail's flush hook)
from app.db.accounts import ApiToken, User
from app.db.session import session_scope
from app.errors import HistocrError
from app.identity import LOCAL_ACTOR
from app.services import accounts


@contextmanager
def _session() -> Iterator[Session]:
    settings = get_settings()
    from app.cli.serve import upgrade_database

    upgrade_database(settings)
    try:
        with session_scope(settings.resolved_database_url) as session:
            session.info["actor"] = LOCAL_ACTOR
            yield session
    except HistocrError as exc:
        raise click.ClickException(exc.message) from exc


@click.group()
def users() -> None:
    """Create and manage users (run on the server's machine)."""


@users.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="A site administrator (sees and manages all).")
def create_user(name: str, admin: bool) -> None:
    """Create a user and print its one-time password (alone on stdout)."""
    with _session() as session:
        user, password = accounts.create_user(session, name, admin=admin)
    kind = "administrator" if admin else "user"
    click.echo(f"created {kind} {user.name}; password (shown once):", err=True)
    click.echo(password)


@users.command("list")
def list_users() -> None:
    """List users: name, administrator, disabled, quotas."""
    with _session() as session:
        for user in session.scalars(select(User).order_by(User.id)):
            flags = [f for f, on in (("admin", user.is_admin), ("disabled", user.disabled)) if on]
            quota = f"uploads/day={user.quota_uploads_per_day} runs/day={user.quota_runs_per_day}"
            click.echo(f"{user.id}\t{user.name}\t{','.join(flags) or '-'}\t{quota}")


@users.command("password")
@click.argument("name")
def reset_password(name: str) -> None:
    """Give a user a new random password (printed once) and log out its browsers."""
    with _session() as session:
        user = accounts.user_named(session, name)
        password = accounts.new_password()
        accounts.set_password(session, user, password)
    click.echo(f"new password for {name} (shown once):", err=True)
    click.echo(password)


@users.command("update")
@click.argument("name")
@click.option("--admin/--no-admin", default=None, help="Make or unmake a site administrator.")
@click.option("--disable/--enable", default=None, help="Lock the account out (or let it in).")
@click.option("--uploads-per-day", type=click.IntRange(min=0), help="Upload quota (files).")
@click.option("--runs-per-day", type=click.IntRange(min=0), help="Run quota.")
@click.option("--no-quota", is_flag=True, help="Remove both quotas.")
def update_user(
    name: str,
    admin: bool | None,
    disable: bool | None,
    uploads_per_day: int | None,
    runs_per_day: int | None,
    no_quota: bool,
) -> None:
    """Change a user's rights and quotas."""
    with _session() as session:
        user = accounts.user_named(session, name)
        if admin is not None:
            user.is_admin = admin
        if disable is not None:
            user.disabled = disable
        if no_quota:
            user.quota_uploads_per_day = user.quota_runs_per_day = None
        if uploads_per_day is not None:
            user.quota_uploads_per_day = uploads_per_day
        if runs_per_day is not None:
            user.quota_runs_per_day = runs_per_day
    click.echo(f"updated {name}", err=True)


@click.group()
def tokens() -> None:
    """Create, list and revoke API tokens (run on the server's machine)."""


@tokens.command("create")
@click.argument("name")
@click.option("--read-only", is_flag=True, help="May only read (for harvesting scripts).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), help="Lifetime.")
@click.option("--label", default="", help="What the token is for (shown in lists).")
def create_token(name: str, read_only: bool, expires_days: float | None, label: str) -> None:
    """Print a new API token for user NAME, alone on one line of stdout (shown once)."""
    with _session() as session:
        user = accounts.user_named(session, name)
        _, secret = accounts.create_token(
            session, user, name=label, read_only=read_only, expires_days=expires_days
        )
    click.echo(secret)


@tokens.command("list")
@click.argument("name")
def list_tokens(name: str) -> None:
    """List a user's tokens (their first characters, never the secret)."""
    with _session() as session:
        user = accounts.user_named(session, name)
        rows = session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        )
        for token in rows:
            state = "revoked" if token.revoked_at else "active"
            scope = "read-only" if token.read_only else "read-write"
            expires = token.expires_at.isoformat() if token.expires_at else "never"
            click.echo(
                f"{token.id}\t{token.prefix}…\t{scope}\t{state}\texpires {expires}\t{token.name}"
            )


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(min=1))
def revoke_token(token_id: int) -> None:
    """Revoke a token by its id (from `histocr tokens list`)."""
    with _session() as session:
        accounts.revoke_token(session, LOCAL_ACTOR, token_id)
    click.echo(f"revoked token {token_id}", err=True)
