"""Deciding what is ready to run. The database is the source of truth, not the broker."""

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.db.session import utcnow
from app.db.tables import (
    TERMINAL_STAGE_STATUSES,
    Document,
    DocumentStatus,
    Page,
    Run,
    RunStatus,
    StageResult,
    StageStatus,
    run_documents,
)
from app.pipeline.dispatch import EVALUATE_TASK, INGEST_TASK, STAGE_TASKS, Dispatch

logger = logging.getLogger(__name__)


def lock_documents(session: Session, document_ids: Sequence[int]) -> None:
    """Lock the documents' rows until the transaction ends (a no-op update: row locks on
    PostgreSQL, the write lock on SQLite), before reading whether they are ingested.

    A run created while one of its documents finishes ingest would otherwise be lost between
    the two: the run reads the document as still ingesting, the ingest (not seeing the new run)
    materializes no run, and the run settles as done without that document's pages. Ingest
    updates the document's status before it looks for waiting runs, so with this lock one of
    the two always sees the other.
    """
    if document_ids:
        session.execute(
            update(Document)
            .where(Document.id.in_(list(document_ids)))
            .values(status=Document.status)
            .execution_options(synchronize_session=False)
        )


def materialize(session: Session, run: Run) -> None:
    """Create the pending stage results for every page of the run's ingested documents."""
    existing = set(
        session.execute(
            select(StageResult.page_id, StageResult.stage).where(StageResult.run_id == run.id)
        ).all()
    )
    page_ids = session.scalars(
        select(Page.id)
        .join(run_documents, run_documents.c.document_id == Page.document_id)
        .join(Document, Document.id == Page.document_id)
        .where(run_documents.c.run_id == run.id, Document.status == DocumentStatus.READY)
        .order_by(Page.document_id, Page.number)
    ).all()
    rows: list[dict[str, Any]] = [
        {
            "run_id": run.id,
            "page_id": page_id,
            "stage": stage.stage,
            "position": position,
            "status": StageStatus.PENDING,
            "engine": stage.engine,
            # What the engine used is recorded when the page is done (see workers.tasks.stages).
            "parameters": {},
            "prompt_version": stage.prompt_version,
            "attempts": 0,
        }
        for page_id in page_ids
        for position, stage in enumerate(run.config.stages)
        if (page_id, stage.stage) not in existing
    ]
    if rows:
        # One statement for a whole run: thousands of pages are one round trip, not thousands.
        session.execute(insert(StageResult), rows)


def lock_run(session: Session, run_id: int) -> Run | None:
    """The run, its row locked until the transaction ends (PostgreSQL; SQLite has one writer).

    Whoever finishes stage results and then asks whether the run is settled takes this lock
    first: two tasks finishing the last pages at the same moment would otherwise each count the
    other's pages as still running (neither sees the other's uncommitted rows) and neither would
    queue the evaluation, leaving the run open until the recovery sweep.
    """
    return session.scalars(
        select(Run)
        .where(Run.id == run_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).first()


def advance(session: Session, run: Run, page_ids: Iterable[int] | None = None) -> list[Dispatch]:
    """Queue every stage whose predecessor is done; skip those whose predecessor failed."""
    query = select(StageResult).where(StageResult.run_id == run.id)
    if page_ids is not None:
        query = query.where(StageResult.page_id.in_(list(page_ids)))
    by_page: dict[int, list[StageResult]] = defaultdict(list)
    for result in session.scalars(query.order_by(StageResult.page_id, StageResult.position)):
        by_page[result.page_id].append(result)
    ready: list[StageResult] = []
    for results in by_page.values():
        ready.extend(_ready_on_page(results))
    claimed = _claim_for_queue(session, ready)
    dispatches = _batch(run, claimed)
    if run.status == RunStatus.PENDING and (claimed or by_page):
        run.status = RunStatus.RUNNING
    if is_settled(session, run):
        dispatches.append(Dispatch(task=EVALUATE_TASK, args=(run.id,), queue="cpu"))
    session.flush()
    return dispatches


def _ready_on_page(results: list[StageResult]) -> list[StageResult]:
    previous: StageResult | None = None
    ready = []
    for result in results:
        if result.status == StageStatus.PENDING:
            if previous is None or previous.status == StageStatus.DONE:
                ready.append(result)
            elif previous.status in (StageStatus.FAILED, StageStatus.SKIPPED):
                result.status = StageStatus.SKIPPED
                result.error = f"not run: the {previous.stage} stage did not succeed"
                result.finished_at = utcnow()
        previous = result
    return ready


def _claim_for_queue(session: Session, ready: list[StageResult]) -> list[StageResult]:
    """Move pending → queued, keeping only those nobody else moved first (two may advance)."""
    if not ready:
        return []
    now = utcnow()
    taken: set[int] = set()
    ids = [r.id for r in ready]
    for start in range(0, len(ids), 1000):
        taken.update(
            session.scalars(
                update(StageResult)
                .where(
                    StageResult.id.in_(ids[start : start + 1000]),
                    StageResult.status == StageStatus.PENDING,
                )
                .values(status=StageStatus.QUEUED, queued_at=now)
                .returning(StageResult.id)
                .execution_options(synchronize_session=False)
            )
        )
    claimed = [r for r in ready if r.id in taken]
    for result in claimed:
        # The row says so already; keep the loaded object in step without writing it again.
        set_committed_value(result, "status", StageStatus.QUEUED)
        set_committed_value(result, "queued_at", now)
    return claimed


def _batch(run: Run, results: list[StageResult]) -> list[Dispatch]:
    groups: dict[str, list[int]] = defaultdict(list)
    for result in results:
        groups[result.stage].append(result.id)
    dispatches = []
    for name, ids in groups.items():
        stage = run.config.stage(name)
        for start in range(0, len(ids), stage.batch_size):
            dispatches.append(
                Dispatch(
                    task=STAGE_TASKS[name],
                    args=(ids[start : start + stage.batch_size],),
                    queue=stage.queue,
                )
            )
    return dispatches


def is_settled(session: Session, run: Run) -> bool:
    """True when every document is ingested (or failed) and every stage result is final."""
    waiting_documents = session.scalar(
        select(func.count())
        .select_from(Document)
        .join(run_documents, run_documents.c.document_id == Document.id)
        .where(
            run_documents.c.run_id == run.id,
            Document.status.in_([DocumentStatus.UPLOADED, DocumentStatus.INGESTING]),
        )
    )
    if waiting_documents:
        return False
    open_results = session.scalar(
        select(func.count())
        .select_from(StageResult)
        .where(
            StageResult.run_id == run.id,
            StageResult.status.not_in(list(TERMINAL_STAGE_STATUSES)),
        )
    )
    return not open_results


def runs_waiting_for(session: Session, document_id: int) -> list[Run]:
    """Unfinished runs that include a document (to continue them once it is ingested)."""
    return list(
        session.scalars(
            select(Run)
            .join(run_documents, run_documents.c.run_id == Run.id)
            .where(
                run_documents.c.document_id == document_id,
                Run.status.in_([RunStatus.PENDING, RunStatus.RUNNING]),
            )
        )
    )


def recover_stale(
    session: Session, *, lease_s: float, requeue_after_s: float, max_attempts: int
) -> list[Dispatch]:
    """Find work a dead worker or a lost message left behind and make it runnable again."""
    now = utcnow()
    dead = session.scalars(
        select(StageResult).where(
            StageResult.status == StageStatus.RUNNING,
            StageResult.heartbeat_at < now - timedelta(seconds=lease_s),
        )
    ).all()
    touched_runs: set[int] = set()
    for result in dead:
        touched_runs.add(result.run_id)
        if result.attempts >= max_attempts:
            result.status = StageStatus.FAILED
            result.error = (
                f"the worker stopped responding (attempt {result.attempts} of {max_attempts})"
            )
            result.finished_at = now
        else:
            result.status = StageStatus.PENDING
            result.error = f"the worker stopped responding on attempt {result.attempts}; retrying"
        logger.warning("stage result %s: worker lease expired, now %s", result.id, result.status)
    lost = session.scalars(
        select(StageResult).where(
            StageResult.status == StageStatus.QUEUED,
            StageResult.queued_at < now - timedelta(seconds=requeue_after_s),
        )
    ).all()
    for result in lost:
        touched_runs.add(result.run_id)
        result.status = StageStatus.PENDING
        logger.warning("stage result %s: queued too long, queueing again", result.id)
    session.flush()
    dispatches = _recover_ingest(session, now=now, lease_s=lease_s, requeue_after_s=requeue_after_s)
    for run_id in sorted(touched_runs | set(_idle_runs(session))):
        run = session.get(Run, run_id)
        if run is not None:
            dispatches.extend(advance(session, run))
    return dispatches


def _idle_runs(session: Session) -> list[int]:
    """Unfinished runs with nothing queued or running: left with pending work, or settled
    without their evaluation (a crash between a commit and its dispatch).

    A run with work in flight goes on as its tasks store their pages, and its lost work comes
    back above (expired leases, messages queued too long); advancing it loads every row of the
    run (~1 s for 5,000 pages), too much for a sweep every few seconds.
    """
    in_flight = (
        select(StageResult.id)
        .where(
            StageResult.run_id == Run.id,
            StageResult.status.in_([StageStatus.QUEUED, StageStatus.RUNNING]),
        )
        .exists()
    )
    return list(
        session.scalars(
            select(Run.id).where(Run.status.in_([RunStatus.PENDING, RunStatus.RUNNING]), ~in_flight)
        )
    )


def _recover_ingest(
    session: Session, *, now: datetime, lease_s: float, requeue_after_s: float
) -> list[Dispatch]:
    """Documents whose ingest died (no progress within the lease) or whose message was lost."""
    stale = session.scalars(
        select(Document).where(
            (
                (Document.status == DocumentStatus.INGESTING)
                & (Document.updated_at < now - timedelta(seconds=lease_s))
            )
            | (
                (Document.status == DocumentStatus.UPLOADED)
                & (Document.updated_at < now - timedelta(seconds=requeue_after_s))
            )
        )
    ).all()
    dispatches = []
    for document in stale:
        logger.warning(
            "document %s: ingest lost (%s), queueing again", document.id, document.status
        )
        document.status = DocumentStatus.UPLOADED
        document.updated_at = now
        dispatches.append(Dispatch(task=INGEST_TASK, args=(document.id,), queue="cpu"))
    session.flush()
    return dispatches
