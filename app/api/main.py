"""The API router: every resource under /api/v1."""

from fastapi import APIRouter

from app.api.responses import errors
from app.api.routes import (
    accounts,
    documents,
    edits,
    exports,
    failures,
    housekeeping,
    pages,
    projects,
    recognizers,
    review,
    runs,
)

#: What every route can answer (each route adds its own, app/api/responses.py): the auth
#: middleware's refusals (app/api/auth.py: no or bad credentials, no right, a token's rate) and
#: the catch-all 500.
api_router = APIRouter(prefix="/api/v1", responses=errors(401, 403, 429, 500))
api_router.include_router(projects.router)
api_router.include_router(documents.router)
api_router.include_router(runs.router)
api_router.include_router(pages.router)
api_router.include_router(exports.router)
api_router.include_router(accounts.router)
api_router.include_router(review.router)
api_router.include_router(edits.router)
api_router.include_router(housekeeping.router)
api_router.include_router(failures.router)
api_router.include_router(recognizers.router)
