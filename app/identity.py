"""Who acts: the identity recorded with every change (audit trail, versions, quotas)."""

from dataclasses import dataclass

#: The author of changes made in single-user mode and from the command line.
LOCAL = "local"


@dataclass(frozen=True)
class Actor:
    """The user a request acts for: id (None for the local single user), name and rights."""

    user_id: int | None
    name: str
    is_admin: bool = True
    read_only: bool = False
    quota_uploads_per_day: int | None = None
    quota_runs_per_day: int | None = None


LOCAL_ACTOR = Actor(user_id=None, name=LOCAL, is_admin=True)
