"""Values shared by the stages."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from models.base import EngineResult
from models.stages.schema import RecordField


class StageSpec(Protocol):
    """What the stage layer reads of a stage as a run recorded it (the service's StageConfig)."""

    @property
    def stage(self) -> str: ...

    @property
    def parameters(self) -> Mapping[str, Any]: ...

    @property
    def prompt_version(self) -> str | None: ...

    #: The prompt text as the run recorded it (so a run stays reproducible if files change).
    @property
    def prompt(self) -> str | None: ...

    @property
    def fields(self) -> Sequence[str]: ...

    #: The fields with their meaning (description, example, required), in the same order;
    #: empty for runs recorded before schemas had them.
    @property
    def field_definitions(self) -> Sequence[RecordField]: ...

    #: What extraction reads: "text" (the source stage's), "image" (the page), or "both".
    @property
    def inputs(self) -> str | None: ...


@dataclass(frozen=True)
class PageInput:
    """What a stage gets for one page: its image and the text of the stage it builds on."""

    image_path: Path | None
    text: str | None = None
    #: The resolution the page image was rendered at.
    image_dpi: int | None = None


@dataclass(frozen=True)
class RecordOutput:
    """One record parsed from an extraction result."""

    fields: dict[str, str | None]
    line_number: int | None
    source_line: str
    #: What produced each filled field, where the engine says (``"crf"``, ``"rule:ditto"``).
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StageOutput:
    """A stage's parsed output for one page."""

    text: str
    result: EngineResult
    records: list[RecordOutput] | None = None


class StageOutputInvalid(Exception):
    """An engine answered, but the answer is not a valid output for the stage."""
