"""Starting runs, following their progress, reading results, metrics and exports."""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import PlainTextResponse, StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.actor import ActorDep
from app.api.deps import (
    DocumentDep,
    OutboxDep,
    PageDep,
    ProjectDep,
    RowId,
    RunDep,
    SessionDep,
    SettingsDep,
    read_in_thread,
    valid_run,
)
from app.api.idempotency import IdempotencyDep
from app.api.responses import DocumentedRoute, errors, text
from app.api.views import API, attachment, run_public, runs_public
from app.db.tables import (
    MAX_ID,
    SETTLED_RUN_STATUSES,
    EvaluationReason,
    Line,
    Record,
    Run,
    StageResult,
)
from app.errors import Conflict, NotFound
from app.metrics.alignment import PageAlignment
from app.metrics.text import score_text
from app.pipeline.engines import engines_public
from app.pipeline.export import document_transcription, stream_records_csv
from app.pipeline.quality import page_estimate
from app.pipeline.run_config import TEXT_STAGES, StageRequest, build_run_config, default_stages
from app.schemas.runs import (
    DiffOpPublic,
    LineDiff,
    LinePublic,
    PageCer,
    PageResult,
    RecordPublic,
    RunCreate,
    RunPublic,
    StageResultPublic,
)
from app.services.estimates import estimate_tokens
from app.services.evaluations import page_ground_truth, record_evaluation, run_metrics
from app.services.page_truth import PageTruth, page_truth
from app.services.runs import create_run, select_documents

router = APIRouter(tags=["runs"], route_class=DocumentedRoute)


@router.get("/engines")
def list_engines(settings: SettingsDep) -> list[dict[str, Any]]:
    """The engines this installation knows: stages, parameters with their defaults and limits."""
    return engines_public(settings)


def _requested_stages(body: RunCreate) -> list[StageRequest]:
    return default_stages() if body.stages is None else list(body.stages)


@router.post(
    "/projects/{project_id}/runs",
    status_code=status.HTTP_201_CREATED,
    response_model=RunPublic,
    responses=errors(409, 503),
)
def start_run(
    body: RunCreate,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    outbox: OutboxDep,
    idempotency: IdempotencyDep,
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
    outbox.add(dispatches)
    result = idempotency.save(run_public(session, run))
    session.commit()
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
async def get_run(
    run_id: RowId, settings: SettingsDep, actor: ActorDep, request: Request
) -> RunPublic:
    """A run with its progress (polled: read in one worker thread, see `read_in_thread`)."""
    return await read_in_thread(
        settings, lambda session: run_public(session, valid_run(session, run_id, actor, request))
    )


@router.get("/runs/{run_id}/metrics")
def get_metrics(
    run: RunDep,
    session: SessionDep,
    evaluation: Annotated[
        int | None,
        Query(ge=1, le=MAX_ID, description="an earlier evaluation's number (default: latest)"),
    ] = None,
) -> dict[str, Any]:
    """CER/WER (raw and normalized) per page, document and run; record scores; as fractions;
    with the ground-truth versions they were computed against (`ground_truth`).

    A finished run's scores are those of its latest evaluation (or of `evaluation`), never
    changed by later ground truth: `stale` and `newer_ground_truth` say that newer exists, and
    `evaluations` lists every evaluation kept. A running run's are computed now (`provisional`).
    """
    return run_metrics(session, run, evaluation)


@router.post("/runs/{run_id}/evaluate", status_code=status.HTTP_201_CREATED, responses=errors(409))
def evaluate_again(run: RunDep, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Score a finished run against the current ground truth, as a new evaluation: the earlier
    ones are kept and stay readable (`GET /runs/{id}/metrics?evaluation=N`)."""
    if run.status not in SETTLED_RUN_STATUSES:
        raise Conflict(f"run {run.id} is {run.status}: it is scored when it finishes")
    evaluation = record_evaluation(
        session=session, run=run, author=actor.name, reason=EvaluationReason.RESCORE
    )
    assert evaluation is not None  # only `first_only` evaluations are ever skipped
    return run_metrics(session, run, evaluation.number)


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
    stage = lines[0].stage if lines else run.config.final_text_stage
    truth = page_ground_truth(session, run, page.id)
    aligned = page_truth(session, run, page, stage, truth)
    if aligned is not None:
        lines = _with_ground_truth(lines, aligned.alignment)
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
        ground_truth_aligned=aligned.alignment.gt_text if aligned else None,
        gt_cer=_page_cer(aligned) if aligned else None,
        estimated_cer=page_estimate(session, run, page.id),
    )


def _with_ground_truth(lines: list[LinePublic], alignment: PageAlignment) -> list[LinePublic]:
    """The lines with their aligned ground-truth line, diff and unsure flag (by position: line
    `position` is line `position + 1` of the stage's text the alignment was made on)."""
    out: list[LinePublic] = []
    for line in lines:
        if line.position >= len(alignment.lines):
            out.append(line)
            continue
        match = alignment.lines[line.position]
        diff = LineDiff(
            raw=[DiffOpPublic(op=o.op, gt=o.gt, ocr=o.ocr) for o in match.diff],
            normalized=[DiffOpPublic(op=o.op, gt=o.gt, ocr=o.ocr) for o in match.diff_normalized],
        )
        update = {"gt_text": match.gt_text, "diff": diff, "gt_unsure": match.unsure}
        out.append(line.model_copy(update=update))
    return out


def _page_cer(aligned: PageTruth) -> PageCer:
    raw, strict = aligned.alignment.cer, aligned.alignment.cer_normalized
    return PageCer(
        source=aligned.source,
        stage=aligned.stage,
        cer=raw.rate,
        cer_normalized=strict.rate,
        cer_distance=raw.distance,
        cer_reference_length=raw.reference_length,
        cer_normalized_distance=strict.distance,
        cer_normalized_reference_length=strict.reference_length,
        unsure_lines=aligned.alignment.unsure_lines,
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
