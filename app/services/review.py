"""Reviewers' changes: correct a line, edit/add/delete a record, undo, verify a page.

Each change is a new version with its author and time; the engine's output is never
overwritten (app/db/review.py). A change names the version it was made to: when that is no
longer the current one, someone else changed the row meanwhile, and the change is refused
with the current state (409) instead of overwriting theirs. Two changes made to the same
version at the same moment collide on the unique (row, version) key; the loser gets the 409.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.review import LineVersion, PageVerification, RecordVersion, VersionSource
from app.db.tables import Line, Record, Run, StageResult, StageStatus
from app.errors import Conflict, InvalidRequest, NotFound, VersionConflict

T = TypeVar("T")


@dataclass(frozen=True)
class HistoryEntry:
    """One version of a line or record."""

    version: int
    source: str
    author: str
    created_at: datetime | None
    text: str | None = None
    fields: dict[str, Any] | None = None
    deleted: bool = False


def _insert_version(session: Session, row: T, conflict: Callable[[], Exception]) -> T:
    """Add a version row, turning a concurrent writer's win on the unique key into `conflict`.

    The change is a request's only write, so the losing request's transaction is rolled back
    whole (no savepoint: SQLite's driver handles those poorly) before the current state is read
    for the answer."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict() from None
    return row


# Lines ------------------------------------------------------------------------------------


def line_versions(session: Session, line: Line) -> list[LineVersion]:
    """The line's versions after the engine's, oldest first."""
    return list(
        session.scalars(
            select(LineVersion).where(LineVersion.line_id == line.id).order_by(LineVersion.version)
        )
    )


def line_current(session: Session, line: Line) -> tuple[int, str]:
    """(version, text) of the line now: the engine's is version 1."""
    latest = session.scalar(
        select(LineVersion)
        .where(LineVersion.line_id == line.id)
        .order_by(LineVersion.version.desc())
        .limit(1)
    )
    return (latest.version, latest.text) if latest is not None else (1, line.text)


def line_history(session: Session, line: Line) -> list[HistoryEntry]:
    """Every version of the line, the engine's first."""
    result = session.get_one(StageResult, line.stage_result_id)
    engine = HistoryEntry(1, VersionSource.ENGINE, result.engine, result.finished_at, line.text)
    return [engine] + [
        HistoryEntry(v.version, v.source, v.author, v.created_at, v.text)
        for v in line_versions(session, line)
    ]


def _editable_line(session: Session, line: Line) -> Run:
    """The line's run, where its line may be edited: a line of the run's reviewed text."""
    run = session.get_one(Run, line.run_id)
    stage = session.get_one(StageResult, line.stage_result_id).stage
    final = run.config.final_text_stage
    if stage != final:
        raise Conflict(
            f"line {line.id} is {stage} output; run {run.id}'s reviewed text is its {final} "
            "stage: correct that stage's lines"
        )
    return run


def _line_conflict(session: Session, line: Line, given: int) -> VersionConflict:
    version, text = line_current(session, line)
    return VersionConflict(
        f"line {line.id} was changed meanwhile: it is at version {version}, the edit was made "
        f"to version {given}; reload it and edit again",
        {"version": version, "text": text},
    )


def edit_line(session: Session, line: Line, text: str, version: int, author: str) -> LineVersion:
    """Correct a line: a new version with `text`, made to the current `version`."""
    _editable_line(session, line)
    if "\n" in text or "\r" in text:
        raise InvalidRequest("a line's text cannot contain a line break: edit one line at a time")
    return _new_line_version(session, line, text, version, author, VersionSource.EDIT)


def undo_line(session: Session, line: Line, version: int, author: str) -> LineVersion:
    """Undo the line's last change: a new version with the text before it."""
    _editable_line(session, line)
    current, _ = line_current(session, line)
    if version != current:
        raise _line_conflict(session, line, version)
    if current == 1:
        raise Conflict(f"line {line.id} has no change to undo: it is the engine's text")
    history = line_history(session, line)
    previous = history[-2].text
    assert previous is not None
    return _new_line_version(session, line, previous, version, author, VersionSource.UNDO)


def _new_line_version(
    session: Session, line: Line, text: str, version: int, author: str, source: str
) -> LineVersion:
    current, _ = line_current(session, line)
    if version != current:
        raise _line_conflict(session, line, version)
    row = LineVersion(
        line_id=line.id,
        run_id=line.run_id,
        page_id=line.page_id,
        version=current + 1,
        text=text,
        source=source,
        author=author,
    )
    return _insert_version(session, row, lambda: _line_conflict(session, line, version))


# Records ----------------------------------------------------------------------------------


def record_current(session: Session, record: Record) -> tuple[int, dict[str, Any], bool]:
    """(version, fields, deleted) of the record now."""
    latest = session.scalar(
        select(RecordVersion)
        .where(RecordVersion.record_id == record.id)
        .order_by(RecordVersion.version.desc())
        .limit(1)
    )
    if latest is None:
        return 1, dict(record.fields), False
    return latest.version, dict(latest.fields), latest.deleted


def record_history(session: Session, record: Record) -> list[HistoryEntry]:
    """Every version of the record, oldest first (an engine record's first is the engine's)."""
    versions = session.scalars(
        select(RecordVersion)
        .where(RecordVersion.record_id == record.id)
        .order_by(RecordVersion.version)
    ).all()
    out = [
        HistoryEntry(
            v.version, v.source, v.author, v.created_at, fields=v.fields, deleted=v.deleted
        )
        for v in versions
    ]
    if record.source == VersionSource.ENGINE:
        result = session.get_one(StageResult, record.stage_result_id)
        engine = HistoryEntry(
            1, VersionSource.ENGINE, result.engine, result.finished_at, fields=dict(record.fields)
        )
        out.insert(0, engine)
    return out


def _record_conflict(session: Session, record: Record, given: int) -> VersionConflict:
    version, fields, deleted = record_current(session, record)
    return VersionConflict(
        f"record {record.id} was changed meanwhile: it is at version {version}, the change was "
        f"made to version {given}; reload it and change it again",
        {"version": version, "fields": fields, "deleted": deleted},
    )


def _check_fields(run: Run, fields: Mapping[str, Any]) -> dict[str, str | None]:
    known = run.config.schema_fields
    unknown = [name for name in fields if name not in known]
    if unknown:
        raise InvalidRequest(
            f"unknown field(s) {', '.join(map(repr, unknown))}: run {run.id}'s records have "
            f"{', '.join(map(repr, known))}"
        )
    bad = [name for name, v in fields.items() if v is not None and not isinstance(v, str)]
    if bad:
        raise InvalidRequest(f"field(s) {', '.join(map(repr, bad))}: a value is text or null")
    return {name: value for name, value in fields.items()}


def _new_record_version(
    session: Session,
    record: Record,
    version: int,
    author: str,
    source: str,
    fields: Mapping[str, Any],
    deleted: bool,
) -> RecordVersion:
    current, _, _ = record_current(session, record)
    if version != current:
        raise _record_conflict(session, record, version)
    row = RecordVersion(
        record_id=record.id,
        run_id=record.run_id,
        page_id=record.page_id,
        version=current + 1,
        fields=dict(fields),
        deleted=deleted,
        source=source,
        author=author,
    )
    return _insert_version(session, row, lambda: _record_conflict(session, record, version))


def edit_record(
    session: Session, record: Record, fields: Mapping[str, Any], version: int, author: str
) -> RecordVersion:
    """Change some of a record's fields (the others stay as they are)."""
    run = session.get_one(Run, record.run_id)
    changes = _check_fields(run, fields)
    current, values, deleted = record_current(session, record)
    if version != current:
        raise _record_conflict(session, record, version)
    if deleted:
        raise Conflict(f"record {record.id} is deleted: undo the deletion to edit it")
    return _new_record_version(
        session, record, version, author, VersionSource.EDIT, values | changes, False
    )


def delete_record(session: Session, record: Record, version: int, author: str) -> RecordVersion:
    """Delete a record from the reviewed dataset (kept: the engine's output still has it)."""
    current, values, deleted = record_current(session, record)
    if version != current:
        raise _record_conflict(session, record, version)
    if deleted:
        raise Conflict(f"record {record.id} is deleted already")
    return _new_record_version(session, record, version, author, VersionSource.EDIT, values, True)


def undo_record(session: Session, record: Record, version: int, author: str) -> RecordVersion:
    """Undo the record's last change (an edit or a deletion)."""
    history = record_history(session, record)
    if version != history[-1].version:
        raise _record_conflict(session, record, version)
    if len(history) < 2:
        raise Conflict(f"record {record.id} has no change to undo")
    before = history[-2]
    return _new_record_version(
        session, record, version, author, VersionSource.UNDO, before.fields or {}, before.deleted
    )


def add_record(
    session: Session,
    run: Run,
    page_id: int,
    fields: Mapping[str, Any],
    line: Line | None,
    author: str,
) -> Record:
    """A record the engine missed, added by a reviewer (after the page's others, or after the
    records of the line it is added for)."""
    if not run.config.extracts:
        raise Conflict(f"run {run.id} does not extract records: there is no dataset to add to")
    result = session.scalar(
        select(StageResult).where(
            StageResult.run_id == run.id,
            StageResult.page_id == page_id,
            StageResult.stage == "extract",
            StageResult.status == StageStatus.DONE,
        )
    )
    if result is None:
        raise Conflict(f"page {page_id} has no finished extraction in run {run.id} yet")
    values = {name: None for name in run.config.schema_fields} | _check_fields(run, fields)
    if line is not None and (line.run_id != run.id or line.page_id != page_id):
        raise InvalidRequest(f"line {line.id} is not a line of page {page_id} in run {run.id}")
    position = session.scalar(
        select(func.coalesce(func.max(Record.position), -1) + 1).where(
            Record.stage_result_id == result.id
        )
    )
    record = Record(
        run_id=run.id,
        page_id=page_id,
        stage_result_id=result.id,
        position=position,
        line_number=line.position + 1 if line is not None else None,
        source_line=line.text if line is not None else "",
        fields=values,
        source=VersionSource.EDIT,
    )
    session.add(record)
    session.flush()
    session.add(
        RecordVersion(
            record_id=record.id,
            run_id=run.id,
            page_id=page_id,
            version=1,
            fields=values,
            deleted=False,
            source=VersionSource.EDIT,
            author=author,
        )
    )
    session.flush()
    return record


# Pages ------------------------------------------------------------------------------------


def verify_page(session: Session, run: Run, page_id: int, author: str) -> PageVerification:
    """Mark the page checked (again verifying a verified page changes nothing)."""
    existing = session.scalar(
        select(PageVerification).where(
            PageVerification.run_id == run.id, PageVerification.page_id == page_id
        )
    )
    if existing is not None:
        return existing
    row = PageVerification(run_id=run.id, page_id=page_id, author=author)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # verified by someone else at the same moment: theirs stands
        session.rollback()
        return session.scalars(
            select(PageVerification).where(
                PageVerification.run_id == run.id, PageVerification.page_id == page_id
            )
        ).one()
    return row


def unverify_page(session: Session, run: Run, page_id: int) -> None:
    """Put the page back in the review queue."""
    row = session.scalar(
        select(PageVerification).where(
            PageVerification.run_id == run.id, PageVerification.page_id == page_id
        )
    )
    if row is None:
        raise NotFound(f"page {page_id} is not verified in run {run.id}")
    session.delete(row)
    session.flush()
