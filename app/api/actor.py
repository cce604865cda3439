"""The acting user of a request, as a dependency (app/api/auth.py sets `request.state.actor`)."""

from typing import Annotated

from fastapi import Depends, Request

from app.identity import LOCAL, LOCAL_ACTOR, Actor

__all__ = ["LOCAL", "LOCAL_ACTOR", "Actor", "ActorDep", "current_actor"]


async def current_actor(request: Request) -> Actor:
    """The acting user (async: an attribute read needs no thread); the local single user when
    the request was not authenticated (single-user mode)."""
    actor = getattr(request.state, "actor", None)
    return actor if isinstance(actor, Actor) else LOCAL_ACTOR


ActorDep = Annotated[Actor, Depends(current_actor)]
