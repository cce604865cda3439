"""Values shared by the stages."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.base import EngineResult


@dataclass(frozen=True)
class StageSpec:
    """One stage of a run's pipeline as recorded in the run's config."""

    stage: str
    engine: str
    parameters: dict[str, Any] = field(default_factory=dict)
    prompt_version: str | None = None
    #: The prompt text as the run recorded it (so a run stays reproducible if files change).
    prompt: str | None = None
    source: str | None = None
    fields: tuple[str, ...] = ()
    #: What extraction reads: "text" (the source stage's), "image" (the page), or "both".
    inputs: str = "text"


@dataclass(frozen=True)
class PageInput:
    """What a stage gets for one page: its image and the text of the stage it builds on."""

    image_path: Path | None
    text: str | None = None


@dataclass(frozen=True)
class RecordOutput:
    """One record parsed from an extraction result."""

    fields: dict[str, str | None]
    line_number: int | None
    source_line: str


@dataclass(frozen=True)
class StageOutput:
    """A stage's parsed output for one page."""

    text: str
    result: EngineResult
    records: list[RecordOutput] | None = None


class StageOutputInvalid(Exception):
    """An engine answered, but the answer is not a valid output for the stage."""
