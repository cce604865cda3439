"""The tables: projects, documents, pages, ground truth, runs, stage results, records."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from app.db.session import Base, UTCDateTime, utcnow
from app.pipeline.run_config import RunConfig

#: Row ids are 32-bit integers in both databases (SQLite allows more, PostgreSQL does not):
#: ids a client sends are checked against this at the edge.
MAX_ID = 2_147_483_647

DEFAULT_SCHEMA_FIELDS = ["first and middle names", "surname", "occupation", "address"]


class DocumentStatus(StrEnum):
    """Where a document stands in ingest."""

    UPLOADED = "uploaded"
    INGESTING = "ingesting"
    READY = "ready"
    FAILED = "failed"


class StageStatus(StrEnum):
    """Where one (run, page, stage) stands."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


TERMINAL_STAGE_STATUSES = (StageStatus.DONE, StageStatus.FAILED, StageStatus.SKIPPED)


class RunStatus(StrEnum):
    """Where a run stands as a whole."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    PARTIAL = "partial"
    FAILED = "failed"


#: A run in one of these has been evaluated: its status and metrics were stored together.
SETTLED_RUN_STATUSES = (RunStatus.DONE, RunStatus.PARTIAL, RunStatus.FAILED)


class GroundTruthKind(StrEnum):
    """Transcription text or a CSV of records."""

    TEXT = "text"
    RECORDS = "records"


class RunConfigJSON(TypeDecorator[RunConfig]):
    """A run's configuration: stored as JSON, read back as the typed RunConfig (parsed once)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: RunConfig | None, dialect: Dialect) -> Any:
        return None if value is None else value.model_dump(mode="json")

    def process_result_value(self, value: Any, dialect: Dialect) -> RunConfig | None:
        return None if value is None else RunConfig.model_validate(value)


class Project(Base):
    """A collection of documents with one record schema."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    schema_fields: Mapped[list[str]] = mapped_column(
        JSON, default=lambda: list(DEFAULT_SCHEMA_FIELDS)
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    documents: Mapped[list["Document"]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="Document.id"
    )


class Document(Base):
    """One uploaded file (PDF or image); its bytes live in storage under `storage_key`."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("project_id", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(500))
    media_type: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=DocumentStatus.UPLOADED)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    page_count: Mapped[int | None] = mapped_column(Integer, default=None)
    #: Text produced elsewhere for this scan (JSON list of page texts in storage), for `import`.
    imported_text_key: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    project: Mapped[Project] = relationship(back_populates="documents")
    pages: Mapped[list["Page"]] = relationship(
        back_populates="document", cascade="all, delete-orphan", order_by="Page.number"
    )
    ground_truths: Mapped[list["GroundTruth"]] = relationship(
        back_populates="document", cascade="all, delete-orphan"
    )


class Page(Base):
    """One page of a document: an image rendered from a scan, or a page of imported text."""

    __tablename__ = "pages"
    __table_args__ = (UniqueConstraint("document_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    image_key: Mapped[str | None] = mapped_column(String(200), default=None)
    preview_key: Mapped[str | None] = mapped_column(String(200), default=None)
    #: For a page of an imported transcription (a .txt document): its text in storage.
    text_key: Mapped[str | None] = mapped_column(String(200), default=None)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    dpi: Mapped[int | None] = mapped_column(Integer, default=None)

    document: Mapped[Document] = relationship(back_populates="pages")


class GroundTruth(Base):
    """One version of a reference transcription (per document or page) or records CSV.

    An upload never replaces a row: it adds the next version of its (document, page, kind), and
    the current ground truth is the highest version, so the scores a run was evaluated with can
    always name (and show) the versions they were computed against.
    """

    __tablename__ = "ground_truths"
    __table_args__ = (
        # Version numbers are unique per (document, page, kind). The constraint covers a page's
        # versions; a document's have page_id NULL, which a unique constraint counts as distinct
        # from every other NULL, so the partial index covers those.
        UniqueConstraint("document_id", "kind", "page_id", "version"),
        Index(
            "uq_ground_truths_document_kind_version",
            "document_id",
            "kind",
            "version",
            unique=True,
            sqlite_where=text("page_id IS NULL"),
            postgresql_where=text("page_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    page_id: Mapped[int | None] = mapped_column(
        ForeignKey("pages.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(20))
    filename: Mapped[str] = mapped_column(String(500), default="")
    content: Mapped[str] = mapped_column(Text)
    #: 1, 2, … per (document, page, kind), in upload order.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    #: Who uploaded it (`local` in single-user mode and from the command line).
    author: Mapped[str] = mapped_column(String(200), default="local", server_default="local")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    document: Mapped[Document] = relationship(back_populates="ground_truths")


run_documents = Table(
    "run_documents",
    Base.metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("document_id", ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True),
)


class Run(Base):
    """One pipeline configuration applied to a set of documents; `config` never changes."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200), default="")
    #: 1, 2, … per project in creation order ("Run 3" of the project; app.services.runs).
    number: Mapped[int | None] = mapped_column(Integer, default=None)
    config: Mapped[RunConfig] = mapped_column(RunConfigJSON)
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.PENDING)
    #: The latest evaluation's scores (what run lists show); every evaluation, this one and the
    #: earlier ones, is a `RunEvaluation`.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    documents: Mapped[list[Document]] = relationship(secondary=run_documents, order_by=Document.id)


class EvaluationReason(StrEnum):
    """Why a run was scored: it finished, or someone asked to score it again."""

    FINISHED = "finished"
    RESCORE = "rescore"


class RunEvaluation(Base):
    """One scoring of a run against the ground truth current at the time. A run keeps every
    evaluation: new ground truth never changes scores already given, re-scoring adds one."""

    __tablename__ = "run_evaluations"
    __table_args__ = (UniqueConstraint("run_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    #: 1, 2, … per run.
    number: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: The scores, with the ground-truth versions they were computed against (`ground_truth`).
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)


class StageResult(Base):
    """The output of one stage on one page in one run, with how it was produced."""

    __tablename__ = "stage_results"
    __table_args__ = (UniqueConstraint("run_id", "page_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=StageStatus.PENDING, index=True)
    engine: Mapped[str] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    prompt_version: Mapped[str | None] = mapped_column(String(50), default=None)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    text: Mapped[str | None] = mapped_column(Text, default=None)
    tokens_in: Mapped[int | None] = mapped_column(Integer, default=None)
    tokens_out: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_s: Mapped[float | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: What the engine found on the page and did to it (crop box, deskew angle, scale).
    page_layout: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    page: Mapped[Page] = relationship()


class Record(Base):
    """One extracted entry (a row of the dataset), with the line it came from."""

    __tablename__ = "records"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    stage_result_id: Mapped[int] = mapped_column(
        ForeignKey("stage_results.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    line_number: Mapped[int | None] = mapped_column(Integer, default=None)
    source_line: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    provenance: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)  # field → source
    #: `engine` for what extraction produced, `edit` for a record a reviewer added.
    source: Mapped[str] = mapped_column(String(20), default="engine", server_default="engine")


class Line(Base):
    """One line of a stage's text with its box on the page image and the engine's confidence."""

    __tablename__ = "lines"
    __table_args__ = (UniqueConstraint("stage_result_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    stage_result_id: Mapped[int] = mapped_column(
        ForeignKey("stage_results.id", ondelete="CASCADE"), index=True
    )
    #: Reading order on the page, from 0; the line is line `position + 1` of the stage's text.
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    #: The line as printed where `text` is regularised (ſ → s); None when they are the same.
    diplomatic: Mapped[str | None] = mapped_column(Text, default=None)
    x0: Mapped[int | None] = mapped_column(Integer, default=None)
    y0: Mapped[int | None] = mapped_column(Integer, default=None)
    x1: Mapped[int | None] = mapped_column(Integer, default=None)
    y1: Mapped[int | None] = mapped_column(Integer, default=None)
    confidence: Mapped[float | None] = mapped_column(default=None)
    min_confidence: Mapped[float | None] = mapped_column(default=None)
    kind: Mapped[str] = mapped_column(String(20), default="body")

    @property
    def bbox(self) -> list[int] | None:
        """[x0, y0, x1, y1] in page-image pixels, or None where the engine gave no geometry."""
        if None in (self.x0, self.y0, self.x1, self.y1):
            return None
        return [int(v) for v in (self.x0, self.y0, self.x1, self.y1)]  # type: ignore[arg-type]


#: An outbox row's id: 64-bit where the database has it (one row per task ever sent, so ids
#: climb for as long as the service runs); SQLite's INTEGER PRIMARY KEY is 64-bit already.
OUTBOX_ID = BigInteger().with_variant(Integer(), "sqlite")


class OutboxMessage(Base):
    """A task to send to the workers, written in the transaction of the rows it refers to and
    deleted once the broker has it (app/pipeline/outbox.py): a commit is the promise that the
    work will be sent, whether or not the broker answers at that moment."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(OUTBOX_ID, primary_key=True)
    task: Mapped[str] = mapped_column(String(100))
    #: The task's arguments: row ids, as the task takes them.
    args: Mapped[list[Any]] = mapped_column(JSON)
    queue: Mapped[str] = mapped_column(String(50))
    countdown: Mapped[float | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: From when a sweep may send it: a little later than created for the row a request sends
    #: itself right after its commit (its claim), at once for the rest.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: Failed tries to publish it, and the last one's error.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)


class IdempotencyKey(Base):
    """The answer given to the first request that carried an `Idempotency-Key`, stored in that
    request's transaction so that a retry gets the same answer instead of doing the work again
    (app/api/idempotency.py). Keys are per actor and kept `IDEMPOTENCY_KEY_TTL_S`."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("actor", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    #: The request it was used with: "POST /api/v1/projects/3/runs", and a hash of the body.
    request: Mapped[str] = mapped_column(String(500))
    fingerprint: Mapped[str] = mapped_column(String(64))
    #: The answer; empty only while the first request is in progress (its transaction is open).
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    response: Mapped[Any | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


#: How long a stored Idempotency-Key answers retries (the recovery sweep deletes older ones).
IDEMPOTENCY_KEY_TTL_S = 24 * 3600
