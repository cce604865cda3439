"""Records with their provenance, streamed: what the CSV and JSON Lines exports write.

A row is a record in the version asked for (`engine` or `latest`, app/pipeline/versions.py)
with the document, page and line(s) it came from, the box of those lines on the page image
(where the text stage has geometry), the run, and whether a reviewer verified the page.
Records are read in batches of plain tuples (never one ORM object per row), each with its first
line's box joined in, so memory stays flat however many records a run has.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Select, Text, cast, select
from sqlalchemy.orm import Session, aliased

from app.db.tables import Document, Line, Page, Record, Run, StageResult, run_documents
from app.pipeline.provenance import field_provenance
from app.pipeline.versions import Version, record_fields, record_states, verified_pages

#: Pages whose records are read in one statement (a directory page has up to ~100 entries).
PAGES_PER_BATCH = 40
#: `records.source` of what extraction produced (a reviewer's added record: `edit`).
ENGINE = "engine"

#: The provenance columns of a CSV row, after the record's fields.
PROVENANCE = (
    "document",
    "page",
    "line",
    "last_line",
    "x0",
    "y0",
    "x1",
    "y1",
    "run",
    "version",
    "verified",
)
#: What a provenance column is called where a record field has its name already.
PREFIX = "histocr_"

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class RecordSource:
    """The records of one run: of all its documents, or of the given ones."""

    run_id: int
    document_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class RecordExport:
    """What one export holds: the runs it reads, in order, the version, the fields (columns)."""

    sources: tuple[RecordSource, ...]
    fields: tuple[str, ...]
    version: Version


class ExportRecord(NamedTuple):
    """One record as an export writes it."""

    record_id: int
    run_id: int
    version: Version
    document_id: int
    document: str
    page_id: int
    page: int
    #: The first and last line of the text the extraction read (from 1), None where unknown.
    line: int | None
    last_line: int | None
    #: [x0, y0, x1, y1] in page-image pixels: the union of the record's lines' boxes.
    bbox: Box | None
    verified: bool
    #: 1 for the engine's record, higher once a reviewer changed it.
    record_version: int
    fields: Mapping[str, Any]
    #: What produced each filled field: a model, a rule, `edit` (app/pipeline/provenance.py).
    provenance: Mapping[str, str]


def provenance_columns(fields: Sequence[str]) -> list[str]:
    """The provenance column names; one a record field already uses gets the `histocr_` prefix,
    so no CSV has two columns of the same name."""
    taken = set(fields)
    return [PREFIX + name if name in taken else name for name in PROVENANCE]


def run_export(run: Run, version: Version) -> RecordExport:
    """All of a run's records, with the fields of the schema the run extracted with."""
    return RecordExport((RecordSource(run.id),), tuple(run.config.schema_fields), version)


def export_records(session: Session, export: RecordExport) -> Iterator[ExportRecord]:
    """The export's records: source after source, each in document, page and record order."""
    for source in export.sources:
        yield from _source_records(session, source, export.version)


def _source_records(
    session: Session, source: RecordSource, version: Version
) -> Iterator[ExportRecord]:
    """One run's records in `version`, in document, page and record order.

    The version rules are app.pipeline.versions' (`record_states`, `record_fields`: edited
    fields in, deleted records out for `latest`; reviewers' records out for `engine`), applied
    to plain tuples read `PAGES_PER_BATCH` pages at a time, each record with the box of its
    first line joined in (bench/export_scale.py measured the alternatives: `current_records`
    builds an ORM row and an object per record; one statement over the whole run has the
    database sort every record before the first one is sent, on disk in PostgreSQL). A record
    printed over several lines reads its other lines' boxes in one statement per batch.
    """
    run = session.get_one(Run, source.run_id)
    pages = _pages(session, run.id, source.document_ids)
    verified = set(verified_pages(session, run.id))
    states = record_states(session, run.id) if version == "latest" else {}
    stage = line_stage(run)
    order = sorted(pages, key=lambda page_id: (pages[page_id][0], pages[page_id][2]))
    connection = session.connection()
    for start in range(0, len(order), PAGES_PER_BATCH):
        batch = order[start : start + PAGES_PER_BATCH]
        rows = connection.execute(_query(run.id, stage, batch)).all()
        by_page: dict[int, list[Any]] = {}
        for row in rows:  # ordered by page id, then as printed
            by_page.setdefault(row[1], []).append(row)
        spread = {row[1] for row in rows if row[2] is not None and "\n" in row[3]}
        boxes = _line_boxes(session, run.id, stage, spread)
        for page_id in batch:
            document_id, document, page_number = pages[page_id]
            checked = page_id in verified
            for record_id, _, line, source_line, fields, origin, said, *first in by_page.get(
                page_id, ()
            ):
                state = states.get(record_id)
                engine_said = orjson.loads(said) if said else None
                if state is None and origin == ENGINE:
                    values, number, provenance = orjson.loads(fields), 1, engine_said or {}
                else:
                    engine_fields = orjson.loads(fields)
                    found = record_fields(origin, engine_fields, state, version)
                    if found is None:
                        continue
                    values = found
                    number = state.version if state is not None and version == "latest" else 1
                    provenance = field_provenance(
                        source=origin,
                        engine_fields=engine_fields,
                        engine_provenance=engine_said,
                        shown=values,
                    )
                last = line
                box = box_of(*first)
                if line is not None and page_id in spread:
                    last = line + source_line.count("\n")
                    lines = [b for n in range(line - 1, last) if (b := boxes.get((page_id, n)))]
                    box = union_box(lines)
                yield ExportRecord(
                    record_id,
                    run.id,
                    version,
                    document_id,
                    document,
                    page_id,
                    page_number,
                    line,
                    last,
                    box,
                    checked,
                    number,
                    values,
                    provenance,
                )


def _query(run_id: int, stage: str, page_ids: Sequence[int]) -> Select[*tuple[Any, ...]]:
    """The run's records on these pages, each with its first line's box (from the stage the
    extraction read), by page id and then as printed."""
    text = aliased(StageResult)
    return (
        select(
            Record.id,
            Record.page_id,
            Record.line_number,
            Record.source_line,
            # As text, parsed by orjson: the JSON type's json.loads was a fifth of an export.
            cast(Record.fields, Text),
            Record.source,
            cast(Record.provenance, Text),
            Line.x0,
            Line.y0,
            Line.x1,
            Line.y1,
        )
        .outerjoin(
            text,
            (text.run_id == Record.run_id)
            & (text.page_id == Record.page_id)
            & (text.stage == stage)
            & text.page_id.in_(page_ids),
        )
        .outerjoin(
            Line, (Line.stage_result_id == text.id) & (Line.position == Record.line_number - 1)
        )
        # `run_id + 0`: the records are found by their pages' index; SQLite (no statistics)
        # would otherwise take the run's index and read all of the run's records each batch.
        .where(Record.page_id.in_(page_ids), Record.run_id + 0 == run_id)
        .order_by(Record.page_id, Record.position, Record.id)
    )


def line_stage(run: Run) -> str:
    """The text stage the run's extraction read: its records' line numbers count its lines."""
    if run.config.extracts:
        source = run.config.stage("extract").source
        if source is not None:
            return source
    return run.config.final_text_stage


def _pages(
    session: Session, run_id: int, document_ids: tuple[int, ...] | None
) -> dict[int, tuple[int, str, int]]:
    """Page id → (document id, file name, page number), for the run's documents (a run's pages
    number in the thousands, not millions: one statement, kept while the records stream)."""
    query = (
        select(Page.id, Document.id, Document.filename, Page.number)
        .join(Document, Document.id == Page.document_id)
        .join(run_documents, run_documents.c.document_id == Document.id)
        .where(run_documents.c.run_id == run_id)
    )
    if document_ids is not None:
        query = query.where(Document.id.in_(document_ids))
    return {
        page_id: (doc_id, name, number) for page_id, doc_id, name, number in session.execute(query)
    }


def _line_boxes(
    session: Session, run_id: int, stage: str, page_ids: set[int]
) -> dict[tuple[int, int], Box]:
    """(page id, line position) → box, for the lines of `stage` on these pages that have one."""
    if not page_ids:
        return {}
    rows = session.connection().execute(
        select(Line.page_id, Line.position, Line.x0, Line.y0, Line.x1, Line.y1)
        .join(StageResult, StageResult.id == Line.stage_result_id)
        .where(
            Line.run_id == run_id,
            StageResult.stage == stage,
            Line.page_id.in_(page_ids),
            Line.x0.is_not(None),
            Line.y0.is_not(None),
            Line.x1.is_not(None),
            Line.y1.is_not(None),
        )
    )
    out = {}
    for page_id, position, x0, y0, x1, y1 in rows:
        box = box_of(x0, y0, x1, y1)
        if box is not None:
            out[(page_id, position)] = box
    return out


def box_of(x0: int | None, y0: int | None, x1: int | None, y1: int | None) -> Box | None:
    """A stored line's box, or None where any coordinate is missing."""
    if x0 is None or y0 is None or x1 is None or y1 is None:
        return None
    return (x0, y0, x1, y1)


def union_box(boxes: Sequence[Box]) -> Box | None:
    """The smallest box around all of them (None for none)."""
    if not boxes:
        return None
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )
