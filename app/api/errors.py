"""How the API and the UI answer errors: domain errors by their status, the rest as a 500.

Every JSON error body is `{"detail": ...}` (app/schemas/errors.py), as app/api/responses.py
declares it in the OpenAPI document.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import Match

from app.errors import HistocrError
from app.web.templates import TEMPLATES

logger = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors to status codes; answer anything else with a generic 500."""

    @app.exception_handler(HistocrError)
    async def _domain_error(request: Request, exc: HistocrError) -> Response:
        return _answer(request, exc.status_code, exc.message, exc.headers, exc.extra)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            # Starlette names only the methods of the first route whose path matched, so a
            # POST-only route hid the GET beside it (`Allow` must list every method, RFC 9110).
            headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed_methods(request))}
            exc = HTTPException(405, exc.detail, headers=headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return _answer(request, 500, "internal server error")


def _wants_html(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path in ("/healthz", "/docs", "/openapi.json"):
        return False
    return "text/html" in request.headers.get("accept", "")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):  # those of included routers too
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods.update(route.methods or ())
    return sorted(methods)


def _answer(
    request: Request,
    status_code: int,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, object] | None = None,
) -> Response:
    """JSON for API clients; a page for a person's browser on the UI's own routes."""
    if not _wants_html(request):
        content = {"detail": message} | (jsonable_encoder(extra) if extra else {})
        return JSONResponse(status_code=status_code, content=content, headers=headers)
    title = "Not found" if status_code == 404 else "Something went wrong"
    return TEMPLATES.TemplateResponse(
        request,
        "error.html",
        {"status_code": status_code, "title": title, "message": message},
        status_code=status_code,
        headers=headers,
    )
