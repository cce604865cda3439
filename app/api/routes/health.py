"""Liveness: can the service reach its database and its broker?"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.db.session import get_engine
from app.schemas.health import HealthReport

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "the database or the broker is down"}},
)
def healthz(request: Request) -> JSONResponse:
    """200 when the database and the broker answer, 503 otherwise, with what failed."""
    settings = request.app.state.settings
    checks: dict[str, Any] = {}
    try:
        with get_engine(settings.resolved_database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = {"ok": True, "dialect": connection.dialect.name}
    except Exception as exc:  # reported, not raised: this route exists to say what is wrong
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    try:
        celery = request.app.state.celery
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
        checks["broker"] = {"ok": True, "transport": str(connection.transport_cls)}
    except Exception as exc:
        checks["broker"] = {"ok": False, "error": type(exc).__name__}
    ok = all(check["ok"] for check in checks.values())
    body = {"status": "ok" if ok else "unavailable", **checks}
    return JSONResponse(body, status_code=200 if ok else 503)
