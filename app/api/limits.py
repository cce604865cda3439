"""Upload limits enforced while the body streams in, before it reaches the disk.

FastAPI parses a multipart body (spooling each file to a temporary file) before the route and
its dependencies run, so a size check in the route comes after the whole body is on disk: a
1 GiB upload used to grow the temporary directory by 1 GiB before its 413. Routes of a router
with `route_class=LimitedUploadRoute` instead refuse a declared Content-Length over the request
limit before reading a byte, and parse the body with a parser that stops at the first byte over
the limit of one file or of the whole request, and at the first file or form field too many.
What was spooled by then is closed (and so deleted) at once; the route never runs.
"""

from collections.abc import AsyncGenerator, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request, Response
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.types import Receive, Scope

from app.api.responses import DocumentedRoute
from app.config import Settings
from app.errors import HistocrError, UploadTooLarge
from app.schemas.text import display_filename

F = TypeVar("F", bound=Callable[..., Any])

#: The attribute `page_files_limit` puts on an endpoint.
_PAGE_FILES = "histocr_files_limit_is_pages"


@dataclass(frozen=True)
class UploadLimits:
    """What one upload request may hold."""

    file_bytes: int
    file_mb: float
    request_bytes: int
    request_mb: float
    files: int
    fields: int

    @classmethod
    def of(cls, settings: Settings, *, page_files: bool = False) -> "UploadLimits":
        """The limits of `settings`; `page_files`: one file per page of a document is allowed."""
        files = settings.max_pages_per_document if page_files else settings.max_files_per_upload
        return cls(
            file_bytes=settings.max_upload_bytes,
            file_mb=settings.max_upload_mb,
            request_bytes=settings.max_request_bytes,
            request_mb=settings.max_request_mb,
            files=files,
            fields=settings.max_form_fields,
        )

    def request_too_large(self, declared: int | None = None) -> UploadTooLarge:
        """The refusal of a request body over the request limit."""
        size = f" ({declared:,} bytes)" if declared is not None else ""
        return UploadTooLarge(
            f"the upload{size} is larger than the limit of {self.request_mb:g} MB for one "
            "request; send the files in several uploads"
        )


def page_files_limit(endpoint: F) -> F:
    """Mark an upload route that takes one file per page: its file limit is the page limit."""
    setattr(endpoint, _PAGE_FILES, True)
    return endpoint


class LimitedUploadRoute(DocumentedRoute):
    """A route whose request body is read under the upload limits of the app's settings (and
    whose OpenAPI entry lists the errors it implies, as a DocumentedRoute's does)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        page_files = bool(getattr(self.endpoint, _PAGE_FILES, False))

        async def limited_handler(request: Request) -> Response:
            settings: Settings = request.app.state.settings
            limits = UploadLimits.of(settings, page_files=page_files)
            declared = _content_length(request.headers)
            if declared is not None and declared > limits.request_bytes:
                raise limits.request_too_large(declared)  # before a byte is read
            limited = LimitedRequest(request.scope, request.receive, limits)
            try:
                return await handle(limited)
            except Exception:
                # FastAPI turns any error while parsing a body into a 400 "error parsing the
                # body"; the limit that stopped the parser is the answer.
                if limited.refusal is not None:
                    raise limited.refusal from None
                raise

        return limited_handler


class LimitedRequest(Request):
    """A request whose body stream and multipart form are read under `limits`."""

    def __init__(self, scope: Scope, receive: Receive, limits: UploadLimits) -> None:
        super().__init__(scope, receive)
        self.limits = limits
        self.refusal: HistocrError | None = None

    def refuse(self, error: HistocrError) -> MultiPartException:
        """Remember why reading stopped; the exception to raise out of the parser."""
        if self.refusal is None:
            self.refusal = error
        return MultiPartException(error.message)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        """The body, stopped at the first chunk over the request limit."""
        received = 0
        async for chunk in super().stream():
            received += len(chunk)
            if received > self.limits.request_bytes:
                raise self.refuse(self.limits.request_too_large())
            yield chunk

    async def _get_form(
        self,
        *,
        max_files: int | float = 1000,
        max_fields: int | float = 1000,
        max_part_size: int = 1024 * 1024,
    ) -> FormData:
        """The form, parsed with the limits of the settings (not Starlette's defaults)."""
        if self._form is not None:
            return self._form
        content_type, _ = parse_options_header(self.headers.get("Content-Type"))
        if content_type != b"multipart/form-data":
            return await super()._get_form(
                max_files=self.limits.files,
                max_fields=self.limits.fields,
                max_part_size=max_part_size,
            )
        try:
            async with aclosing(self.stream()) as stream:
                parser = LimitedMultiPartParser(
                    self.headers, stream, request=self, max_part_size=max_part_size
                )
                self._form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(status_code=400, detail=exc.message) from exc
        return self._form


class LimitedMultiPartParser(MultiPartParser):
    """Starlette's multipart parser, stopping at the first byte, file or field over a limit.

    The callbacks run before the parser writes a chunk to a file, so no file ever holds more
    than the limit; Starlette closes the files made so far when the parser raises.
    """

    def __init__(
        self,
        headers: Headers,
        stream: AsyncGenerator[bytes, None],
        *,
        request: LimitedRequest,
        max_part_size: int,
    ) -> None:
        limits = request.limits
        super().__init__(
            headers,
            stream,
            max_files=float("inf"),  # counted below, to answer with our own message
            max_fields=float("inf"),
            max_part_size=max_part_size,
        )
        self.request = request
        self.limits = limits
        self.files = 0
        self.fields = 0
        self.file_bytes = 0

    def on_part_begin(self) -> None:
        super().on_part_begin()
        self.file_bytes = 0

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        part = self._current_part
        if part.file is not None:
            self.files += 1
            if self.files > self.limits.files:
                raise self.request.refuse(
                    UploadTooLarge(
                        f"more than {self.limits.files} files in one upload; "
                        "send them in several uploads"
                    )
                )
        else:
            self.fields += 1
            if self.fields > self.limits.fields:
                raise self.request.refuse(
                    UploadTooLarge(f"more than {self.limits.fields} form fields in one upload")
                )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._current_part
        if part.file is not None:
            self.file_bytes += end - start
            if self.file_bytes > self.limits.file_bytes:
                name = display_filename(part.file.filename, "upload")
                raise self.request.refuse(
                    UploadTooLarge(
                        f"{name}: larger than the upload limit of {self.limits.file_mb:g} MB"
                    )
                )
        elif len(part.data) + end - start > self.max_part_size:
            raise self.request.refuse(
                UploadTooLarge(
                    f"form field {part.field_name[:100]!r} is longer than "
                    f"{self.max_part_size:,} bytes"
                )
            )
        super().on_part_data(data, start, end)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None  # absent or malformed: the server's HTTP parser answers for the latter
    return int(value)
