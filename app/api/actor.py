"""Who is acting on a request: the name recorded with every change (audit, versions).

The accounts layer (app/api/auth.py) sets `request.state.actor`; until a request is
authenticated the author is the local single user, `local`.
"""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

LOCAL = "local"


@dataclass(frozen=True)
class Actor:
    """The user a request acts for: id (None for the local single user), name, rights."""

    user_id: int | None
    name: str
    is_admin: bool = True
    read_only: bool = False


LOCAL_ACTOR = Actor(user_id=None, name=LOCAL, is_admin=True)


async def current_actor(request: Request) -> Actor:
    """The acting user (async: an attribute read needs no thread)."""
    actor = getattr(request.state, "actor", None)
    return actor if isinstance(actor, Actor) else LOCAL_ACTOR


ActorDep = Annotated[Actor, Depends(current_actor)]
