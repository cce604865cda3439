"""Answers that are true when they are sent: a 201 means the row is there for the next request."""

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from sqlalchemy import Connection, event

from app.config import Settings
from app.db.session import get_engine
from app.main import create_app

pytestmark = pytest.mark.e2e  # a real server and hundreds of requests

TRIES = 300
THREADS = 16
#: How long a commit that wrote waits before it goes to the database (see `slow_commits`).
COMMIT_DELAY_S = 0.02


@contextmanager
def slow_commits(settings: Settings) -> Iterator[None]:
    """Delay each commit that wrote something, as a loaded database server would.

    A response sent before its commit is then read back before the row exists on nearly every
    try, instead of on the few that lose the race on an idle machine; a response sent after
    the commit only comes later.
    """
    engine = get_engine(settings.resolved_database_url)

    def note_write(conn: Connection, _cursor, statement: str, *_args: object) -> None:
        if not statement.lstrip().upper().startswith("SELECT"):
            conn.info["wrote"] = True

    def delay(conn: Connection) -> None:
        if conn.info.pop("wrote", False):
            time.sleep(COMMIT_DELAY_S)

    event.listen(engine, "after_cursor_execute", note_write)
    event.listen(engine, "commit", delay)
    try:
        yield
    finally:
        event.remove(engine, "after_cursor_execute", note_write)
        event.remove(engine, "commit", delay)


@contextmanager
def running_server(settings: Settings) -> Iterator[str]:
    """The app under a real uvicorn server on 127.0.0.1, as `histocr serve` runs it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            threading.Event().wait(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def create_then_read(base: str) -> Counter[str]:
    """Create projects from many threads at once, each read back the moment its 201 arrives."""
    local = threading.local()

    def one(index: int) -> str:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=base, timeout=60)
        created = local.client.post("/api/v1/projects", json={"name": f"race-{index}"})
        if created.status_code != 201:
            return f"create {created.status_code}"
        read = local.client.get(f"/api/v1/projects/{created.json()['id']}")
        return f"read {read.status_code}"

    with ThreadPoolExecutor(THREADS) as pool:
        return Counter(pool.map(one, range(TRIES)))


def test_created_project_is_readable_at_once_sqlite(sqlite_settings):
    with running_server(sqlite_settings) as base, slow_commits(sqlite_settings):
        outcomes = create_then_read(base)
    assert outcomes == {"read 200": TRIES}


@pytest.mark.postgres
def test_created_project_is_readable_at_once_postgres(postgres_settings):
    with running_server(postgres_settings) as base, slow_commits(postgres_settings):
        outcomes = create_then_read(base)
    assert outcomes == {"read 200": TRIES}
