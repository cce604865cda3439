"""Evaluate: score a run against ground truth when it finishes, and settle its status."""

import logging

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.session import utcnow
from app.db.tables import (
    SETTLED_RUN_STATUSES,
    DocumentStatus,
    EvaluationReason,
    Run,
    RunStatus,
    StageResult,
    StageStatus,
)
from app.pipeline.dispatch import EVALUATE_TASK
from app.pipeline.scheduler import is_settled
from app.services.evaluations import AUTOMATIC, record_evaluation
from workers.celery_app import celery_app
from workers.context import TaskContext, celery_context

logger = logging.getLogger(__name__)


def evaluate_run(ctx: TaskContext, run_id: int) -> None:
    """Store the run's final status (done, partial or failed) and, if it has none yet, its
    first evaluation. Scores already given are never replaced: re-scoring against newer ground
    truth is asked for explicitly (`POST /api/v1/runs/{id}/evaluate`) and adds an evaluation."""
    with ctx.session() as session:
        run = session.get(Run, run_id)
        if run is None or not is_settled(session, run):
            return
        was_settled = run.status in SETTLED_RUN_STATUSES
        record_evaluation(
            session=session,
            run=run,
            author=AUTOMATIC,
            reason=EvaluationReason.FINISHED,
            first_only=True,
        )
        run.status = settled_status(session, run)
        if not was_settled or run.finished_at is None:
            run.finished_at = utcnow()
        logger.info("run %s finished: %s", run_id, run.status)


def settled_status(session: Session, run: Run) -> RunStatus:
    """done when every page passed every stage; failed when none did; partial otherwise."""
    counts = dict(
        session.execute(
            select(StageResult.status, func.count())
            .where(StageResult.run_id == run.id)
            .group_by(StageResult.status)
        ).all()
    )
    done = counts.get(StageStatus.DONE, 0)
    not_done = sum(v for k, v in counts.items() if k != StageStatus.DONE)
    failed_documents = any(d.status == DocumentStatus.FAILED for d in run.documents)
    if done == 0:
        return RunStatus.FAILED
    if not_done or failed_documents:
        return RunStatus.PARTIAL
    return RunStatus.DONE


@celery_app.task(name=EVALUATE_TASK)
def evaluate_task(run_id: int) -> None:
    """Celery entry point for evaluation."""
    evaluate_run(celery_context(), run_id)
