"""The scheduler on SQLite, without a worker or a broker: what it queues, skips and recovers."""

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import get_sessionmaker, utcnow
from app.db.tables import (
    Document,
    DocumentStatus,
    Run,
    RunStatus,
    StageResult,
    StageStatus,
)
from app.pipeline.dispatch import EVALUATE_TASK, INGEST_TASK, Dispatch
from app.pipeline.run_config import RunConfig, StageConfig
from app.pipeline.scheduler import advance, is_settled, materialize, recover_stale
from tests.factories import add_document, add_project, add_run, stages

LEASE_S = 300.0
REQUEUE_AFTER_S = 600.0
MAX_ATTEMPTS = 3


@pytest.fixture
def session(sqlite_settings: Settings) -> Iterator[Session]:
    with get_sessionmaker(sqlite_settings.resolved_database_url)() as session:
        yield session


def page_ids(document: Document) -> list[int]:
    return [page.id for page in document.pages]


def results(session: Session, run: Run, stage: str) -> list[StageResult]:
    """The run's results of one stage, in page order, as the database has them now."""
    return list(
        session.scalars(
            select(StageResult)
            .where(StageResult.run_id == run.id, StageResult.stage == stage)
            .order_by(StageResult.page_id)
            .execution_options(populate_existing=True)
        )
    )


def ids(rows: list[StageResult]) -> list[int]:
    return [row.id for row in rows]


def set_status(rows: list[StageResult], status: str, **values: object) -> None:
    for row in rows:
        row.status = status
        for name, value in values.items():
            setattr(row, name, value)


def recover(session: Session) -> list[Dispatch]:
    return recover_stale(
        session, lease_s=LEASE_S, requeue_after_s=REQUEUE_AFTER_S, max_attempts=MAX_ATTEMPTS
    )


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


# --- materialize --------------------------------------------------------------------------


def test_materialize_creates_one_pending_row_per_page_and_stage_once(session: Session) -> None:
    project = add_project(session)
    ready = add_document(session, project, pages=2)
    ingesting = add_document(session, project, pages=1, status=DocumentStatus.INGESTING)
    add_document(session, project, pages=3)  # not in the run
    config = RunConfig(
        stages=(
            StageConfig(stage="ocr", engine="tesseract"),
            StageConfig(stage="extract", engine="openai", prompt_version="v7"),
        )
    )
    run = add_run(session, project, [ready, ingesting], config)

    materialize(session, run)

    def rows() -> set[tuple]:
        return set(
            session.execute(
                select(
                    StageResult.id,
                    StageResult.page_id,
                    StageResult.stage,
                    StageResult.position,
                    StageResult.status,
                    StageResult.engine,
                    StageResult.prompt_version,
                    StageResult.attempts,
                ).where(StageResult.run_id == run.id)
            ).all()
        )

    first = rows()
    expected = {
        (page_id, stage, position, "pending", engine, version, 0)
        for page_id in page_ids(ready)
        for position, (stage, engine, version) in enumerate(
            [("ocr", "tesseract", None), ("extract", "openai", "v7")]
        )
    }
    assert {row[1:] for row in first} == expected

    materialize(session, run)
    assert rows() == first, "a second materialize must not add or change rows"

    # Once the other document is ingested, only its pages are added.
    ingesting.status = DocumentStatus.READY
    materialize(session, run)
    added = rows() - first
    assert {(row[1], row[2]) for row in added} == {
        (page_ids(ingesting)[0], "ocr"),
        (page_ids(ingesting)[0], "extract"),
    }
    assert first <= rows()


# --- advance ------------------------------------------------------------------------------


def test_advance_queues_the_first_stage_in_batches_on_the_stage_queue(session: Session) -> None:
    project = add_project(session)
    document = add_document(session, project, pages=5)
    config = RunConfig(
        stages=(
            StageConfig(stage="ocr", engine="openai", queue="llm", batch_size=2),
            StageConfig(stage="extract", engine="rules", queue="cpu", batch_size=8),
        )
    )
    run = add_run(session, project, [document], config)
    materialize(session, run)
    ocr = ids(results(session, run, "ocr"))
    before = utcnow()

    dispatches = advance(session, run)

    assert dispatches == [
        Dispatch(task="histocr.ocr", args=(ocr[0:2],), queue="llm"),
        Dispatch(task="histocr.ocr", args=(ocr[2:4],), queue="llm"),
        Dispatch(task="histocr.ocr", args=(ocr[4:5],), queue="llm"),
    ]
    queued = results(session, run, "ocr")
    assert {row.status for row in queued} == {StageStatus.QUEUED}
    assert all(row.queued_at is not None and row.queued_at >= before for row in queued)
    assert {row.status for row in results(session, run, "extract")} == {StageStatus.PENDING}
    assert session.scalar(select(Run.status).where(Run.id == run.id)) == RunStatus.RUNNING

    assert advance(session, run) == [], "queued rows must not be queued a second time"


def test_advance_queues_a_stage_once_its_predecessor_is_done(session: Session) -> None:
    project = add_project(session)
    document = add_document(session, project, pages=3)
    run = add_run(session, project, [document], stages("ocr", "extract", batch_size=8))
    materialize(session, run)
    advance(session, run)
    ocr = results(session, run, "ocr")
    extract = ids(results(session, run, "extract"))
    set_status(ocr[:2], StageStatus.DONE)

    # Limited to one page, as a task that stored that page asks.
    assert advance(session, run, page_ids=[ocr[0].page_id]) == [
        Dispatch(task="histocr.extract", args=([extract[0]],), queue="cpu")
    ]
    assert advance(session, run) == [
        Dispatch(task="histocr.extract", args=([extract[1]],), queue="cpu")
    ]
    assert [row.status for row in results(session, run, "extract")] == [
        StageStatus.QUEUED,
        StageStatus.QUEUED,
        StageStatus.PENDING,  # its OCR is still queued
    ]


def test_a_stage_after_a_failed_one_is_skipped_with_the_reason(session: Session) -> None:
    project = add_project(session)
    document = add_document(session, project, pages=2)
    run = add_run(session, project, [document], stages("ocr", "correct", "extract"))
    materialize(session, run)
    advance(session, run)
    failed, done = results(session, run, "ocr")
    set_status([failed], StageStatus.FAILED, error="tesseract crashed")
    set_status([done], StageStatus.DONE)

    dispatches = advance(session, run)

    correct = results(session, run, "correct")
    extract = results(session, run, "extract")
    assert dispatches == [Dispatch(task="histocr.correct", args=([correct[1].id],), queue="cpu")]
    assert correct[0].status == StageStatus.SKIPPED
    assert correct[0].error == "not run: the ocr stage did not succeed"
    assert correct[0].finished_at is not None
    # A skip passes down the page's whole pipeline in the same pass.
    assert extract[0].status == StageStatus.SKIPPED
    assert extract[0].error == "not run: the correct stage did not succeed"
    assert extract[1].status == StageStatus.PENDING


def test_two_advances_at_once_queue_each_row_once(sqlite_settings: Settings) -> None:
    """Both read the rows as pending; only the first to claim them queues them."""
    make_session = get_sessionmaker(sqlite_settings.resolved_database_url)
    with make_session() as setup:
        project = add_project(setup)
        document = add_document(setup, project, pages=2)
        run_id = add_run(setup, project, [document], stages("ocr", batch_size=2)).id
        materialize(setup, setup.get_one(Run, run_id))
        setup.commit()
    with make_session() as late, make_session() as early:
        late_run = late.get_one(Run, run_id)
        pending = results(late, late_run, "ocr")  # loaded before the other one claims them
        assert {row.status for row in pending} == {StageStatus.PENDING}
        first = advance(early, early.get_one(Run, run_id))
        early.commit()

        assert first == [Dispatch(task="histocr.ocr", args=(ids(pending),), queue="cpu")]
        assert advance(late, late_run) == []


# --- settling -----------------------------------------------------------------------------


def test_the_evaluation_is_queued_once_every_row_is_final_and_ingest_is_over(
    session: Session,
) -> None:
    project = add_project(session)
    ready = add_document(session, project, pages=2)
    uploaded = add_document(session, project, pages=0, status=DocumentStatus.UPLOADED)
    run = add_run(session, project, [ready, uploaded], stages("ocr", "extract"))
    materialize(session, run)
    evaluate = Dispatch(task=EVALUATE_TASK, args=(run.id,), queue="cpu")

    assert evaluate not in advance(session, run)
    ocr = results(session, run, "ocr")
    set_status(ocr[:1], StageStatus.DONE)
    set_status(ocr[1:], StageStatus.FAILED)
    advance(session, run)
    set_status(results(session, run, "extract")[:1], StageStatus.DONE)

    # Every row is final now (the second page's extract was skipped), but one document is
    # still waiting for ingest: its pages would join the run.
    for status in (DocumentStatus.UPLOADED, DocumentStatus.INGESTING):
        uploaded.status = status
        assert not is_settled(session, run), status
        assert evaluate not in advance(session, run), status

    uploaded.status = DocumentStatus.FAILED
    assert is_settled(session, run)
    assert advance(session, run) == [evaluate]


@pytest.mark.parametrize("open_status", [StageStatus.QUEUED, StageStatus.RUNNING])
def test_one_open_row_keeps_the_run_unsettled(session: Session, open_status: str) -> None:
    project = add_project(session)
    document = add_document(session, project, pages=3)
    run = add_run(session, project, [document], stages("ocr"))
    materialize(session, run)
    rows = results(session, run, "ocr")
    set_status(rows[:2], StageStatus.DONE)
    set_status(rows[2:], open_status)

    assert not is_settled(session, run)
    assert advance(session, run) == []

    set_status(rows[2:], StageStatus.SKIPPED)
    assert is_settled(session, run)


# --- recovery -----------------------------------------------------------------------------


def started_run(session: Session, pages: int) -> tuple[Run, list[StageResult]]:
    """A run of OCR then extraction whose OCR rows are all queued."""
    project = add_project(session)
    document = add_document(session, project, pages=pages)
    run = add_run(session, project, [document], stages("ocr", "extract"))
    materialize(session, run)
    advance(session, run)
    return run, results(session, run, "ocr")


def test_a_running_row_past_its_lease_is_queued_again(session: Session) -> None:
    run, (dead, alive) = started_run(session, pages=2)
    set_status([dead], StageStatus.RUNNING, attempts=1, heartbeat_at=ago(LEASE_S + 60))
    set_status([alive], StageStatus.RUNNING, attempts=1, heartbeat_at=ago(LEASE_S - 60))

    dispatches = recover(session)

    assert dispatches == [Dispatch(task="histocr.ocr", args=([dead.id],), queue="cpu")]
    dead_now, alive_now = results(session, run, "ocr")
    assert dead_now.status == StageStatus.QUEUED
    assert "stopped responding on attempt 1" in (dead_now.error or "")
    assert alive_now.status == StageStatus.RUNNING and alive_now.error is None


def test_a_running_row_past_its_lease_on_its_last_attempt_fails(session: Session) -> None:
    run, (dead,) = started_run(session, pages=1)
    set_status([dead], StageStatus.RUNNING, attempts=MAX_ATTEMPTS, heartbeat_at=ago(LEASE_S * 2))

    dispatches = recover(session)

    (failed,) = results(session, run, "ocr")
    assert failed.status == StageStatus.FAILED
    assert failed.error == f"the worker stopped responding (attempt 3 of {MAX_ATTEMPTS})"
    assert failed.finished_at is not None
    (extract,) = results(session, run, "extract")
    assert extract.status == StageStatus.SKIPPED
    # Nothing left to run: the run is settled, so its evaluation is what gets queued.
    assert dispatches == [Dispatch(task=EVALUATE_TASK, args=(run.id,), queue="cpu")]


def test_a_queued_row_whose_message_was_lost_is_queued_again(session: Session) -> None:
    run, (lost, waiting) = started_run(session, pages=2)
    set_status([lost], StageStatus.QUEUED, queued_at=ago(REQUEUE_AFTER_S + 60))
    set_status([waiting], StageStatus.QUEUED, queued_at=ago(REQUEUE_AFTER_S - 60))
    before = utcnow()

    dispatches = recover(session)

    assert dispatches == [Dispatch(task="histocr.ocr", args=([lost.id],), queue="cpu")]
    lost_now, waiting_now = results(session, run, "ocr")
    assert lost_now.status == StageStatus.QUEUED and lost_now.queued_at >= before
    assert waiting_now.status == StageStatus.QUEUED and waiting_now.queued_at < before


def test_a_stale_ingest_is_queued_again(session: Session) -> None:
    project = add_project(session)
    died = add_document(session, project, pages=0, status=DocumentStatus.INGESTING)
    lost = add_document(session, project, pages=0, status=DocumentStatus.UPLOADED)
    working = add_document(session, project, pages=0, status=DocumentStatus.INGESTING)
    waiting = add_document(session, project, pages=0, status=DocumentStatus.UPLOADED)
    died.updated_at = ago(LEASE_S + 60)
    lost.updated_at = ago(REQUEUE_AFTER_S + 60)
    working.updated_at = ago(LEASE_S - 60)
    waiting.updated_at = ago(REQUEUE_AFTER_S - 60)
    session.flush()
    before = utcnow()

    dispatches = recover(session)

    assert sorted(dispatches, key=lambda d: d.args) == [
        Dispatch(task=INGEST_TASK, args=(died.id,), queue="cpu"),
        Dispatch(task=INGEST_TASK, args=(lost.id,), queue="cpu"),
    ]
    statuses = dict(session.execute(select(Document.id, Document.status)).all())
    assert statuses == {
        died.id: DocumentStatus.UPLOADED,
        lost.id: DocumentStatus.UPLOADED,
        working.id: DocumentStatus.INGESTING,
        waiting.id: DocumentStatus.UPLOADED,
    }
    # The clock restarts, so the next sweep does not queue the same ingest again.
    assert died.updated_at >= before and lost.updated_at >= before
    assert recover(session) == []


def test_recovery_advances_runs_left_with_pending_work(session: Session) -> None:
    """A run whose queueing was lost after materialize (a crash between the two) goes on."""
    project = add_project(session)
    document = add_document(session, project, pages=1)
    run = add_run(session, project, [document], stages("ocr"))
    materialize(session, run)

    dispatches = recover(session)

    (row,) = results(session, run, "ocr")
    assert row.status == StageStatus.QUEUED
    assert dispatches == [Dispatch(task="histocr.ocr", args=([row.id],), queue="cpu")]
