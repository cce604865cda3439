"""What reviewers change: versions of lines and records, and the pages they have verified.

The engine's output stays as written (`lines.text`, `records.fields`): it is version 1 of each
line and engine record. An edit adds a version; the highest version is the line's or record's
current ("latest") value. Two reviewers who edit the same version collide on the unique
(line, version) / (record, version) constraint, so one of them gets a conflict instead of
silently overwriting the other.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.session import Base, UTCDateTime, utcnow


class VersionSource(StrEnum):
    """Where a version came from."""

    ENGINE = "engine"
    EDIT = "edit"
    UNDO = "undo"


class LineVersion(Base):
    """A line's text after a reviewer's change (version 2 on; version 1 is `lines.text`)."""

    __tablename__ = "line_versions"
    __table_args__ = (UniqueConstraint("line_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"), index=True)
    #: The line's run and page, so that a run's or a page's edits are read in one statement.
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RecordVersion(Base):
    """A record's fields after a reviewer's change; a record a reviewer added has its version 1
    here too (with its author), an engine record's version 1 is `records.fields`."""

    __tablename__ = "record_versions"
    __table_args__ = (UniqueConstraint("record_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: Deleted records are kept (soft delete): gone from `latest`, still in `engine`.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(20))
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PageVerification(Base):
    """A reviewer's word that a page of a run is checked: it leaves the review queue."""

    __tablename__ = "page_verifications"
    __table_args__ = (UniqueConstraint("run_id", "page_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
