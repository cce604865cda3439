"""Users, tokens, memberships and the audit trail as the API shows them (never a secret)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from app.db.accounts import Role
from app.schemas.text import Name

UserName = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")


def _not_null(value: bool | None) -> bool | None:
    if value is None:
        raise ValueError("must be true or false (leave it out to keep it)")
    return value


#: A flag a PATCH may leave out (unchanged), but never null: its column is not nullable, and
#: null was stored as such (a 500).
FlagChange = Annotated[
    StrictBool | None, AfterValidator(_not_null), WithJsonSchema({"type": "boolean"})
]


class Me(BaseModel):
    """Who the caller is and how the server authenticates."""

    id: int | None
    name: str
    is_admin: bool
    read_only: bool
    mode: Literal["single-user", "authenticated"]


class UserPublic(BaseModel):
    """A user (its password hash is never shown)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    is_admin: bool
    disabled: bool
    quota_uploads_per_day: int | None
    quota_runs_per_day: int | None
    created_at: datetime


class UserCreate(BaseModel):
    """A new user; the answer carries a one-time password."""

    name: str = UserName
    # Strict (here and below): JSON `1` or "yes" is not a yes, nor `true` a number; the
    # OpenAPI document says boolean and number, and schemathesis holds the API to it.
    is_admin: StrictBool = False


class UserCreated(UserPublic):
    """A new user with the password to hand over (shown once)."""

    password: str


class UserUpdate(BaseModel):
    """What an administrator may change of a user (fields left out stay as they are)."""

    is_admin: FlagChange = None
    disabled: FlagChange = None
    quota_uploads_per_day: int | None = Field(default=None, ge=0, le=1_000_000, strict=True)
    quota_runs_per_day: int | None = Field(default=None, ge=0, le=1_000_000, strict=True)


class TokenCreate(BaseModel):
    """A new API token for the caller."""

    # One line without control characters (PostgreSQL cannot store NUL: it was a 500).
    name: Annotated[Name, Field(max_length=100)] = ""
    read_only: StrictBool = False
    expires_days: float | None = Field(default=None, gt=0, le=3650, strict=True)


class TokenPublic(BaseModel):
    """A token as listed: its first characters, never the secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    prefix: str
    name: str
    read_only: bool
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class TokenCreated(TokenPublic):
    """A new token with its secret (shown once: send it as `Authorization: Bearer …`)."""

    token: str


class MemberPublic(BaseModel):
    """A user's role in a project."""

    user_id: int
    name: str
    role: Role


class MemberSet(BaseModel):
    """The role to give."""

    role: Role


class AuditEventPublic(BaseModel):
    """One entry of the audit trail."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: int | None
    project_id: int | None
    detail: dict[str, Any] | None
