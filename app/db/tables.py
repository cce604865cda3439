"""The tables: projects, documents, pages, ground truth, runs, stage results, records."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
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
    """A reference transcription (per document or page) or a reference records CSV."""

    __tablename__ = "ground_truths"

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
    config: Mapped[RunConfig] = mapped_column(RunConfigJSON)
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.PENDING)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)

    documents: Mapped[list[Document]] = relationship(secondary=run_documents, order_by=Document.id)


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
