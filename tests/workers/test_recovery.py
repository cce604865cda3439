"""Nothing is lost: work a killed worker leaves behind is found in the database and redone."""

import threading
import time
from datetime import timedelta

from sqlalchemy import select, update

import workers.tasks.stages as tasks
from app.config import Settings
from app.db.session import session_scope, utcnow
from app.db.tables import StageResult
from app.pipeline import media, scheduler
from app.pipeline.dispatch import INGEST_TASK, Dispatch
from app.pipeline.scheduler import advance, materialize, recover_stale
from tests.conftest import benchmark_file
from tests.factories import add_document, add_project, add_run, stages
from tests.fakes.openai_server import Reply, ok
from tests.helpers import RecordingDispatcher
from tests.test_flow import wait_for_run
from tests.workers.test_llm_pipeline import KEY, MODEL, input_text, llm_settings, worker_env
from workers.context import make_context
from workers.tasks.ingest import ingest_document


def _statuses(settings) -> dict[int, tuple[str, str, int]]:
    with session_scope(settings.resolved_database_url) as session:
        rows = session.scalars(select(StageResult)).all()
        return {r.id: (r.stage, r.status, r.attempts) for r in rows}


def _wait_until_running(settings, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for result_id, (stage, status, _) in _statuses(settings).items():
            if stage == "ocr" and status == "running":
                return result_id
        time.sleep(0.1)
    raise AssertionError(f"no OCR stage started: {_statuses(settings)}")


def test_sigkilled_worker_leaves_work_that_another_worker_finishes(
    sqlite_settings, start_worker, client_for
):
    # kombu's filesystem transport never re-delivers a message whose worker died, so the
    # stage's lease in the database is what brings the page back.
    settings = sqlite_settings.model_copy(
        update={"stage_lease_s": 3.0, "recovery_interval_s": 1.0, "stage_requeue_after_s": 8.0}
    )
    env = {"HISTOCR_STAGE_REQUEUE_AFTER_S": "8"}
    first = start_worker(settings, **env)
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "crash"}).json()
    pdf = benchmark_file("pdfs", "type-1.pdf")
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files=[("files", ("type-1.pdf", pdf.read_bytes(), "application/pdf"))],
        data={"start_run": "true"},
    )
    assert upload.status_code == 201, upload.text
    run_id = upload.json()["run_id"]

    victim = _wait_until_running(settings)
    first.kill()
    assert _statuses(settings)[victim][1] == "running"  # nobody is left to say otherwise

    second = start_worker(settings, **env)
    finished = wait_for_run(client, run_id, timeout=300, workers=(second,))
    assert finished["status"] == "done", finished
    stage, status, attempts = _statuses(settings)[victim]
    assert (stage, status) == ("ocr", "done")
    assert attempts == 2
    assert all(s == "done" for _, s, _ in _statuses(settings).values())
    rows = client.get(f"/api/v1/runs/{run_id}/records.csv").text.strip().splitlines()
    assert len(rows) > 20


def test_missing_language_model_fails_visibly(sqlite_settings, start_worker, client_for):
    worker = start_worker(sqlite_settings)
    client = client_for(sqlite_settings)
    project = client.post("/api/v1/projects", json={"name": "no-model"}).json()
    image = benchmark_file("pdfs", "type-5.pdf")
    document = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files=[("files", ("type-5.pdf", image.read_bytes(), "application/pdf"))],
    ).json()["documents"][0]
    run = client.post(
        f"/api/v1/projects/{project['id']}/runs",
        json={
            "stages": [
                {"stage": "ocr", "engine": "tesseract", "parameters": {"languages": "klingon"}},
                {"stage": "extract", "engine": "rules"},
            ]
        },
    ).json()
    finished = wait_for_run(client, run["id"], timeout=180, workers=(worker,))
    assert finished["status"] == "failed"
    assert finished["stages"]["ocr"]["failed"] == 3
    assert finished["stages"]["extract"]["skipped"] == 3
    page_id = client.get(f"/api/v1/documents/{document['id']}").json()["pages"][0]["id"]
    page = client.get(f"/api/v1/runs/{run['id']}/pages/{page_id}").json()
    ocr = page["stages"][0]
    assert ocr["status"] == "failed" and "klingon" in ocr["error"]
    assert page["stages"][1]["status"] == "skipped"


def _correction_run(client, text: str) -> tuple[int, int]:
    """A run that imports a one-page text and corrects it with the mLLM: (run id, page id)."""
    project = client.post("/api/v1/projects", json={"name": "lease"}).json()
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("page.txt", text.encode(), "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    pipeline = [{"stage": "ocr", "engine": "import"}, {"stage": "correct", "engine": "openai"}]
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": pipeline})
    assert run.status_code == 201, run.text
    return run.json()["id"], upload.json()["documents"][0]["id"]


def _correction_row(settings) -> StageResult | None:
    with session_scope(settings.resolved_database_url) as session:
        row = session.scalars(select(StageResult).where(StageResult.stage == "correct")).first()
        if row is not None:
            session.expunge(row)
        return row


PAGE = "Mueller, Peter Joseph, Baecker, Hochstrasse 12."
OCR_ONLY = stages("ocr", batch_size=8)


def test_a_page_slower_than_the_lease_keeps_it_and_runs_once(
    sqlite_settings, start_worker, client_for, fake_openai
):
    # The answer takes four leases; the worker's recovery sweeps every half second. Without
    # the heartbeat the page would be taken for a dead worker's and sent again.
    lease = 2.0
    server = fake_openai(
        model=MODEL, api_key=KEY, responder=lambda body: ok(input_text(body), delay_s=4 * lease)
    )
    settings = llm_settings(sqlite_settings, server.base_url).model_copy(
        update={"stage_lease_s": lease, "recovery_interval_s": 0.5}
    )
    worker = start_worker(settings, (), **worker_env(server))  # the production layout
    client = client_for(settings)
    run_id, _ = _correction_run(client, PAGE)

    beats = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        row = _correction_row(settings)
        if row is not None and row.status == "running":
            beats.add(row.heartbeat_at - row.started_at)
        if row is not None and row.status == "done":
            break
        time.sleep(0.2)
    finished = wait_for_run(client, run_id, timeout=60, workers=(worker,))
    assert finished["status"] == "done", finished
    row = _correction_row(settings)
    assert row is not None and (row.status, row.attempts, row.text) == ("done", 1, PAGE)
    assert server.stats.requests == 1  # never sent twice
    assert max(beats).total_seconds() > 2 * lease  # the lease was renewed while it waited
    assert "lease expired" not in (worker.log.read_text(errors="replace"))


def test_a_killed_workers_page_runs_again_within_the_default_lease(
    sqlite_settings, start_worker, client_for, fake_openai, capsys
):
    # Default settings: how long a page waits when its worker is SIGKILLed mid-request.
    lease = Settings.model_fields["stage_lease_s"].default
    interval = Settings.model_fields["recovery_interval_s"].default
    assert (sqlite_settings.stage_lease_s, sqlite_settings.recovery_interval_s) == (
        lease,
        interval,
    )
    requests = []

    def responder(body: dict) -> Reply:
        requests.append(time.monotonic())
        # The first request never gets an answer (the worker dies waiting); then at once.
        return ok(input_text(body), delay_s=600 if len(requests) == 1 else 0)

    server = fake_openai(model=MODEL, api_key=KEY, responder=responder)
    settings = llm_settings(sqlite_settings, server.base_url)
    env = worker_env(server)
    first = start_worker(settings, **env)  # one process group: the kill takes its pool too
    client = client_for(settings)
    run_id, _ = _correction_run(client, PAGE)
    deadline = time.monotonic() + 60
    while not requests and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests, "the correction was never sent"
    time.sleep(1.0)  # a beat or none: the lease runs from the last one
    first.kill()
    killed = time.monotonic()
    second = start_worker(settings, **env)  # `serve` restarts a dead worker within 2 s

    requeued = running_again = None
    while time.monotonic() < killed + lease + interval + 30:
        row = _correction_row(settings)
        assert row is not None
        if requeued is None and (row.status != "running" or row.attempts > 1):
            requeued = time.monotonic() - killed
        if row.attempts > 1 and row.status in ("running", "done"):
            running_again = time.monotonic() - killed
            break
        time.sleep(0.1)
    assert requeued is not None and running_again is not None, _correction_row(settings)
    finished = wait_for_run(client, run_id, timeout=60, workers=(second,))
    assert finished["status"] == "done", finished
    row = _correction_row(settings)
    assert row is not None and (row.status, row.attempts, row.text) == ("done", 2, PAGE)
    assert len(requests) == 2
    with capsys.disabled():
        print(
            f"\nrecovery of a SIGKILLed worker's page (lease {lease:g} s, sweep every "
            f"{interval:g} s): queued again after {requeued:.1f} s, "
            f"running again after {running_again:.1f} s"
        )
    # Not before the lease ran out (beats every quarter lease), and well under a minute.
    assert lease * 3 / 4 - 1 <= requeued <= lease + interval + 2
    assert running_again <= lease + interval + 5


def test_an_ingest_slower_than_the_lease_is_not_taken_back(
    sqlite_settings, client_for, monkeypatch
):
    # One page that takes three leases to render, while the recovery sweeps five times a lease.
    lease = 1.0
    settings = sqlite_settings.model_copy(update={"stage_lease_s": lease})
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "slow ingest"}).json()
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("page.txt", PAGE.encode(), "text/plain")},
    )
    document_id = upload.json()["documents"][0]["id"]
    render = media.render_pages

    def slow_render(*args, **kwargs):
        for page in render(*args, **kwargs):
            time.sleep(3 * lease)
            yield page

    monkeypatch.setattr(media, "render_pages", slow_render)
    sent: list[Dispatch] = []
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(lease / 5):
            with session_scope(settings.resolved_database_url) as session:
                sent.extend(
                    recover_stale(session, lease_s=lease, requeue_after_s=600, max_attempts=3)
                )

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        ingest_document(make_context(settings, RecordingDispatcher()), document_id)
    finally:
        stop.set()
        sweeper.join()
    assert [d for d in sent if d.task == INGEST_TASK] == []
    document = client.get(f"/api/v1/documents/{document_id}").json()
    assert (document["status"], document["page_count"]) == ("ready", 1)


def test_a_task_renews_only_the_leases_it_still_holds(sqlite_settings, client_for):
    # A page the recovery took back and another task claimed again is that task's to keep
    # alive: the first task's beats must not hide the second one's death.
    settings = sqlite_settings
    client = client_for(settings)
    context = make_context(settings, RecordingDispatcher())
    project = client.post("/api/v1/projects", json={"name": "beats"}).json()
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("two.txt", f"{PAGE}\f{PAGE}".encode(), "text/plain")},
    )
    ingest_document(context, upload.json()["documents"][0]["id"])
    ocr = [{"stage": "ocr", "engine": "import"}]
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": ocr}).json()
    with session_scope(settings.resolved_database_url) as session:
        ids = list(session.scalars(select(StageResult.id).where(StageResult.run_id == run["id"])))
    claimed, _, _ = tasks._claim(context, "ocr", ids)
    long_ago = utcnow() - timedelta(hours=1)
    with session_scope(settings.resolved_database_url) as session:
        session.execute(update(StageResult).values(heartbeat_at=long_ago))
        # The second page was taken back and claimed again by another task meanwhile.
        session.execute(
            update(StageResult)
            .where(StageResult.id == claimed[1].result_id)
            .values(attempts=StageResult.attempts + 1)
        )

    tasks._beat(context, claimed)

    with session_scope(settings.resolved_database_url) as session:
        beats = dict(session.execute(select(StageResult.id, StageResult.heartbeat_at)).all())
    assert beats[claimed[0].result_id] > long_ago + timedelta(minutes=59)
    assert beats[claimed[1].result_id] == long_ago


def test_a_sweep_leaves_runs_with_work_in_flight_to_their_tasks(sqlite_settings, monkeypatch):
    # Advancing a run reads all its rows (~1 s for 5,000 pages): a sweep every few seconds
    # does it only for runs nothing is running for (stuck, or settled without evaluation).
    with session_scope(sqlite_settings.resolved_database_url) as session:
        project = add_project(session)
        busy = add_run(session, project, [add_document(session, project, pages=50)], OCR_ONLY)
        stuck = add_run(session, project, [add_document(session, project, pages=1)], OCR_ONLY)
        materialize(session, busy)
        materialize(session, stuck)  # a crash before its pages were queued
        advance(session, busy)
        busy_id, stuck_id = busy.id, stuck.id
    advanced: list[int] = []
    real_advance = scheduler.advance

    def counting_advance(session, run, page_ids=None):  # type: ignore[no-untyped-def]
        advanced.append(run.id)
        return real_advance(session, run, page_ids)

    monkeypatch.setattr(scheduler, "advance", counting_advance)
    with session_scope(sqlite_settings.resolved_database_url) as session:
        sent = recover_stale(session, lease_s=30, requeue_after_s=600, max_attempts=3)
    assert advanced == [stuck_id]
    assert [d.args for d in sent] == [([_only_row(sqlite_settings, stuck_id)],)]
    assert busy_id not in advanced  # its 50 rows stay as its tasks left them


def _only_row(settings, run_id: int) -> int:
    with session_scope(settings.resolved_database_url) as session:
        (row_id,) = session.scalars(select(StageResult.id).where(StageResult.run_id == run_id))
        return row_id
