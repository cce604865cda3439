"""Starting runs, following their progress, reading results, metrics and exports."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from sqlalchemy import select

from app.api.actor import ActorDep
from app.api.deps import (
    OutboxDep,
    ProjectDep,
    RowId,
    RunDep,
    SessionDep,
    SettingsDep,
    read_in_thread,
    valid_run,
)
from app.api.idempotency import IdempotencyDep
from app.api.responses import DocumentedRoute, errors
from app.api.views import run_public, runs_public
from app.db.tables import (
    MAX_ID,
    SETTLED_RUN_STATUSES,
    EvaluationReason,
    Run,
)
from app.errors import Conflict
from app.pipeline.engines import engines_public
from app.pipeline.run_config import StageRequest, build_run_config, default_stages
from app.schemas.runs import (
    RunCreate,
    RunPublic,
)
from app.services.estimates import estimate_tokens
from app.services.evaluations import record_evaluation, run_metrics
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
