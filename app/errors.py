"""Domain errors and how the API answers them."""

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

logger = logging.getLogger(__name__)


class HistocrError(Exception):
    """Base of the errors a user can cause and be told about."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUpload(HistocrError):
    """An upload that is empty, corrupt, of the wrong type or too big."""

    status_code = 422


class UploadTooLarge(InvalidUpload):
    """An upload over the size limit."""

    status_code = 413


class NotFound(HistocrError):
    """A project, document, page or run that does not exist."""

    status_code = 404


class Conflict(HistocrError):
    """A request that clashes with the current state (a duplicate name, a run not done)."""

    status_code = 409


class InvalidRequest(HistocrError):
    """A request whose values are not usable (unknown engine, no documents)."""

    status_code = 422


class EngineUnavailable(HistocrError):
    """An engine that is not installed or not reachable."""

    status_code = 503


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
    from app.web import TEMPLATES

    title = "Not found" if status_code == 404 else "Something went wrong"
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status_code": status_code, "title": title, "message": message},
        status_code=status_code,
    )
