"""A project's own recogniser: the versions trained for it and when one is trained by itself.

Each `RecognizerModel` row is one fine-tune of the shipped Tesseract model on the project's
verified lines and aligned ground truth: its training set (counts, and the `*.png` +
`*.gt.txt` pairs as a zip in the file store), how it was trained, what it reached, and the
model file. The row is the training's state too: a worker moves it from queued to training and
on to done or failed; a user's cancel is the status the worker reads between steps.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db.session import Base, UTCDateTime, utcnow


class TrainingStatus(StrEnum):
    """Where a model version stands."""

    QUEUED = "queued"
    TRAINING = "training"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: A training in one of these holds the project's one training slot.
ACTIVE_TRAINING = (TrainingStatus.QUEUED, TrainingStatus.TRAINING)


class RecognizerModel(Base):
    """One version of a project's recogniser and the training that made it."""

    __tablename__ = "recognizer_models"
    __table_args__ = (
        UniqueConstraint("project_id", "number"),
        # One training at a time per project, held by the database: two requests that both
        # found the slot free (two verifications crossing the threshold together) cannot both
        # queue one; the second insert fails and is answered 409.
        Index(
            "uq_recognizer_models_active",
            "project_id",
            unique=True,
            sqlite_where=text("status IN ('queued', 'training')"),
            postgresql_where=text("status IN ('queued', 'training')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    #: 1, 2, … per project (`recognizer: 3` in a run's OCR parameters).
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default=TrainingStatus.QUEUED)
    #: The model training started from (the run parameter `languages` it replaces).
    base_model: Mapped[str] = mapped_column(String(100))
    #: How it is trained: learning rate, iteration budget, chunk, patience, validation share.
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The training set: line pairs in all, of them from verified pages and from ground
    #: truth, the pages they come from; its zip in the file store.
    lines: Mapped[int | None] = mapped_column(Integer, default=None)
    verified_lines: Mapped[int | None] = mapped_column(Integer, default=None)
    ground_truth_lines: Mapped[int | None] = mapped_column(Integer, default=None)
    pages: Mapped[int | None] = mapped_column(Integer, default=None)
    training_set_key: Mapped[str | None] = mapped_column(String(200), default=None)
    #: How the lines were used: trained on, held out to choose the checkpoint, left out (a
    #: character the model cannot write).
    training_lines: Mapped[int | None] = mapped_column(Integer, default=None)
    validation_lines: Mapped[int | None] = mapped_column(Integer, default=None)
    skipped_lines: Mapped[int | None] = mapped_column(Integer, default=None)
    #: Iterations of the checkpoint kept (0: nothing beat the base) and iterations run.
    iterations: Mapped[int | None] = mapped_column(Integer, default=None)
    iterations_run: Mapped[int | None] = mapped_column(Integer, default=None)
    #: Character error rates (fractions) of the kept checkpoint on its training lines and on the
    #: held-out lines, and of the untuned base on the same held-out lines.
    training_cer: Mapped[float | None] = mapped_column(Float, default=None)
    validation_cer: Mapped[float | None] = mapped_column(Float, default=None)
    base_validation_cer: Mapped[float | None] = mapped_column(Float, default=None)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)
    cpu_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    #: Where a training stands: its phase, the last chunk's figures and the history of chunks.
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    log_key: Mapped[str | None] = mapped_column(String(200), default=None)
    model_key: Mapped[str | None] = mapped_column(String(200), default=None)
    model_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    #: Who asked for it (`automatic` for a training the verified-line threshold started).
    author: Mapped[str] = mapped_column(String(200), default="local")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    #: Renewed by the training worker; a training whose beat stopped is failed by the sweep.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)


class RecognizerSetting(Base):
    """A project's choice of when its recogniser is trained by itself."""

    __tablename__ = "recognizer_settings"

    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    #: Train once this many lines were verified since the last version (None: never by itself).
    auto_train_after: Mapped[int | None] = mapped_column(Integer, default=None)
    author: Mapped[str] = mapped_column(String(200), default="local")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
