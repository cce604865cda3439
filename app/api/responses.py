"""What the routes can answer besides success, declared for the OpenAPI document.

Errors every route of a kind can give are implied by `DocumentedRoute` (an id in the path can
name nothing: 404; a body can be unparseable or too large: 400, 413; anything sent can be
invalid: 422), errors every route gives go on a router (`APIRouter(responses=errors(...))`, as
the auth middleware's 401/403/429 on the API router), and a route declares only its own
(`responses=errors(409)`). Every error body has the one shape of app/schemas/errors.py.
"""

import re
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute

from app.schemas.errors import ErrorBody, ValidationErrorBody

Responses = dict[int | str, dict[str, Any]]

#: What each error status means in this API (the OpenAPI descriptions).
MEANINGS = {
    400: "The body could not be read: malformed JSON, form data or multipart.",
    401: "Credentials are missing or not valid.",
    403: "The credentials do not allow this request.",
    404: "Something the request names (in the path or the body) does not exist.",
    409: "The request clashes with what is stored (a duplicate name, a stale version).",
    413: "The body (an upload or any other) is larger than the server's limit.",
    415: "The body is not of a media type this operation reads.",
    422: "The request is not usable: its shape (a list of problems) or its content (a sentence).",
    429: "Too many requests; `Retry-After` says when to try again.",
    500: "An unexpected fault; the server's log has the details.",
    503: "A service it needs (an engine, the broker) is not reachable; try again later.",
}

#: Headers an error answer may carry besides its body.
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until the request may succeed",
        "schema": {"type": "integer", "minimum": 0},
    }
}
HEADERS = {429: _RETRY_AFTER, 503: _RETRY_AFTER}

#: Methods whose requests carry a body.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_PATH_PARAMETER = re.compile(r"{[^}]+}")


def errors(*statuses: int) -> Responses:
    """OpenAPI `responses` for these error statuses, each with its meaning and body schema."""
    return {
        status: {
            "model": ValidationErrorBody if status == 422 else ErrorBody,
            "description": MEANINGS[status],
            **({"headers": HEADERS[status]} if status in HEADERS else {}),
        }
        for status in statuses
    }


def binary(*media_types: str, description: str) -> Responses:
    """A 200 answered with a file of one of these media types (instead of JSON)."""
    schema = {"type": "string", "format": "binary"}
    return {
        200: {
            "description": description,
            "content": {media_type: {"schema": schema} for media_type in media_types},
        }
    }


def text(media_type: str, description: str) -> Responses:
    """A 200 answered with text of this media type (a CSV, a transcription) instead of JSON."""
    return {
        200: {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}
    }


def implied_errors(path: str, methods: set[str] | list[str] | None) -> Responses:
    """The errors any route with this path and these methods can answer."""
    statuses = []
    takes_body = bool(_BODY_METHODS.intersection(m.upper() for m in methods or ()))
    if takes_body:
        statuses += [400, 413]  # unreadable; over the limits (app/api/bodylimit.py, limits.py)
    if _PATH_PARAMETER.search(path):
        statuses.append(404)
    if takes_body or _PATH_PARAMETER.search(path):
        statuses.append(422)
    return errors(*statuses)


class DocumentedRoute(APIRoute):
    """A route whose OpenAPI entry lists the errors its path and method imply (see the module).

    They are added before FastAPI builds the route, so their body schemas are documented like
    any declared response; what a route or its router declares wins over what is implied.
    """

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        responses: Responses | None = None,
        methods: set[str] | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        responses = {**implied_errors(path, methods), **(responses or {})}
        super().__init__(path, endpoint, responses=responses, methods=methods, **kwargs)
