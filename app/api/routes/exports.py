"""Downloads of a run's results: its records as CSV, a document's transcription as text."""

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from app.api.deps import DocumentDep, RunDep, SessionDep, SettingsDep
from app.api.responses import DocumentedRoute, text
from app.api.views import attachment
from app.errors import NotFound
from app.pipeline.export import document_transcription, stream_records_csv

router = APIRouter(tags=["runs"], route_class=DocumentedRoute)


@router.get(
    "/runs/{run_id}/records.csv",
    response_class=StreamingResponse,
    responses=text("text/csv", "the records, one row each, with a header row"),
)
def export_records(run: RunDep, settings: SettingsDep) -> StreamingResponse:
    """The run's records as CSV: schema fields, then document, page, line, run."""
    return StreamingResponse(
        stream_records_csv(settings, run.id),
        media_type="text/csv; charset=utf-8",
        headers=attachment(f"run-{run.id}-records.csv"),
    )


@router.get(
    "/runs/{run_id}/documents/{document_id}/text.txt",
    # Not PlainTextResponse: FastAPI would document the JSON errors as text/plain too.
    response_class=Response,
    responses=text("text/plain", "the transcription, page after page"),
)
def export_text(
    run: RunDep, document: DocumentDep, session: SessionDep, stage: str | None = None
) -> PlainTextResponse:
    """A document's transcription from the run (its last text stage unless `stage` is given)."""
    if document.id not in {d.id for d in run.documents}:
        raise NotFound(f"document {document.id} is not part of run {run.id}")
    stages = run.config.text_stages
    if stage is not None and stage not in stages:
        raise NotFound(f"run {run.id} has no text stage {stage!r} (stages: {', '.join(stages)})")
    text = document_transcription(session, run, document, stage)
    stem = document.filename.rsplit(".", 1)[0]
    return PlainTextResponse(
        text + "\n",
        headers=attachment(f"{stem}-run-{run.id}.txt"),
    )
