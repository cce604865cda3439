"""A limit on every request body that is not an upload: JSON, a login form, anything else.

Uploads (multipart) are limited while they stream by their routes (app/api/limits.py); every
other body is read here first, up to `HISTOCR_MAX_BODY_KB`, and handed to the app only when it
fits — a 50 MB JSON body is a 413 after at most the limit was read, never parsed.
"""

from collections.abc import MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

from app.api.auth import ASGIApp, Receive, Scope, Send


class BodyLimit:
    """Refuses (413) a non-multipart request body over `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").startswith("multipart/form-data"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        body = bytearray()
        messages: list[MutableMapping[str, Any]] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> MutableMapping[str, Any]:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        kb = self.limit // 1024
        answer = JSONResponse(
            {"detail": f"the request body is larger than the limit of {kb} KB"}, status_code=413
        )
        await answer(scope, receive, send)
