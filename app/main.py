"""The FastAPI application: REST API, browser UI and health check."""

import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from app.api.auth import AuthMiddleware
from app.api.bodylimit import BodyLimit
from app.api.errors import install_error_handlers
from app.api.idempotency import install as install_idempotency
from app.api.main import api_router
from app.api.routes.health import router as health_router
from app.api.security import SecurityHeaders
from app.config import Settings, get_settings
from app.pipeline.celery_app import create_celery
from app.pipeline.dispatch import CeleryDispatcher
from app.web.accounts import router as accounts_router
from app.web.pages import router as web_router
from app.web.templates import FRONTEND

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(settings: Settings | None = None, lifespan: Lifespan | None = None) -> FastAPI:
    """Build the app for the given settings (the environment's by default)."""
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    # /docs and /redoc with Swagger UI and ReDoc served from the installed package, not from a
    # CDN: archives often run without internet access, where the CDN's pages stay blank.
    app = FastAPIOffline(
        title="histocr",
        version="0.1.0",
        description="OCR, post-correction and record extraction for historical documents",
        lifespan=lifespan,
        static_url="/docs-assets",
        favicon_url="/static/favicon.svg",
    )
    app.state.settings = settings
    app.state.celery = create_celery(settings)
    app.state.dispatcher = CeleryDispatcher(app.state.celery)
    install_error_handlers(app)
    install_idempotency(app)
    app.include_router(health_router)
    app.include_router(api_router)
    app.include_router(accounts_router)
    app.include_router(web_router)
    app.mount("/static", StaticFiles(directory=FRONTEND / "static"), name="static")
    # Outermost last: the headers go on every answer, the auth middleware's own included.
    app.add_middleware(BodyLimit, limit=settings.max_body_kb * 1024)
    app.add_middleware(AuthMiddleware, settings=settings)
    app.add_middleware(SecurityHeaders)
    return app
