"""How the API and the UI answer errors: domain errors by their status, the rest as a 500."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.errors import HistocrError
from app.web.templates import TEMPLATES

logger = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to status codes; answer anything else with a generic 500."""

    @app.exception_handler(HistocrError)
    async def _domain_error(request: Request, exc: HistocrError) -> Response:
        return _answer(request, exc.status_code, exc.message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(request, 500, "internal server error")


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/healthz", "/docs", "/openapi.json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _answer(request: Request, status_code: int, message: str) -> Response:
    """JSON for API clients; a page for a person's browser on the UI's own routes."""
    if not _wants_html(request):
        return JSONResponse(status_code=status_code, content={"detail": message})
    title = "Not found" if status_code == 404 else "Something went wrong"
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status_code": status_code, "title": title, "message": message},
        status_code=status_code,
    )
