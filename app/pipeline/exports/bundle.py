"""A run's exports written as files: into a folder (`histocr process --out`) or a zip.

The layout is the same in both: `<document>.txt` (pages separated by form feeds),
`page/<document>/<document>-0001.xml` (PAGE XML), `alto/<document>/<document>-0001.xml` (ALTO),
`records.csv` and `records.jsonl`; the zip adds `manifest.json`, which says what the run did
(its stages, engines and parameters, the record schema) and what each file is. A folder of
page files is what `--import-from` and the import engine read back.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TextIO

from sqlalchemy.orm import Session

from app.db.tables import Document, Run
from app.pipeline.exports import csvx, jsonl
from app.pipeline.exports.alto import alto_xml
from app.pipeline.exports.pagexml import page_xml
from app.pipeline.exports.records import export_records, run_export
from app.pipeline.exports.text import document_pages, document_stem, join_pages
from app.pipeline.versions import Version

Format = Literal["txt", "csv", "jsonl", "page", "alto"]
FORMATS: tuple[Format, ...] = ("txt", "csv", "jsonl", "page", "alto")
MANIFEST_FORMAT = 1


class Target(Protocol):
    """Where export files go: a folder or a zip archive."""

    def write(self, name: str, data: bytes) -> None:
        """Store a file under its relative name."""

    def text(self, name: str) -> Any:
        """A context manager giving a text file to write (UTF-8, newlines as written)."""


class FolderTarget:
    """Files in a folder (created as needed)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, data: bytes) -> None:
        """Write one file."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    @contextmanager
    def text(self, name: str) -> Iterator[TextIO]:
        """Open one file for text."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            yield handle


class ZipTarget:
    """Files in a zip archive (deflated), written as they come: nothing is held in memory."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def write(self, name: str, data: bytes) -> None:
        """Add one file."""
        self.archive.writestr(name, data)

    @contextmanager
    def text(self, name: str) -> Iterator[TextIO]:
        """Add one file written as text."""
        with self.archive.open(name, "w", force_zip64=True) as raw:
            with io.TextIOWrapper(raw, encoding="utf-8", newline="") as handle:
                yield handle


def document_names(documents: Sequence[Document]) -> dict[int, str]:
    """Document id → the name its files get: the file name's stem, with the id added where two
    documents share a stem."""
    stems = [document_stem(document) for document in documents]
    return {
        document.id: stem if stems.count(stem) == 1 else f"{stem}-{document.id}"
        for document, stem in zip(documents, stems, strict=True)
    }


def write_exports(
    session: Session,
    run: Run,
    target: Target,
    *,
    formats: Collection[Format],
    version: Version,
    dialect: csvx.CsvDialect,
    stage: str | None = None,
) -> dict[str, Any]:
    """Write the run's exports in `formats`; what was written, for a manifest."""
    stage = stage or run.config.final_text_stage
    changed = datetime.now(UTC)
    names = document_names(run.documents)
    documents = []
    for document in run.documents:
        documents.append(
            _document_files(
                session, run, document, names[document.id], target, formats, stage, version, changed
            )
        )
    records: dict[str, Any] | None = None
    if run.config.extracts and {"csv", "jsonl"} & set(formats):
        records = _records(session, run, target, formats, version, dialect)
    return {"text_stage": stage, "documents": documents, "records": records}


def _document_files(
    session: Session,
    run: Run,
    document: Document,
    name: str,
    target: Target,
    formats: Collection[Format],
    stage: str,
    version: Version,
    changed: datetime,
) -> dict[str, Any]:
    pages = document_pages(session, run, document, stage, version)
    entry: dict[str, Any] = {"id": document.id, "filename": document.filename, "pages": len(pages)}
    if "txt" in formats:
        entry["text"] = f"{name}.txt"
        texts = ["\n".join(line.text for line in page.lines) for page in pages]
        target.write(entry["text"], join_pages(texts).encode("utf-8"))
    for kind in ("page", "alto"):
        if kind not in formats:
            continue
        files = []
        for page in pages:
            path = f"{kind}/{name}/{name}-{page.number:04d}.xml"
            data = (
                page_xml(page, run.created_at, changed)
                if kind == "page"
                else alto_xml(page, changed)
            )
            target.write(path, data)
            files.append(path)
        entry["page_xml" if kind == "page" else "alto"] = files
    return entry


def _records(
    session: Session,
    run: Run,
    target: Target,
    formats: Collection[Format],
    version: Version,
    dialect: csvx.CsvDialect,
) -> dict[str, Any]:
    export = run_export(run, version)
    out: dict[str, Any] = {"fields": list(export.fields), "count": 0}
    if "csv" in formats:
        with target.text("records.csv") as handle:
            out["count"] = csvx.write_csv(
                handle, export_records(session, export), export.fields, dialect
            )
        out["csv"] = {
            "file": "records.csv",
            "delimiter": dialect.delimiter,
            "bom": dialect.bom,
            "line_terminator": dialect.line_terminator,
            "formulas_neutralised": "cells starting with = + - @ tab or CR begin with '",
            "columns": csvx.header(export.fields),
        }
    if "jsonl" in formats:
        with target.text("records.jsonl") as handle:
            out["count"] = jsonl.write_jsonl(handle, export_records(session, export), export.fields)
        out["jsonl"] = {"file": "records.jsonl", "values": "as stored (not neutralised)"}
    return out


def manifest(run: Run, written: dict[str, Any], version: Version) -> dict[str, Any]:
    """What the zip holds and how the run made it."""
    return {
        "format": "histocr-export",
        "format_version": MANIFEST_FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "histocr_version": _histocr_version(),
        "version": version,
        "run": {
            "id": run.id,
            "name": run.name,
            "project_id": run.project_id,
            "status": run.status,
            "created_at": run.created_at.isoformat(),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
        "config": {
            "schema_fields": list(run.config.schema_fields),
            "stages": [
                stage.model_dump(mode="json", exclude={"prompt"}) for stage in run.config.stages
            ],
        },
        "page_separator": "form feed (\\f) between pages in the .txt files",
        **written,
    }


def write_bundle(
    session: Session, run: Run, handle: IO[bytes], *, version: Version, dialect: csvx.CsvDialect
) -> None:
    """The run's zip: every document in every format, the records, the manifest."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        written = write_exports(
            session, run, ZipTarget(archive), formats=FORMATS, version=version, dialect=dialect
        )
        document = manifest(run, written, version)
        archive.writestr("manifest.json", json.dumps(document, indent=2, ensure_ascii=False))


def _histocr_version() -> str:
    try:
        return metadata.version("histocr")
    except metadata.PackageNotFoundError:
        return "unknown"
