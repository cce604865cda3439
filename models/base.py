"""The one small interface every engine implements, and the values that cross it."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: Key an engine may add to an extracted record: the input line (1-based) it came from.
LINE_KEY = "line"
#: Key an extraction answer may carry beside "records": one object per record, naming what
#: produced each filled field (``{"surname": "crf", "address": "rule:house-heading"}``).
PROVENANCE_KEY = "provenance"


@dataclass(frozen=True)
class EngineRequest:
    """What a stage asks of an engine: a prompt, and/or a page image, and/or a text."""

    prompt: str | None = None
    system: str | None = None
    image_path: Path | None = None
    #: The resolution the page image was rendered at (None: unknown).
    image_dpi: int | None = None
    text: str | None = None
    json_schema: Mapping[str, Any] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextLine:
    """One output line with where it stands on the page image and how sure the engine was."""

    text: str
    #: The line as printed, where `text` is regularised (ſ → s); None when they are the same.
    diplomatic: str | None = None
    #: (x0, y0, x1, y1) in page-image pixels (the image the page was rendered to).
    bbox: tuple[int, int, int, int] | None = None
    #: The engine's confidence, 0–1: the mean over the line's words, and its weakest word.
    confidence: float | None = None
    min_confidence: float | None = None
    #: "body" for the page's text; "header" for running heads and page numbers.
    kind: str = "body"


@dataclass(frozen=True)
class EngineResult:
    """What an engine produced for one request, with how it was produced."""

    text: str
    model: str | None
    latency_s: float
    finish_reason: str = "stop"
    tokens_in: int | None = None
    tokens_out: int | None = None
    attempts: int = 1
    raw: Any = None
    #: The text's lines with their geometry, from engines that know it (OCR with layout).
    lines: tuple[TextLine, ...] | None = None
    #: What the engine found and did to the page: crop box, deskew angle, scale (recorded).
    page_layout: Mapping[str, Any] | None = None


class EngineError(Exception):
    """An engine could not produce a usable result for a request."""

    def __init__(self, message: str, *, retryable: bool = True, attempts: int = 1) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.attempts = attempts


class EngineNotAvailable(EngineError):
    """The engine is not installed or not configured on this machine."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@runtime_checkable
class Engine(Protocol):
    """Turns requests into results; knows nothing of stages, prompts' meaning or the database."""

    name: str

    def describe(self) -> dict[str, Any]:
        """Model name and parameters, to be recorded with every result (never secrets)."""
        ...

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """Run a batch; one result or one error per request, in order."""
        ...
