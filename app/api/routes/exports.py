"""Downloads of results: records as CSV or JSON Lines (a run's, or a project's across its runs),
a document's text, a page as PAGE XML or ALTO, and a run's zip of everything.

Every download takes `version`: `latest` (default) is what reviewers left (edited lines and
fields, added records, deleted records left out), `engine` what the engines wrote.
"""

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import Field
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from app.api.deps import (
    DocumentDep,
    PageDep,
    ProjectDep,
    RunDep,
    SessionDep,
    SettingsDep,
    StorageDep,
)
from app.api.responses import DocumentedRoute, binary, text
from app.api.views import attachment
from app.db.tables import MAX_ID, Document, Page, Run
from app.errors import NotFound
from app.pipeline.exports import csvx
from app.pipeline.exports.alto import alto_xml
from app.pipeline.exports.bundle import write_bundle
from app.pipeline.exports.pagexml import page_xml
from app.pipeline.exports.records import RecordExport, run_export
from app.pipeline.exports.sources import project_export
from app.pipeline.exports.stream import stream_records
from app.pipeline.exports.text import document_pages, document_stem, document_text
from app.pipeline.versions import Version

router = APIRouter(route_class=DocumentedRoute)

VersionQuery = Annotated[
    Version,
    Query(description="`latest`: as reviewed (edits in, deleted records out); `engine`: as made"),
]
DialectQuery = Annotated[
    csvx.DialectName,
    Query(
        description="`unix`: comma, \\n, no BOM; `excel`: comma, CRLF, UTF-8 BOM; "
        "`excel-de`: semicolon, CRLF, UTF-8 BOM (German Excel opens it in columns)"
    ),
]
DelimiterQuery = Annotated[
    csvx.Delimiter | None, Query(description="overrides the dialect's delimiter")
]
BomQuery = Annotated[
    bool | None, Query(description="a UTF-8 byte order mark first (overrides the dialect's)")
]
StageQuery = Annotated[
    str | None, Query(max_length=20, description="a text stage of the run (default: its last)")
]

_CSV_NOTE = (
    " Cells starting with `=`, `+`, `-`, `@`, a tab or a carriage return get a leading `'` so "
    "that a spreadsheet shows them as text instead of running them as formulas; that includes "
    "data such as the ditto mark `=`. The JSON Lines export keeps values as they are."
)
_COLUMNS = (
    " Columns: the schema fields, then document, page, line and last_line (of the text the "
    "extraction read, from 1), x0, y0, x1, y1 (the lines' box in page-image pixels, empty "
    "where unknown), run, version and verified (a reviewer verified the page)."
)


def _csv_response(
    settings_url: str, export: RecordExport, dialect: csvx.CsvDialect, name: str
) -> StreamingResponse:
    return StreamingResponse(
        stream_records(settings_url, export, "csv", dialect),
        media_type="text/csv; charset=utf-8",
        headers=attachment(f"{name}.csv"),
    )


def _jsonl_response(settings_url: str, export: RecordExport, name: str) -> StreamingResponse:
    return StreamingResponse(
        stream_records(settings_url, export, "jsonl"),
        media_type="application/x-ndjson",
        headers=attachment(f"{name}.jsonl"),
    )


@router.get(
    "/runs/{run_id}/records.csv",
    tags=["runs"],
    response_class=StreamingResponse,
    responses=text("text/csv", "the records, one row each, with a header row"),
    description="The run's records as CSV, streamed." + _COLUMNS + _CSV_NOTE,
)
def export_records(
    run: RunDep,
    settings: SettingsDep,
    version: VersionQuery = "latest",
    dialect: DialectQuery = "unix",
    delimiter: DelimiterQuery = None,
    bom: BomQuery = None,
) -> StreamingResponse:
    """The run's records as CSV."""
    chosen = csvx.csv_dialect(dialect, delimiter, bom)
    export = run_export(run, version)
    return _csv_response(settings.resolved_database_url, export, chosen, f"run-{run.id}-records")


@router.get(
    "/runs/{run_id}/records.jsonl",
    tags=["runs"],
    response_class=StreamingResponse,
    responses=text("application/x-ndjson", "the records, one JSON object a line"),
)
def export_records_jsonl(
    run: RunDep, settings: SettingsDep, version: VersionQuery = "latest"
) -> StreamingResponse:
    """The run's records as JSON Lines, streamed: one object a record with `fields` (values as
    stored, nothing neutralised) and its provenance (`document`, `page`, `line`, `last_line`,
    `bbox` [x0, y0, x1, y1] or null, `run`, `version`, `verified`, `record_version`)."""
    export = run_export(run, version)
    return _jsonl_response(settings.resolved_database_url, export, f"run-{run.id}-records")


RunIds = Annotated[
    list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None,
    Query(
        alias="run",
        description="runs to take the records from, in order of preference (repeat `run=`); "
        "default: for each document the latest finished run that extracted it",
    ),
]
_PROJECT_NOTE = (
    "Every document's records in one file, each document from one run: by default the latest "
    "finished run (done or partial) that extracted records from it; with `run=` the first "
    "listed run that covers it (documents no listed run covers are left out)."
)


@router.get(
    "/projects/{project_id}/records.csv",
    tags=["projects"],
    response_class=StreamingResponse,
    responses=text("text/csv", "the project's records, one run per document"),
    description=_PROJECT_NOTE + _COLUMNS + _CSV_NOTE,
)
def export_project_records(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    runs: RunIds = None,
    version: VersionQuery = "latest",
    dialect: DialectQuery = "unix",
    delimiter: DelimiterQuery = None,
    bom: BomQuery = None,
) -> StreamingResponse:
    """The project's records as CSV."""
    export = project_export(session, project, version, runs)
    chosen = csvx.csv_dialect(dialect, delimiter, bom)
    name = f"project-{project.id}-records"
    return _csv_response(settings.resolved_database_url, export, chosen, name)


@router.get(
    "/projects/{project_id}/records.jsonl",
    tags=["projects"],
    response_class=StreamingResponse,
    responses=text("application/x-ndjson", "the project's records, one JSON object a line"),
    description=_PROJECT_NOTE + " One JSON object a record, as the run's `records.jsonl`.",
)
def export_project_records_jsonl(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    runs: RunIds = None,
    version: VersionQuery = "latest",
) -> StreamingResponse:
    """The project's records as JSON Lines."""
    export = project_export(session, project, version, runs)
    name = f"project-{project.id}-records"
    return _jsonl_response(settings.resolved_database_url, export, name)


def _text_stage(run: Run, stage: str | None) -> str:
    stages = run.config.text_stages
    if stage is not None and stage not in stages:
        raise NotFound(f"run {run.id} has no text stage {stage!r} (stages: {', '.join(stages)})")
    return stage or run.config.final_text_stage


def _in_run(run: Run, document_id: int) -> Document:
    for document in run.documents:
        if document.id == document_id:
            return document
    raise NotFound(f"document {document_id} is not part of run {run.id}")


@router.get(
    "/runs/{run_id}/documents/{document_id}/text.txt",
    tags=["runs"],
    # Not PlainTextResponse: FastAPI would document the JSON errors as text/plain too.
    response_class=Response,
    responses=text("text/plain", "the transcription, pages separated by form feeds"),
)
def export_text(
    run: RunDep,
    document: DocumentDep,
    session: SessionDep,
    stage: StageQuery = None,
    version: VersionQuery = "latest",
) -> Response:
    """A document's transcription from the run (its last text stage unless `stage` is given):
    UTF-8, every page ending with a line break, a form feed (`\\f`) between pages, as Tesseract
    writes them and as `--import-from` and ground-truth uploads read them back."""
    chosen = _text_stage(run, stage)
    _in_run(run, document.id)
    content = document_text(session, run, document, chosen, version)
    return Response(
        content.encode("utf-8"),
        media_type="text/plain; charset=utf-8",
        headers=attachment(f"{document_stem(document)}-run-{run.id}.txt"),
    )


def _page_file(
    kind: Literal["page", "alto"],
    run: Run,
    page: Page,
    session: Session,
    stage: str | None,
    version: Version,
) -> Response:
    chosen = _text_stage(run, stage)
    document = _in_run(run, page.document_id)
    (content,) = document_pages(session, run, document, chosen, version, pages=[page])
    changed = run.finished_at or run.created_at
    if kind == "page":
        data = page_xml(content, run.created_at, changed)
    else:
        data = alto_xml(content, changed)
    name = f"{document_stem(document)}-{page.number:04d}.{kind}.xml"
    return Response(data, media_type="application/xml", headers=attachment(name))


@router.get(
    "/runs/{run_id}/pages/{page_id}/page.xml",
    tags=["runs"],
    response_class=Response,
    responses=text("application/xml", "the page as PAGE XML 2019"),
)
def export_page_xml(
    run: RunDep,
    page: PageDep,
    session: SessionDep,
    stage: StageQuery = None,
    version: VersionQuery = "latest",
) -> Response:
    """A page as PAGE XML 2019 (Transkribus, eScriptorium): its lines in reading order, each
    with its box as `Coords` and its text; valid against the official `pagecontent.xsd` and
    read back by `--import-from`. A line without a box (an mLLM's) carries the page's box."""
    return _page_file("page", run, page, session, stage, version)


@router.get(
    "/runs/{run_id}/pages/{page_id}/alto.xml",
    tags=["runs"],
    response_class=Response,
    responses=text("application/xml", "the page as ALTO 4.2"),
)
def export_alto_xml(
    run: RunDep,
    page: PageDep,
    session: SessionDep,
    stage: StageQuery = None,
    version: VersionQuery = "latest",
) -> Response:
    """A page as ALTO 4.2: its lines in reading order, each with HPOS/VPOS/WIDTH/HEIGHT and its
    words as `String`s; valid against the official `alto-4-2.xsd` and read back by
    `--import-from` (words joined by single spaces). A line without a box has no position."""
    return _page_file("alto", run, page, session, stage, version)


@router.get(
    "/runs/{run_id}/export.zip",
    tags=["runs"],
    response_class=FileResponse,
    responses=binary("application/zip", description="the run's exports in one zip"),
)
def export_zip(
    run: RunDep,
    session: SessionDep,
    storage: StorageDep,
    version: VersionQuery = "latest",
    dialect: DialectQuery = "unix",
    delimiter: DelimiterQuery = None,
    bom: BomQuery = None,
) -> FileResponse:
    """Everything of the run in one zip: per document its text (`<name>.txt`), PAGE XML and
    ALTO per page (`page/<name>/…`, `alto/<name>/…`), the records as `records.csv` (in the
    dialect asked for) and `records.jsonl`, and `manifest.json` with the run's configuration
    (stages, engines, parameters, schema) and what each file is."""
    folder = storage.root / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".zip", delete=False) as handle:
        path = Path(handle.name)
        try:
            write_bundle(
                session,
                run,
                handle,
                version=version,
                dialect=csvx.csv_dialect(dialect, delimiter, bom),
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return FileResponse(
        path,
        media_type="application/zip",
        filename=f"run-{run.id}-{version}.zip",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
