"""Records as CSV, in the dialect the spreadsheet at the other end reads.

German Excel splits a CSV on semicolons and reads it as UTF-8 only when it starts with a byte
order mark; LibreOffice asks; R and pandas take commas by default. `excel-de` is semicolon +
BOM + CRLF, `excel` the same with commas, `unix` (the default) commas and `\\n` without BOM.

Every text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading
`'`, so a spreadsheet shows it as text instead of running it as a formula (CSV injection). That
touches data too: the ditto mark `=` of a directory ("the same as above") reads `'=` in the CSV.
The JSON Lines export keeps every value as it is; `read_records_csv` takes the `'` off again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from app.pipeline.exports.records import ExportRecord, provenance_columns

DialectName = Literal["unix", "excel", "excel-de"]
Delimiter = Literal["comma", "semicolon"]

#: The characters a spreadsheet takes as the start of a formula (OWASP's list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CHARACTERS = frozenset(FORMULA_START)
BOM = "\ufeff"
#: Rows per chunk of a streamed CSV.
CHUNK_ROWS = 1000


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV is written: the delimiter, a UTF-8 byte order mark or not, the line end."""

    delimiter: str = ","
    bom: bool = False
    line_terminator: str = "\n"


DIALECTS: dict[str, CsvDialect] = {
    "unix": CsvDialect(),
    "excel": CsvDialect(",", bom=True, line_terminator="\r\n"),
    "excel-de": CsvDialect(";", bom=True, line_terminator="\r\n"),
}
DELIMITERS = {"comma": ",", "semicolon": ";"}


def csv_dialect(
    name: DialectName = "unix", delimiter: Delimiter | None = None, bom: bool | None = None
) -> CsvDialect:
    """A named dialect, with the delimiter or the BOM given explicitly in its place."""
    base = DIALECTS[name]
    return CsvDialect(
        DELIMITERS[delimiter] if delimiter is not None else base.delimiter,
        base.bom if bom is None else bom,
        base.line_terminator,
    )


def neutralise(value: str) -> str:
    """A text a spreadsheet would run as a formula, made plain text by a leading `'`."""
    return "'" + value if value[:1] in _FORMULA_CHARACTERS else value


def header(fields: Sequence[str]) -> list[str]:
    """The record fields, then the provenance columns."""
    return [neutralise(name) for name in (*fields, *provenance_columns(fields))]


def row(record: ExportRecord, fields: Sequence[str]) -> list[object]:
    """One record's cells; missing values are empty, text is neutralised."""
    values = record.fields
    box = record.bbox or ("", "", "", "")
    cells: list[object] = []
    for name in fields:
        value = values.get(name)
        if value is None:
            cells.append("")
        elif isinstance(value, str):
            cells.append("'" + value if value[:1] in _FORMULA_CHARACTERS else value)
        elif isinstance(value, bool | int | float):
            cells.append(value)
        else:
            cells.append(neutralise(str(value)))
    cells += [
        neutralise(record.document),
        record.page,
        "" if record.line is None else record.line,
        "" if record.last_line is None else record.last_line,
        *box,
        record.run_id,
        record.version,
        "true" if record.verified else "false",
    ]
    return cells


def csv_chunks(
    records: Iterable[ExportRecord], fields: Sequence[str], dialect: CsvDialect
) -> Iterator[str]:
    """The CSV in pieces of `CHUNK_ROWS` rows, for a streamed response."""
    buffer = io.StringIO()
    if dialect.bom:
        buffer.write(BOM)
    writer = _writer(buffer, dialect)
    writer.writerow(header(fields))
    for count, record in enumerate(records, start=1):
        writer.writerow(row(record, fields))
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(
    handle: TextIO, records: Iterable[ExportRecord], fields: Sequence[str], dialect: CsvDialect
) -> int:
    """Write the CSV to a text file opened with `newline=""`; the number of records."""
    count = 0
    if dialect.bom:
        handle.write(BOM)
    writer = _writer(handle, dialect)
    writer.writerow(header(fields))
    for record in records:
        writer.writerow(row(record, fields))
        count += 1
    return count


def _writer(handle: TextIO, dialect: CsvDialect) -> Any:
    """A csv writer (its type is private to the csv module)."""
    return csv.writer(handle, delimiter=dialect.delimiter, lineterminator=dialect.line_terminator)
