"""A run's results as the engine wrote them (`engine`) or as reviewers left them (`latest`).

Engine output is never changed: a reviewer's edit is a new version (app/db/review.py), and
`latest` is the engine output with each line's and record's highest version in its place:
edited lines' texts, edited fields, records added by reviewers, deleted records left out.
Reading `latest` costs one extra statement over a run's edits, however large the run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from app.db.review import LineVersion, PageVerification, RecordVersion
from app.db.tables import Line, Page, Record, StageResult
from app.pipeline.provenance import field_provenance

Version = Literal["latest", "engine"]
VERSIONS: tuple[Version, ...] = ("latest", "engine")


def _current_line_versions(run_id: int) -> Any:
    """(line id, highest version) of the run's edited lines, as a subquery."""
    return (
        select(LineVersion.line_id, func.max(LineVersion.version).label("version"))
        .where(LineVersion.run_id == run_id)
        .group_by(LineVersion.line_id)
        .subquery()
    )


@dataclass(frozen=True)
class LineEdit:
    """A line's current reviewed text."""

    line_id: int
    page_id: int
    position: int
    version: int
    text: str


def line_edits(session: Session, run_id: int, *criteria: ColumnElement[bool]) -> list[LineEdit]:
    """The run's edited lines (those with a version above the engine's), current text each;
    `criteria` narrow them (e.g. `Line.page_id == 7`, `StageResult.stage == "ocr"`)."""
    latest = _current_line_versions(run_id)
    rows = session.execute(
        select(Line.id, Line.page_id, Line.position, LineVersion.version, LineVersion.text)
        .join(latest, latest.c.line_id == Line.id)
        .join(
            LineVersion,
            (LineVersion.line_id == Line.id) & (LineVersion.version == latest.c.version),
        )
        .join(StageResult, StageResult.id == Line.stage_result_id)
        .where(Line.run_id == run_id, *criteria)
    )
    return [LineEdit(*row) for row in rows]


def apply_line_edits(
    session: Session, run_id: int, stage: str, texts: Mapping[int, str | None]
) -> dict[int, str | None]:
    """Page id → text, with the stage's edited lines in place of the engine's (pages whose
    text the engine did not produce stay None: there were no lines to edit)."""
    out = dict(texts)
    pages = list(texts)
    by_page: dict[int, list[LineEdit]] = {}
    for edit in line_edits(session, run_id, StageResult.stage == stage, Line.page_id.in_(pages)):
        by_page.setdefault(edit.page_id, []).append(edit)
    for page_id, edits in by_page.items():
        text = out.get(page_id)
        if text is None:
            continue
        lines = text.split("\n")
        for edit in edits:
            if edit.position < len(lines):
                lines[edit.position] = edit.text
        out[page_id] = "\n".join(lines)
    return out


@dataclass(frozen=True)
class RecordState:
    """A record's current version where a reviewer changed or added it."""

    version: int
    fields: dict[str, Any]
    deleted: bool


def record_states(
    session: Session, run_id: int, *criteria: ColumnElement[bool]
) -> dict[int, RecordState]:
    """Record id → its current version, for the run's records that have versions beyond the
    engine's (`criteria` narrow them, e.g. `RecordVersion.page_id == 7`)."""
    latest = (
        select(RecordVersion.record_id, func.max(RecordVersion.version).label("version"))
        .where(RecordVersion.run_id == run_id, *criteria)
        .group_by(RecordVersion.record_id)
        .subquery()
    )
    rows = session.execute(
        select(
            RecordVersion.record_id,
            RecordVersion.version,
            RecordVersion.fields,
            RecordVersion.deleted,
        ).join(
            latest,
            (latest.c.record_id == RecordVersion.record_id)
            & (latest.c.version == RecordVersion.version),
        )
    )
    return {rid: RecordState(number, dict(values), gone) for rid, number, values, gone in rows}


def record_fields(
    source: str,
    engine_fields: Mapping[str, Any],
    state: RecordState | None,
    version: Version,
) -> Mapping[str, Any] | None:
    """A record's fields in `version`, or None where the record is not part of it (added by a
    reviewer: not in `engine`; deleted: not in `latest`)."""
    if version == "engine":
        return engine_fields if source == "engine" else None
    if state is None:
        return engine_fields
    return None if state.deleted else state.fields


@dataclass(frozen=True)
class CurrentRecord:
    """A record as one version shows it."""

    id: int
    page_id: int
    position: int
    line_number: int | None
    source_line: str
    fields: Mapping[str, Any]
    version: int
    source: str
    #: What produced each filled field (app/pipeline/provenance.py): a model, a rule, `edit`.
    provenance: Mapping[str, str] = field(default_factory=dict)


def current_records(
    session: Session,
    run_id: int,
    version: Version,
    *criteria: ColumnElement[bool],
    batch: int = 1000,
) -> Iterator[CurrentRecord]:
    """The run's records in `version`, in document, page and record order, streamed in
    batches, each with its current version joined in (one statement). `criteria` narrow them,
    e.g. `Page.document_id.in_([...])` or `Record.page_id == 7`."""
    latest = (
        select(RecordVersion.record_id, func.max(RecordVersion.version).label("version"))
        .where(RecordVersion.run_id == run_id)
        .group_by(RecordVersion.record_id)
        .subquery()
    )
    query = (
        select(
            Record.id,
            Record.page_id,
            Record.position,
            Record.line_number,
            Record.source_line,
            Record.fields,
            Record.source,
            RecordVersion.version,
            RecordVersion.fields,
            RecordVersion.deleted,
            Record.provenance,
        )
        .join(Page, Page.id == Record.page_id)
        .outerjoin(latest, latest.c.record_id == Record.id)
        .outerjoin(
            RecordVersion,
            (RecordVersion.record_id == Record.id) & (RecordVersion.version == latest.c.version),
        )
        .where(Record.run_id == run_id, *criteria)
        .order_by(Page.document_id, Page.number, Record.position, Record.id)
        .execution_options(yield_per=batch)
    )
    for row in session.execute(query):
        rid, page_id, position, line_number, source_line, fields, source = row[:7]
        number, edited, deleted, engine_provenance = row[7:]
        state = RecordState(number, edited, bool(deleted)) if number is not None else None
        values = record_fields(source, fields, state, version)
        if values is None:
            continue
        shown = state.version if state is not None and version == "latest" else 1
        provenance = field_provenance(
            source=source, engine_fields=fields, engine_provenance=engine_provenance, shown=values
        )
        yield CurrentRecord(
            rid, page_id, position, line_number, source_line, values, shown, source, provenance
        )


def lines_with_edits(
    session: Session, run_id: int, *criteria: ColumnElement[bool]
) -> list[tuple[Line, LineVersion | None]]:
    """The run's lines (narrowed by `criteria`) in stage-result and reading order, each with
    its current edit or None, in one statement."""
    latest = _current_line_versions(run_id)
    rows = session.execute(
        select(Line, LineVersion)
        .outerjoin(latest, latest.c.line_id == Line.id)
        .outerjoin(
            LineVersion,
            (LineVersion.line_id == Line.id) & (LineVersion.version == latest.c.version),
        )
        .where(Line.run_id == run_id, *criteria)
        .order_by(Line.stage_result_id, Line.position)
    )
    return [(line, edit) for line, edit in rows]


def verified_pages(
    session: Session, run_id: int, page_ids: Iterable[int] | None = None
) -> dict[int, PageVerification]:
    """Page id → its verification, for the run's verified pages (of `page_ids` when given)."""
    query = select(PageVerification).where(PageVerification.run_id == run_id)
    if page_ids is not None:
        query = query.where(PageVerification.page_id.in_(list(page_ids)))
    return {v.page_id: v for v in session.scalars(query)}


@dataclass(frozen=True)
class ReviewCounts:
    """How much of a run reviewers have touched."""

    lines_edited: int
    records_changed: int
    pages_verified: int

    def as_dict(self) -> dict[str, int]:
        """The counts by name."""
        return {
            "lines_edited": self.lines_edited,
            "records_changed": self.records_changed,
            "pages_verified": self.pages_verified,
        }


def review_counts(session: Session, run_id: int) -> ReviewCounts:
    """Lines with an edit, records with a change (added ones included), verified pages; in one
    statement (the metrics route is polled)."""
    lines = select(func.count(func.distinct(LineVersion.line_id))).where(
        LineVersion.run_id == run_id
    )
    records = select(func.count(func.distinct(RecordVersion.record_id))).where(
        RecordVersion.run_id == run_id
    )
    pages = select(func.count(PageVerification.id)).where(PageVerification.run_id == run_id)
    row = session.execute(
        select(lines.scalar_subquery(), records.scalar_subquery(), pages.scalar_subquery())
    ).one()
    return ReviewCounts(*(int(value or 0) for value in row))
