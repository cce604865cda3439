"""`Idempotency-Key`: an archive script retries a creating POST and nothing is created twice."""

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from app.api import idempotency
from app.api.actor import current_actor
from app.config import Settings
from app.db.session import session_scope
from app.db.tables import (
    Document,
    GroundTruth,
    IdempotencyKey,
    OutboxMessage,
    Project,
    Run,
)
from app.identity import Actor
from app.pipeline.recovery import recover_once
from tests.helpers import PRINTED_LINES, RecordingDispatcher, render_page

API = "/api/v1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Settings:
    """The same test on the embedded and the distributed database."""
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def client(database: Settings, client_for: Callable[[Settings], TestClient]) -> TestClient:
    client = client_for(database)
    client.app.state.dispatcher = RecordingDispatcher()
    return client


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def count(settings: Settings, table: type) -> int:
    with session_scope(settings.resolved_database_url) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def replayed(response: Response) -> bool:
    return response.headers.get("Idempotent-Replayed") == "true"


def upload(client: TestClient, project_id: int, page: Path, **headers: str) -> Response:
    return client.post(
        f"{API}/projects/{project_id}/documents",
        files={"files": ("page.png", page.read_bytes(), "image/png")},
        data={"start_run": "true"},
        headers=headers,
    )


def project_with_document(client: TestClient, tmp_path: Path, name: str = "keys") -> int:
    project = client.post(f"{API}/projects", json={"name": name}).json()
    page = render_page(tmp_path / f"{name}.png", PRINTED_LINES[:1])
    assert upload(client, project["id"], page).status_code == 201
    return project["id"]


def test_a_retried_project_is_created_once(client: TestClient, database: Settings) -> None:
    body = {"name": "Köln 1822", "description": "Adressbuch"}
    first = client.post(f"{API}/projects", json=body, headers=key("project-1"))
    # The same JSON, spelled differently (order, spacing), is the same request.
    again = client.post(
        f"{API}/projects",
        content='{ "description": "Adressbuch",  "name": "Köln 1822" }',
        headers={**key("project-1"), "Content-Type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert replayed(again) and not replayed(first)
    assert count(database, Project) == 1
    # Without a key a second request is a new request: here, a duplicate name.
    assert client.post(f"{API}/projects", json=body).status_code == 409


def test_a_retried_upload_with_a_run_creates_one_document_and_one_run(
    client: TestClient, database: Settings, tmp_path: Path
) -> None:
    project = client.post(f"{API}/projects", json={"name": "uploads"}).json()
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:2])
    first = upload(client, project["id"], page, **key("upload-7"))
    again = upload(client, project["id"], page, **key("upload-7"))  # another multipart boundary
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and replayed(again)
    assert count(database, Document) == 1 and count(database, Run) == 1
    sent = client.app.state.dispatcher.sent
    assert [d.task for d in sent] == ["histocr.ingest"]  # the retry queued nothing


def test_a_retried_run_is_started_once(
    client: TestClient, database: Settings, tmp_path: Path
) -> None:
    project_id = project_with_document(client, tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    first = client.post(runs, json={"name": "nightly"}, headers=key("run-2026-11-30"))
    again = client.post(runs, json={"name": "nightly"}, headers=key("run-2026-11-30"))
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and replayed(again)
    assert count(database, Run) == 2  # the upload's run and this one


def test_retried_ground_truth_is_stored_once_with_the_first_status(
    client: TestClient, database: Settings, tmp_path: Path
) -> None:
    project_id = project_with_document(client, tmp_path)
    document_id = client.get(f"{API}/projects/{project_id}/documents").json()[0]["id"]

    def send(content: bytes, value: str) -> Response:
        return client.post(
            f"{API}/documents/{document_id}/ground-truth",
            files={"file": ("page.txt", content, "text/plain")},
            headers=key(value),
        )

    first, again = send(b"Foerster, Christian\n", "gt-1"), send(b"Foerster, Christian\n", "gt-1")
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json() and replayed(again)
    # The same file again under a new key: identical to the current version, a 200 (stored as
    # such: its retry answers 200 too).
    same, same_again = (
        send(b"Foerster, Christian\n", "gt-2"),
        send(b"Foerster, Christian\n", "gt-2"),
    )
    assert (same.status_code, same_again.status_code) == (200, 200)
    assert count(database, GroundTruth) == 1


def test_a_key_reused_for_another_request_is_refused(
    client: TestClient, database: Settings, tmp_path: Path
) -> None:
    project_id = project_with_document(client, tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    assert client.post(runs, json={"name": "a"}, headers=key("k")).status_code == 201
    other_body = client.post(runs, json={"name": "b"}, headers=key("k"))
    assert other_body.status_code == 422
    assert "used with another body" in other_body.json()["detail"]
    other_path = client.post(f"{API}/projects", json={"name": "b"}, headers=key("k"))
    assert other_path.status_code == 422
    assert f"was used for POST {runs}" in other_path.json()["detail"]
    assert count(database, Run) == 2 and count(database, Project) == 1


def test_a_failed_request_stores_nothing_and_its_retry_runs(
    client: TestClient, database: Settings, tmp_path: Path
) -> None:
    project_id = project_with_document(client, tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    bad = {"stages": [{"stage": "ocr", "engine": "tesseract", "parameters": {"psm": "x"}}]}
    assert client.post(runs, json=bad, headers=key("fix-and-retry")).status_code == 422
    fixed = client.post(runs, json={"name": "fixed"}, headers=key("fix-and-retry"))
    assert fixed.status_code == 201 and not replayed(fixed)
    assert count(database, IdempotencyKey) == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "with space", "naïve"])
def test_a_malformed_key_is_a_422(client: TestClient, database: Settings, value: str) -> None:
    response = client.post(
        f"{API}/projects",
        json={"name": "never"},
        headers={"Idempotency-Key": value.encode()},  # type: ignore[dict-item],
    )
    assert response.status_code == 422, response.text
    assert count(database, Project) == 0


def test_keys_belong_to_their_actor(
    database: Settings, client_for: Callable[[Settings], TestClient], tmp_path: Path
) -> None:
    clients = []
    for name in ("anna", "bernd"):
        client = client_for(database)
        client.app.state.dispatcher = RecordingDispatcher()
        actor = Actor(user_id=None, name=name, is_admin=True)
        client.app.dependency_overrides[current_actor] = lambda actor=actor: actor
        clients.append(client)
    project_id = project_with_document(clients[0], tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    first, second = (c.post(runs, json={}, headers=key("nightly")) for c in clients)
    assert first.status_code == second.status_code == 201
    assert not replayed(second) and second.json()["id"] != first.json()["id"]


def age_keys(settings: Settings, by: timedelta) -> None:
    with session_scope(settings.resolved_database_url) as session:
        for row in session.scalars(select(IdempotencyKey)):
            row.created_at -= by


def test_keys_expire_after_a_day(client: TestClient, database: Settings, tmp_path: Path) -> None:
    project_id = project_with_document(client, tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    first = client.post(runs, json={}, headers=key("daily"))
    age_keys(database, timedelta(hours=24, seconds=1))
    again = client.post(runs, json={}, headers=key("daily"))
    assert again.status_code == 201 and not replayed(again)
    assert again.json()["id"] != first.json()["id"]
    # The sweep forgets keys past their day.
    age_keys(database, timedelta(days=2))
    recover_once(database, RecordingDispatcher())
    assert count(database, IdempotencyKey) == 0


# Two requests with one key at the same moment, on PostgreSQL with real threads. The first is
# held inside its transaction (after claiming the key, before writing its run) by a lock the
# test takes on the runs table; the second then arrives and must wait for the first.


def wait_for_backend(url: str, query_prefix: str, timeout: float = 20) -> None:
    """Until a backend waits on a lock while running a statement that starts so."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE %s",
                (query_prefix + "%",),
            ).fetchone()
            if waiting and waiting[0]:
                return
            time.sleep(0.05)
    raise AssertionError(f"no backend waits in {query_prefix!r}")


@pytest.fixture
def runs_table_locked(postgres_settings: Settings) -> Iterator[threading.Event]:
    """Holds a lock that stops new runs from being written until the event is set."""
    release = threading.Event()
    locked = threading.Event()
    url = postgres_settings.resolved_database_url.replace("+psycopg", "")

    def hold() -> None:
        with psycopg.connect(url) as connection:
            connection.execute("LOCK TABLE runs IN SHARE MODE")
            locked.set()
            release.wait(60)
            connection.rollback()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert locked.wait(10)
    yield release
    release.set()
    holder.join(10)


def in_thread(call: Callable[[], Response]) -> tuple[threading.Thread, list[Response]]:
    answers: list[Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    return thread, answers


@pytest.mark.postgres
def test_a_retry_while_the_first_request_runs_waits_and_replays_its_answer(
    postgres_settings: Settings,
    client_for: Callable[[Settings], TestClient],
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    client = client_for(postgres_settings)
    client.app.state.dispatcher = RecordingDispatcher()
    project_id = project_with_document(client, tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    url = postgres_settings.resolved_database_url
    before = count(postgres_settings, Run)
    client.app.state.dispatcher.sent.clear()

    release = request.getfixturevalue("runs_table_locked")
    first, first_answer = in_thread(lambda: client.post(runs, json={}, headers=key("once")))
    wait_for_backend(url, "INSERT INTO runs")
    second, second_answer = in_thread(lambda: client.post(runs, json={}, headers=key("once")))
    wait_for_backend(url, "INSERT INTO idempotency_keys")
    release.set()
    first.join(30)
    second.join(30)

    [a], [b] = first_answer, second_answer
    assert a.status_code == b.status_code == 201, (a.text, b.text)
    assert not replayed(a) and replayed(b) and b.json() == a.json()
    assert count(postgres_settings, Run) == before + 1
    assert count(postgres_settings, OutboxMessage) == 0
    assert len({d.args for d in client.app.state.dispatcher.sent}) == len(
        client.app.state.dispatcher.sent
    )


@pytest.mark.postgres
def test_a_retry_that_waits_too_long_is_told_to_come_back(
    postgres_settings: Settings,
    client_for: Callable[[Settings], TestClient],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(idempotency, "IN_PROGRESS_WAIT_S", 0.5)
    client = client_for(postgres_settings)
    client.app.state.dispatcher = RecordingDispatcher()
    project_id = project_with_document(client, tmp_path)
    runs = f"{API}/projects/{project_id}/runs"
    before = count(postgres_settings, Run)

    release = request.getfixturevalue("runs_table_locked")
    first, first_answer = in_thread(lambda: client.post(runs, json={}, headers=key("slow")))
    wait_for_backend(postgres_settings.resolved_database_url, "INSERT INTO runs")
    busy = client.post(runs, json={}, headers=key("slow"))
    assert busy.status_code == 409
    assert "in progress" in busy.json()["detail"] and busy.headers["Retry-After"]
    release.set()
    first.join(30)
    assert first_answer[0].status_code == 201
    later = client.post(runs, json={}, headers=key("slow"))
    assert later.status_code == 201 and replayed(later)
    assert later.json() == first_answer[0].json()
    assert count(postgres_settings, Run) == before + 1
