"""Runs, their progress, results and metrics."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field

from app.db.tables import MAX_ID
from app.pipeline.run_config import RunConfig, StageRequest
from app.schemas.text import Name


class RunCreate(BaseModel):
    """A run request; leave `stages` out for Tesseract OCR then rules extraction."""

    name: Name = ""
    document_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, description="documents to process; all of the project's when left out"
    )
    stages: list[StageRequest] | None = None


class Progress(BaseModel):
    """How far a run has come, in pages × stages."""

    total: int
    pending: int
    queued: int
    running: int
    done: int
    failed: int
    skipped: int
    documents_waiting: int
    fraction: float


class RunPublic(BaseModel):
    """A run: its immutable configuration and where it stands."""

    id: int
    project_id: int
    name: str
    status: str
    config: RunConfig
    created_at: datetime
    finished_at: datetime | None
    document_ids: list[int]
    #: The resolutions the run's pages were rendered at (read from the pages themselves).
    page_dpi: list[int] = Field(default_factory=list)
    progress: Progress
    stages: dict[str, dict[str, int]]
    totals: dict[str, float | int | None]
    summary: dict[str, Any] | None = None


class StageResultPublic(BaseModel):
    """One stage's result on one page."""

    stage: str
    status: str
    engine: str
    model: str | None
    prompt_version: str | None
    parameters: dict[str, Any]
    text: str | None
    tokens_in: int | None
    tokens_out: int | None
    latency_s: float | None
    attempts: int
    error: str | None
    #: What the engine found on the page and did to it: crop box, deskew angle, scale.
    page_layout: dict[str, Any] | None = None


class LinePublic(BaseModel):
    """A line of the page's text: its box on the page image and the engine's confidence."""

    id: int
    stage: str
    position: int
    text: str
    diplomatic: str | None = Field(
        default=None, description="the line as printed, where text is regularised (ſ → s)"
    )
    bbox: list[int] | None = Field(description="[x0, y0, x1, y1] in page-image pixels")
    confidence: float | None = Field(description="mean word confidence, 0–1")
    min_confidence: float | None = Field(description="the weakest word's confidence, 0–1")
    kind: str = Field(description="body, or header for running heads and page numbers")


class RecordPublic(BaseModel):
    """An extracted record with its provenance."""

    id: int
    position: int
    line_number: int | None
    source_line: str
    fields: dict[str, Any]


class PageResult(BaseModel):
    """Everything a run produced for one page, with its scores against ground truth."""

    run_id: int
    page_id: int
    document_id: int
    number: int
    image_url: str | None
    preview_url: str | None
    stages: list[StageResultPublic]
    records: list[RecordPublic]
    #: The lines of the latest text stage that knows where its lines are (OCR with layout).
    lines: list[LinePublic] = Field(default_factory=list)
    ground_truth: str | None
    metrics: dict[str, Any]
