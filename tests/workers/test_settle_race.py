"""Two tasks storing the last pages of a run at the same moment: the run is still evaluated."""

import threading

from sqlalchemy import select

import workers.tasks.stages as stages
from app.db.session import session_scope
from app.db.tables import StageResult
from app.pipeline import scheduler
from app.pipeline.dispatch import EVALUATE_TASK
from app.pipeline.scheduler import is_settled as real_is_settled
from models.base import EngineError
from tests.helpers import RecordingDispatcher
from workers.context import make_context
from workers.tasks.ingest import ingest_document


def test_concurrent_stores_of_the_last_pages_queue_the_evaluation(
    postgres_settings, client_for, monkeypatch
):
    settings = postgres_settings
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "race"}).json()
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("two.txt", "Müller, Peter\fSchmidt, Anna".encode(), "text/plain")},
    )
    context = make_context(settings, RecordingDispatcher())
    ingest_document(context, upload.json()["documents"][0]["id"])
    run = client.post(
        f"/api/v1/projects/{project['id']}/runs",
        json={"stages": [{"stage": "ocr", "engine": "import"}]},
    ).json()
    with session_scope(settings.resolved_database_url) as session:
        ids = list(
            session.scalars(
                select(StageResult.id)
                .where(StageResult.run_id == run["id"])
                .order_by(StageResult.id)
            )
        )
    assert len(ids) == 2
    # Each of two tasks claims one page, then both store their page at the same time.
    claimed = [stages._claim(context, "ocr", [result_id])[0] for result_id in ids]
    before_count = threading.Barrier(2, timeout=1.5)
    after_count = threading.Barrier(2, timeout=1.5)

    def meet(barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # the other store waits for the run's lock: go on alone

    def check_together(session, run):  # type: ignore[no-untyped-def]
        meet(before_count)  # both have written their page, neither has committed
        settled = real_is_settled(session, run)
        meet(after_count)  # both have counted before either commits
        return settled

    monkeypatch.setattr(scheduler, "is_settled", check_together)
    failed = EngineError("page unreadable", retryable=False)
    threads = [
        threading.Thread(target=stages._store, args=(context, run["id"], pages, [failed], {}))
        for pages in claimed
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    evaluations = [d for d in context.dispatcher.sent if d.task == EVALUATE_TASK]
    assert len(evaluations) == 1, context.dispatcher.sent
