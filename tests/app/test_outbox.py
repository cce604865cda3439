"""With the broker down, creating POSTs still answer 201 at once: the work is recorded in the
outbox with the data, and the recovery sweep sends it once a broker takes it again."""

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.config import Settings
from app.db.session import get_engine, session_scope
from app.db.tables import Document, OutboxMessage, Run
from app.pipeline.celery_app import create_celery
from app.pipeline.dispatch import (
    EVALUATE_TASK,
    INGEST_TASK,
    STAGE_TASKS,
    CeleryDispatcher,
    Dispatch,
    InlineDispatcher,
)
from app.pipeline.outbox import Outbox, enqueue, pending_count, send_due
from app.pipeline.recovery import recover_once
from tests.conftest import REDIS_URL, ROOT
from tests.helpers import PRINTED_LINES, RecordingDispatcher, render_page
from tests.test_flow import wait_for_run

API = "/api/v1"
#: Nothing listens on port 1: a connection is refused at once, as with Redis stopped.
DEAD_BROKER = "redis://127.0.0.1:1/0"
#: "At once" for a request whose publish fails: the publish gives up within about two seconds
#: (app/pipeline/dispatch.py); the rest is the request's own work.
PROMPT_S = 6.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Settings:
    """The same test on the embedded and the distributed database."""
    return request.getfixturevalue(f"{request.param}_settings")


def broker_at(settings: Settings, url: str) -> Settings:
    return settings.model_copy(update={"broker_url": url})


def outbox_rows(settings: Settings) -> list[OutboxMessage]:
    with session_scope(settings.resolved_database_url) as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def count(settings: Settings, table: type) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def working_dispatcher(settings: Settings) -> InlineDispatcher:
    """Real task bodies run in this process (as `histocr process` runs them)."""
    from workers.context import make_context
    from workers.tasks.evaluate import evaluate_run
    from workers.tasks.ingest import ingest_document
    from workers.tasks.stages import run_stage

    dispatcher = InlineDispatcher({})
    ctx = make_context(settings, dispatcher)
    dispatcher.handlers[INGEST_TASK] = lambda doc_id: ingest_document(ctx, doc_id)
    dispatcher.handlers[EVALUATE_TASK] = lambda run_id: evaluate_run(ctx, run_id)
    for stage, task in STAGE_TASKS.items():
        dispatcher.handlers[task] = lambda ids, stage=stage: run_stage(ctx, stage, ids)
    return dispatcher


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_broker_down_posts_answer_201_and_the_sweep_sends_the_work(
    database: Settings, client_for: Callable[[Settings], TestClient], tmp_path: Path
) -> None:
    settings = broker_at(database, DEAD_BROKER)
    client = client_for(settings)
    project = client.post(f"{API}/projects", json={"name": "outage"}).json()
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:2])

    def upload() -> object:
        return client.post(
            f"{API}/projects/{project['id']}/documents",
            files={"files": ("page.png", page.read_bytes(), "image/png")},
            data={"start_run": "true"},
        )

    response, elapsed = timed(upload)
    assert response.status_code == 201, response.text
    assert elapsed < PROMPT_S, f"the upload took {elapsed:.1f} s with the broker down"
    document_id = response.json()["documents"][0]["id"]
    run_id = response.json()["run_id"]
    [row] = outbox_rows(settings)
    assert (row.task, row.args, row.attempts) == (INGEST_TASK, [document_id], 1)
    assert "refused" in (row.last_error or "")

    # The sweep with the broker still down: it tries, gives up at once, loses nothing.
    _, elapsed = timed(lambda: recover_once(settings, CeleryDispatcher(create_celery(settings))))
    assert elapsed < PROMPT_S
    assert [(r.task, r.attempts) for r in outbox_rows(settings)] == [(INGEST_TASK, 2)]

    # A broker that takes tasks again: the next sweep sends the ingest, and the run finishes.
    working = working_dispatcher(settings)
    recover_once(settings, working)
    assert outbox_rows(settings) == []
    working.drain()
    first = client.get(f"{API}/runs/{run_id}").json()
    assert first["status"] == "done", first

    # A run started while the broker is down again: 201, its OCR tasks wait in the outbox.
    response, elapsed = timed(
        lambda: client.post(f"{API}/projects/{project['id']}/runs", json={"name": "again"})
    )
    assert response.status_code == 201, response.text
    assert elapsed < PROMPT_S
    assert {r.task for r in outbox_rows(settings)} == {STAGE_TASKS["ocr"]}
    recover_once(settings, working)
    working.drain()
    second = client.get(f"{API}/runs/{response.json()['id']}").json()
    assert second["status"] == "done", second
    assert first["progress"] == second["progress"]

    assert outbox_rows(settings) == []
    assert count(settings, Document) == 1 and count(settings, Run) == 2


@pytest.mark.postgres
def test_work_recorded_while_redis_was_unreachable_is_done_by_a_real_worker(
    postgres_settings: Settings,
    client_for: Callable[[Settings], TestClient],
    start_worker: Callable[..., object],
    tmp_path: Path,
) -> None:
    client = client_for(broker_at(postgres_settings, DEAD_BROKER))
    project = client.post(f"{API}/projects", json={"name": "outage"}).json()
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:2])
    response = client.post(
        f"{API}/projects/{project['id']}/documents",
        files={"files": ("page.png", page.read_bytes(), "image/png")},
        data={"start_run": "true"},
    )
    assert response.status_code == 201, response.text
    assert pending_count(get_engine(postgres_settings.resolved_database_url)) == 1

    worker = start_worker(postgres_settings)
    recover_once(postgres_settings, CeleryDispatcher(create_celery(postgres_settings)))
    # The worker sweeps too: when its sweep claimed the row first, ours skipped it, and the
    # row is gone once that sweep has published it.
    deadline = time.monotonic() + 30
    while pending_count(get_engine(postgres_settings.resolved_database_url)):
        assert time.monotonic() < deadline, "the pending task was never sent"
        time.sleep(0.2)
    live = client_for(postgres_settings)
    finished = wait_for_run(live, response.json()["run_id"], timeout=180, workers=(worker,))
    assert finished["status"] == "done", finished
    assert count(postgres_settings, Document) == 1 and count(postgres_settings, Run) == 1


class SilentBroker:
    """Accepts connections and never answers: a hung broker, or one behind a dead proxy."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture
def silent_broker() -> Iterator[SilentBroker]:
    broker = SilentBroker()
    yield broker
    broker.close()


def test_a_broker_that_never_answers_does_not_hold_a_request(
    sqlite_settings: Settings,
    client_for: Callable[[Settings], TestClient],
    silent_broker: SilentBroker,
    tmp_path: Path,
) -> None:
    settings = broker_at(sqlite_settings, f"redis://127.0.0.1:{silent_broker.port}/0")
    dispatcher = CeleryDispatcher(create_celery(settings))
    started = time.monotonic()
    with pytest.raises(Exception, match="[Tt]imeout"):
        dispatcher.send([Dispatch(task=INGEST_TASK, args=(1,))])
    assert time.monotonic() - started < 3.5  # two tries of at most a second, and a pause

    client = client_for(settings)
    project = client.post(f"{API}/projects", json={"name": "hung"}).json()
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:1])
    response, elapsed = timed(
        lambda: client.post(
            f"{API}/projects/{project['id']}/documents",
            files={"files": ("page.png", page.read_bytes(), "image/png")},
        )
    )
    assert response.status_code == 201, response.text
    assert elapsed < PROMPT_S
    assert [(r.task, r.attempts) for r in outbox_rows(settings)] == [(INGEST_TASK, 1)]


class Proxy:
    """A TCP relay to Redis that can be cut and restored, like a broker restart."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self.sockets: list[socket.socket] = []
        self.server: socket.socket | None = None

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, args=(self.server,), daemon=True).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread: no new connections
        self.server.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self.sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


def test_publishing_resumes_after_a_broker_restart(sqlite_settings: Settings, redis_url: str):
    """A pooled connection the broker dropped fails once; the retry opens a fresh one."""
    proxy = Proxy(("127.0.0.1", 6379))
    proxy.start()
    database = REDIS_URL.rsplit("/", 1)[1]
    settings = broker_at(sqlite_settings, f"redis://127.0.0.1:{proxy.port}/{database}")
    dispatcher = CeleryDispatcher(create_celery(settings))
    try:
        dispatcher.send([Dispatch(task=INGEST_TASK, args=(1,))])
        proxy.stop()
        with pytest.raises(Exception, match="[Cc]onnect"):
            dispatcher.send([Dispatch(task=INGEST_TASK, args=(2,))])
        proxy.start()
        dispatcher.send([Dispatch(task=INGEST_TASK, args=(3,))])
    finally:
        proxy.stop()
    assert redis.Redis.from_url(redis_url).llen("cpu") == 2


def test_tasks_are_sent_after_the_commit_and_never_after_a_rollback(database: Settings) -> None:
    recorder = RecordingDispatcher()
    url = database.resolved_database_url
    with session_scope(url) as session:
        Outbox(session, recorder).add([Dispatch(task=INGEST_TASK, args=(1,))])
        session.rollback()
        assert recorder.sent == []
        Outbox(session, recorder).add([Dispatch(task=INGEST_TASK, args=(2,))])
        assert recorder.sent == []  # not before the commit: a worker would not find the rows
    assert recorder.sent == [Dispatch(task=INGEST_TASK, args=(2,))]
    assert outbox_rows(database) == []


def test_two_sweeps_at_once_send_each_task_once(database: Settings) -> None:
    url = database.resolved_database_url
    with session_scope(url) as session:
        enqueue(session, [Dispatch(task=INGEST_TASK, args=(n,)) for n in range(400)])
    recorders = [RecordingDispatcher(), RecordingDispatcher()]
    sweeps = [
        threading.Thread(target=send_due, args=(get_engine(url), r), kwargs={"batch": 25})
        for r in recorders
    ]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join()
    sent = [d.args[0] for r in recorders for d in r.sent]
    assert sorted(sent) == list(range(400))
    assert outbox_rows(database) == []


def test_a_delay_counts_from_when_the_task_was_recorded(sqlite_settings: Settings) -> None:
    url = sqlite_settings.resolved_database_url
    with session_scope(url) as session:
        enqueue(session, [Dispatch(task=INGEST_TASK, args=(1,), countdown=30.0)])
        row = session.scalars(select(OutboxMessage)).one()
        row.created_at -= timedelta(seconds=20)  # recorded while the broker was down
    recorder = RecordingDispatcher()
    send_due(get_engine(url), recorder)
    [dispatch] = recorder.sent
    assert dispatch.countdown is not None and 9.0 <= dispatch.countdown <= 10.5


def test_no_route_sends_tasks_itself() -> None:
    """Routes put tasks in the outbox (`OutboxDep`); one that sent them itself would answer
    500 after its commit whenever the broker is down."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("app/api", "app/web")
        for path in (ROOT / folder).rglob("*.py")
        if path.name != "deps.py"
        and ("dispatcher.send" in path.read_text() or "DispatcherDep" in path.read_text())
    ]
    assert offenders == []
