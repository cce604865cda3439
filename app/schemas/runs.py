"""Runs, their progress, results and metrics."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from app.db.tables import MAX_ID
from app.pipeline.run_config import RunConfig, StageRequest
from app.schemas.text import Name


class RunCreate(BaseModel):
    """A run request; leave `stages` out for Tesseract OCR then CRF extraction."""

    name: Name = ""
    # Strict: JSON `true` or "3" is not a document id (a lax int would take them for 1 and 3).
    document_ids: list[Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]] | None = Field(
        default=None,
        description="documents to process; all of the project's when left out",
        json_schema_extra={"minItems": 1},  # documented; the service says why it refuses []
    )
    stages: list[StageRequest] | None = Field(default=None, json_schema_extra={"minItems": 1})


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
    #: 1, 2, … per project ("Run 3" of the project); None for a run made outside the API.
    number: int | None = None
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


class DiffOpPublic(BaseModel):
    """A run of one kind of character operation: `gt` the ground truth it covers, `ocr` the
    OCR text (empty for an insertion or a deletion respectively)."""

    op: Literal["equal", "insert", "delete", "substitute"]
    gt: str
    ocr: str


class LineDiff(BaseModel):
    """A line's diff raw (whitespace folded) and in the normalised form the metric uses."""

    raw: list[DiffOpPublic]
    normalized: list[DiffOpPublic]


class PageCer(BaseModel):
    """A page's CER against its ground truth: its own file, or its slice of the document's
    (then the counts are the page's share of the document alignment and add up to the
    document's CER over its pages)."""

    source: Literal["page", "document"]
    stage: str = Field(description="the text stage scored (the one whose lines are shown)")
    cer: float
    cer_normalized: float
    cer_distance: int
    cer_reference_length: int
    cer_normalized_distance: int
    cer_normalized_reference_length: int
    unsure_lines: int = Field(description="lines whose aligned ground truth is unsure")


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
    gt_text: str | None = Field(
        default=None,
        description="the ground-truth line aligned to this one (raw-normalised); null without "
        "ground truth, empty where nothing was aligned to it",
    )
    diff: LineDiff | None = Field(
        default=None, description="character diff of the line against gt_text"
    )
    gt_unsure: bool = Field(
        default=False,
        description="more than half of the line's aligned characters are insertions or "
        "deletions: the alignment found no counterpart, so gt_text is a guess",
    )
    version: int = Field(default=1, description="1 is the engine's text; each edit adds one")
    edited: bool = Field(default=False, description="whether a reviewer changed the text")
    engine_text: str = Field(default="", description="the text as the engine wrote it")
    record_ids: list[int] = Field(
        default_factory=list, description="the records extracted from this line"
    )
    unparsed: bool = Field(
        default=False,
        description="a body line of a run that extracts records, with no record from it",
    )


class RecordPublic(BaseModel):
    """An extracted record with its provenance, as its latest version has it."""

    id: int
    position: int
    line_number: int | None = Field(description="the line of the extraction's source text, from 1")
    line_ids: list[int] = Field(
        default_factory=list, description="the page's line(s) the record came from"
    )
    source_line: str
    fields: dict[str, Any]
    version: int = Field(default=1, description="1 is the engine's record; each change adds one")
    source: str = Field(default="engine", description="engine, or edit for a reviewer's record")
    deleted: bool = False
    provenance: dict[str, str] = Field(
        default_factory=dict,
        description="what produced each filled field: a model (crf, openai, ...), a rule "
        "(rule:house-heading, rule:ditto, ...), or edit for a reviewer's value",
    )


class Verification(BaseModel):
    """Who marked a page verified, and when."""

    author: str
    at: datetime


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
    #: The page's ground truth as aligned to its lines: its own, or its slice of the document's.
    ground_truth_aligned: str | None = None
    gt_cer: PageCer | None = None
    estimated_cer: float | None = Field(
        default=None,
        description="estimated CER of the page's latest text without ground truth (0–1; "
        "app/pipeline/quality.py), as in the run's review queue",
    )
    verified: Verification | None = Field(
        default=None, description="set once a reviewer has marked the page verified"
    )
    page_width: int = Field(description="the page image's width in pixels (the boxes' frame)")
    page_height: int = Field(description="the page image's height in pixels")
