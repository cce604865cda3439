"""Streaming a records export with a session of its own (the request's is closed by then)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from app.db.session import session_scope
from app.pipeline.exports import csvx, jsonl
from app.pipeline.exports.records import RecordExport, export_records

RecordFormat = Literal["csv", "jsonl"]


def stream_records(
    database_url: str,
    export: RecordExport,
    kind: RecordFormat,
    dialect: csvx.CsvDialect | None = None,
) -> Iterator[str]:
    """The export in chunks of text; memory stays flat however many records there are."""
    with session_scope(database_url) as session:
        records = export_records(session, export)
        if kind == "csv":
            yield from csvx.csv_chunks(records, export.fields, dialect or csvx.CsvDialect())
        else:
            yield from jsonl.jsonl_chunks(records, export.fields)
