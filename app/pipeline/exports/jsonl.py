"""Records as JSON Lines: one JSON object a line, values exactly as stored.

Nothing is neutralised here (JSON is read by programs, not run by spreadsheets): a ditto mark
`=` stays `=`. The record's fields sit under `fields`, so no field name can clash with the
provenance keys; `pandas.json_normalize` flattens them into `fields.<name>` columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

import orjson

from app.pipeline.exports.records import ExportRecord

#: Records per chunk of a streamed response.
CHUNK_ROWS = 1000


def record_object(record: ExportRecord, fields: Sequence[str]) -> dict[str, Any]:
    """One record with its provenance, as the JSON Lines export writes it."""
    values = record.fields
    return {
        "record_id": record.record_id,
        "run": record.run_id,
        "version": record.version,
        "document": record.document,
        "document_id": record.document_id,
        "page": record.page,
        "page_id": record.page_id,
        "line": record.line,
        "last_line": record.last_line,
        "bbox": list(record.bbox) if record.bbox is not None else None,
        "verified": record.verified,
        "record_version": record.record_version,
        "fields": {name: values.get(name) for name in fields},
        # What produced each filled field (a model, a rule, `edit`): the record's explanation.
        "provenance": {name: said for name in fields if (said := record.provenance.get(name))},
    }


def line(record: ExportRecord, fields: Sequence[str]) -> str:
    """One line of the file, newline included (UTF-8 JSON, not ASCII-escaped)."""
    return orjson.dumps(record_object(record, fields), option=orjson.OPT_APPEND_NEWLINE).decode()


def jsonl_chunks(records: Iterable[ExportRecord], fields: Sequence[str]) -> Iterator[str]:
    """The file in pieces of `CHUNK_ROWS` lines, for a streamed response."""
    lines: list[str] = []
    for record in records:
        lines.append(line(record, fields))
        if len(lines) == CHUNK_ROWS:
            yield "".join(lines)
            lines = []
    yield "".join(lines)


def write_jsonl(handle: TextIO, records: Iterable[ExportRecord], fields: Sequence[str]) -> int:
    """Write the file to an open text file; the number of records."""
    count = 0
    for record in records:
        handle.write(line(record, fields))
        count += 1
    return count
