"""Starting runs, following their progress, reading results, metrics and exports."""

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import (
    DispatcherDep,
    DocumentDep,
    PageDep,
    ProjectDep,
    RowId,
    RunDep,
    SessionDep,
    SettingsDep,
    found,
    read_in_thread,
)
from app.api.views import API, attachment, run_public, runs_public
from app.db.tables import (
    SETTLED_RUN_STATUSES,
    GroundTruth,
    GroundTruthKind,
    Line,
    Record,
    Run,
    StageResult,
)
from app.errors import NotFound
from app.metrics.text import score_text
from app.pipeline.engines import engines_public
from app.pipeline.evaluation import compute_run_metrics
from app.pipeline.export import document_transcription, stream_records_csv
from app.pipeline.run_config import TEXT_STAGES, StageRequest, build_run_config, default_stages
from app.schemas.runs import (
    LinePublic,
    PageResult,
    RecordPublic,
    RunCreate,
    RunPublic,
    StageResultPublic,
)
from app.services.estimates import estimate_tokens
from app.services.runs import create_run, select_documents

router = APIRouter(tags=["runs"])


@router.get("/engines")
def list_engines(settings: SettingsDep) -> list[dict[str, Any]]:
    """The engines this installation knows: stages, parameters with their defaults and limits."""
    return engines_public(settings)


def _requested_stages(body: RunCreate) -> list[StageRequest]:
    return default_stages() if body.stages is None else list(body.stages)


@router.post(
    "/projects/{project_id}/runs", status_code=status.HTTP_201_CREATED, response_model=RunPublic
)
def start_run(
    body: RunCreate,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    dispatcher: DispatcherDep,
) -> RunPublic:
    """Start a pipeline over the project's documents (all, or those named)."""
    stages = _requested_stages(body)
    run, dispatches = create_run(
        session=session,
        settings=settings,
        project=project,
        stages=stages,
        document_ids=body.document_ids,
        name=body.name,
    )
    result = run_public(session, run)
    session.commit()
    dispatcher.send(dispatches)
    return result


@router.post("/projects/{project_id}/runs/estimate")
def estimate_run(
    body: RunCreate, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Tokens a run would use: its pages × the average of earlier pages with the same setup."""
    stages = _requested_stages(body)
    config = build_run_config(stages=stages, schema_fields=project.schema_fields, settings=settings)
    documents = select_documents(session=session, project=project, document_ids=body.document_ids)
    return estimate_tokens(session=session, config=config, documents=documents)


@router.get("/projects/{project_id}/runs", response_model=list[RunPublic])
def list_runs(project: ProjectDep, session: SessionDep) -> list[RunPublic]:
    """The project's runs, newest first."""
    runs = session.scalars(select(Run).where(Run.project_id == project.id).order_by(Run.id.desc()))
    return runs_public(session, runs.all())


@router.get("/runs/{run_id}", response_model=RunPublic)
async def get_run(run_id: RowId, settings: SettingsDep) -> RunPublic:
    """A run with its progress (polled: read in one worker thread, see `read_in_thread`)."""
    return await read_in_thread(
        settings, lambda session: run_public(session, found(session, Run, run_id, "run"))
    )


@router.get("/runs/{run_id}/metrics")
def get_metrics(run: RunDep, session: SessionDep) -> dict[str, Any]:
    """CER/WER (raw and normalized) per page, document and run; record scores; as fractions.

    A settled run's are those its evaluation stored; a running run's (or one whose ground truth
    changed since, until it is evaluated again) are computed now and provisional.
    """
    stored = run.metrics if run.status in SETTLED_RUN_STATUSES else None
    metrics = stored if stored is not None else compute_run_metrics(session, run)
    return {"run_id": run.id, "status": run.status} | metrics


@router.get("/runs/{run_id}/pages/{page_id}", response_model=PageResult)
def get_page_result(run: RunDep, page: PageDep, session: SessionDep) -> PageResult:
    """Every stage's output for a page, its records, and its scores where ground truth exists."""
    results = session.scalars(
        select(StageResult)
        .where(StageResult.run_id == run.id, StageResult.page_id == page.id)
        .order_by(StageResult.position)
    ).all()
    if not results and page.document_id not in {d.id for d in run.documents}:
        raise NotFound(f"page {page.id} is not part of run {run.id}")
    records = session.scalars(
        select(Record)
        .where(Record.run_id == run.id, Record.page_id == page.id)
        .order_by(Record.position)
    ).all()
    lines = _page_lines(session, results)
    truth = session.scalar(
        select(GroundTruth).where(
            GroundTruth.page_id == page.id, GroundTruth.kind == GroundTruthKind.TEXT
        )
    )
    metrics = {
        r.stage: score_text(truth.content, r.text or "").as_dict()
        for r in results
        if truth is not None and r.stage in ("ocr", "correct") and r.text is not None
    }
    return PageResult(
        run_id=run.id,
        page_id=page.id,
        document_id=page.document_id,
        number=page.number,
        image_url=f"{API}/pages/{page.id}/image" if page.image_key else None,
        preview_url=f"{API}/pages/{page.id}/preview" if page.preview_key else None,
        stages=[StageResultPublic.model_validate(r, from_attributes=True) for r in results],
        records=[RecordPublic.model_validate(r, from_attributes=True) for r in records],
        lines=lines,
        ground_truth=truth.content if truth else None,
        metrics=metrics,
    )


def _page_lines(session: Session, results: Sequence[StageResult]) -> list[LinePublic]:
    """The lines of the last text stage that has them, with their geometry."""
    stage_of = {r.id: r.stage for r in results if r.stage in TEXT_STAGES}
    if not stage_of:
        return []
    rows = session.scalars(
        select(Line)
        .where(Line.stage_result_id.in_(list(stage_of)))
        .order_by(Line.stage_result_id, Line.position)
    ).all()
    by_stage: dict[str, list[LinePublic]] = {}
    for row in rows:
        stage = stage_of[row.stage_result_id]
        by_stage.setdefault(stage, []).append(
            LinePublic(
                id=row.id,
                stage=stage,
                position=row.position,
                text=row.text,
                diplomatic=row.diplomatic,
                bbox=row.bbox,
                confidence=row.confidence,
                min_confidence=row.min_confidence,
                kind=row.kind,
            )
        )
    latest = [stage for stage in TEXT_STAGES if stage in by_stage]
    return by_stage[latest[-1]] if latest else []


@router.get("/runs/{run_id}/records.csv", response_class=StreamingResponse)
def export_records(run: RunDep, settings: SettingsDep) -> StreamingResponse:
    """The run's records as CSV: schema fields, then document, page, line, run."""
    return StreamingResponse(
        stream_records_csv(settings, run.id),
        media_type="text/csv; charset=utf-8",
        headers=attachment(f"run-{run.id}-records.csv"),
    )


@router.get("/runs/{run_id}/documents/{document_id}/text.txt", response_class=PlainTextResponse)
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
