"""The API router: every resource under /api/v1."""

from fastapi import APIRouter

from app.api.routes import documents, projects, runs

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(projects.router)
api_router.include_router(documents.router)
api_router.include_router(runs.router)
