"""Exports: a run's records as CSV (streamed) and its transcriptions as text."""

import csv
import io
from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import session_scope
from app.db.tables import Document, Page, Record, Run
from app.pipeline.evaluation import document_text, page_texts

PROVENANCE = ["document", "page", "line", "run"]


def records_header(run: Run) -> list[str]:
    """Schema fields, then where each record came from."""
    return list(run.config.schema_fields) + PROVENANCE


def _rows(session: Session, run: Run) -> Iterator[list[object]]:
    fields = run.config.schema_fields
    query = (
        select(Record, Page.number, Document.filename)
        .join(Page, Page.id == Record.page_id)
        .join(Document, Document.id == Page.document_id)
        .where(Record.run_id == run.id)
        .order_by(Document.id, Page.number, Record.position)
        .execution_options(yield_per=500)
    )
    for record, page_number, filename in session.execute(query):
        values = [record.fields.get(name) or "" for name in fields]
        yield values + [filename, page_number, record.line_number or "", run.id]


def stream_records_csv(settings: Settings, run_id: int) -> Iterator[str]:
    """The CSV in chunks, read with a session of its own (the request's is gone by then)."""
    with session_scope(settings.resolved_database_url) as session:
        run = session.get_one(Run, run_id)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(records_header(run))
        for count, row in enumerate(_rows(session, run), start=1):
            writer.writerow(row)
            if count % 500 == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()


def write_records_csv(session: Session, run: Run, handle: io.TextIOBase) -> int:
    """Write the CSV to an open text file; returns the number of records."""
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(records_header(run))
    count = 0
    for row in _rows(session, run):
        writer.writerow(row)
        count += 1
    return count


def document_transcription(
    session: Session, run: Run, document: Document, stage: str | None = None
) -> str:
    """A document's text from a stage (the run's last text stage by default)."""
    texts = page_texts(session, run, stage or run.config.final_text_stage)
    return document_text(document.pages, texts)
