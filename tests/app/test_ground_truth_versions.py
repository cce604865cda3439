"""Ground truth is versioned, and a finished run keeps the scores it was evaluated with.

The attack this answers: a cross-site form replaced a document's ground truth, which silently
re-scored a finished run (23.18 % → 51.66 % normalized CER). Now an upload adds a version, the
run's scores stay and say that newer ground truth exists, and re-scoring is an explicit
`POST /runs/{id}/evaluate` that keeps both evaluations, each naming its ground-truth versions.
"""

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text

from app.api.actor import current_actor
from app.cli.serve import MIGRATIONS
from app.config import Settings
from app.db.session import session_scope
from app.db.tables import (
    Document,
    EvaluationReason,
    GroundTruth,
    GroundTruthKind,
    Run,
    RunEvaluation,
    RunStatus,
    StageResult,
    StageStatus,
)
from app.identity import Actor
from app.pipeline.run_config import build_run_config, default_stages
from app.services.evaluations import record_evaluation
from app.services.projects import attach_ground_truth
from tests.factories import add_document, add_project, stages
from tests.helpers import RecordingDispatcher, live_app
from workers.context import make_context
from workers.tasks.evaluate import evaluate_run

API = "/api/v1"
#: What the OCR read on the two pages (ASCII, as an engine without umlauts might).
OCR = [
    "Foerster, Christian, Fabrikmeister, Grosskoelnstrasse A 391.",
    "Mueller, Peter Joseph, Baecker, Hochstrasse 12.",
]
#: The first ground truth: the same entries as printed.
TRUTH_V1 = (
    "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n"
    "Müller, Peter Joseph, Bäcker, Hochstraße 12."
)
#: The replacement a cross-site form sent: something else entirely.
TRUTH_V2 = "Schmitz, Anna Maria, Kauffrau, Marktstraße 7.\nWeber, Jakob, Schuster, Neumarkt 3."


@dataclass(frozen=True)
class FinishedRun:
    """A run over one two-page document whose OCR is done, evaluated as it finished."""

    run_id: int
    document_id: int
    page_ids: list[int]


def finished_run(client: httpx.Client, settings: Settings) -> FinishedRun:
    """Ground truth v1 uploaded through the API, then an OCR run that finishes and is scored by
    the real evaluate task (as a worker would run it)."""
    with session_scope(settings.resolved_database_url) as session:
        project = add_project(session)
        document = add_document(session, project, pages=2)
        document_id, page_ids = document.id, [p.id for p in document.pages]
    uploaded = upload(client, document_id, "truth.txt", TRUTH_V1)
    assert uploaded.status_code == 201, uploaded.text
    with session_scope(settings.resolved_database_url) as session:
        document = session.get_one(Document, document_id)
        config = build_run_config(
            stages=default_stages(extract=None),
            schema_fields=document.project.schema_fields,
            settings=settings,
        )
        run = Run(
            project_id=document.project_id,
            config=config,
            documents=[document],
            status=RunStatus.RUNNING,
        )
        session.add(run)
        session.flush()
        for page, line in zip(document.pages, OCR, strict=True):
            session.add(
                StageResult(
                    run_id=run.id,
                    page_id=page.id,
                    stage="ocr",
                    position=0,
                    status=StageStatus.DONE,
                    engine="tesseract",
                    text=line,
                )
            )
        run_id = run.id
    evaluate_run(make_context(settings, RecordingDispatcher()), run_id)
    return FinishedRun(run_id=run_id, document_id=document_id, page_ids=page_ids)


def upload(client: httpx.Client, document_id: int, filename: str, content: str, **form: Any):
    # These tests replace ground truth with other texts on purpose: confirmed (the check that
    # asks first is tests/app/test_exports_ground_truth.py's).
    return client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": (filename, content.encode(), "text/plain")},
        data={k: str(v) for k, v in form.items()},
        params={"confirm": "true"},
    )


def metrics(client: httpx.Client, run_id: int, **params: Any) -> dict[str, Any]:
    response = client.get(f"{API}/runs/{run_id}/metrics", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def final_cer(body: dict[str, Any]) -> float:
    return body["text"][body["final_stage"]]["run"]["cer_normalized"]


def versions(body: dict[str, Any]) -> list[tuple[str, int | None, int]]:
    """(kind, page number, version) of each piece of ground truth the scores name."""
    return [(g["kind"], g["page"], g["version"]) for g in body["ground_truth"]]


@pytest.fixture
def client(sqlite_settings: Settings, client_for: Callable[[Settings], TestClient]) -> TestClient:
    client = client_for(sqlite_settings)
    client.app.state.dispatcher = RecordingDispatcher()
    return client


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Settings:
    """The same test on the embedded and the distributed database."""
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def any_client(
    database: Settings, client_for: Callable[[Settings], TestClient]
) -> Iterator[tuple[TestClient, Settings]]:
    client = client_for(database)
    client.app.state.dispatcher = RecordingDispatcher()
    yield client, database


def test_replacing_ground_truth_leaves_a_finished_runs_scores_unchanged(any_client):
    client, settings = any_client
    run = finished_run(client, settings)
    before = metrics(client, run.run_id)
    summary = client.get(f"{API}/runs/{run.run_id}").json()["summary"]
    assert before["status"] == "done" and before["provisional"] is False
    assert before["evaluation"]["number"] == 1 and before["evaluation"]["reason"] == "finished"
    assert versions(before) == [("text", None, 1)]
    assert before["stale"] is False and before["newer_ground_truth"] == []
    assert 0.0 < final_cer(before) < 0.2, final_cer(before)

    replaced = upload(client, run.document_id, "other.txt", TRUTH_V2)
    assert replaced.status_code == 201, replaced.text
    assert replaced.json()["version"] == 2

    after = metrics(client, run.run_id)
    # The scores, their numbers and the versions they name are exactly those of before.
    assert after["text"] == before["text"]
    assert versions(after) == [("text", None, 1)]
    assert after["evaluations"] == before["evaluations"]
    assert client.get(f"{API}/runs/{run.run_id}").json()["summary"] == summary
    # It says that newer ground truth exists, and which.
    assert after["stale"] is True
    assert [(g["kind"], g["version"], g["filename"]) for g in after["newer_ground_truth"]] == [
        ("text", 2, "other.txt")
    ]
    # Nothing was queued to score it again, and the evaluate task delivered once more (Celery
    # acks late: a task can run twice) does not either.
    assert client.app.state.dispatcher.sent == []
    evaluate_run(make_context(settings, RecordingDispatcher()), run.run_id)
    assert metrics(client, run.run_id) == after
    with session_scope(settings.resolved_database_url) as session:
        assert session.scalars(select(RunEvaluation.number)).all() == [1]


def test_explicit_rescoring_keeps_both_evaluations_with_their_versions(client, sqlite_settings):
    run = finished_run(client, sqlite_settings)
    first = metrics(client, run.run_id)
    # An archivist, as the accounts layer would name the request's user.
    client.app.dependency_overrides[current_actor] = lambda: Actor(user_id=None, name="archivist")
    assert upload(client, run.document_id, "other.txt", TRUTH_V2).json()["author"] == "archivist"

    response = client.post(f"{API}/runs/{run.run_id}/evaluate")
    assert response.status_code == 201, response.text
    second = response.json()
    assert second["evaluation"]["number"] == 2
    assert second["evaluation"]["reason"] == "rescore"
    assert second["evaluation"]["author"] == "archivist"
    assert versions(second) == [("text", None, 2)]
    assert second["stale"] is False
    assert final_cer(second) > final_cer(first) + 0.3

    # The latest is served by default, and summarised on the run; the first is still there.
    assert metrics(client, run.run_id) == second
    summary = client.get(f"{API}/runs/{run.run_id}").json()["summary"]
    assert summary["text"]["cer_normalized"] == final_cer(second)
    again = metrics(client, run.run_id, evaluation=1)
    assert again["text"] == first["text"] and versions(again) == [("text", None, 1)]
    assert again["evaluation"] == first["evaluation"]
    assert again["stale"] is True
    assert [(e["number"], e["reason"], e["author"]) for e in second["evaluations"]] == [
        (1, "finished", "histocr"),
        (2, "rescore", "archivist"),
    ]

    missing = client.get(f"{API}/runs/{run.run_id}/metrics", params={"evaluation": 3})
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"run {run.run_id} has no evaluation 3 (it has 2)"
    bad = client.get(f"{API}/runs/{run.run_id}/metrics", params={"evaluation": 0})
    assert bad.status_code == 422


def test_a_running_run_cannot_be_rescored_and_its_scores_are_provisional(client, sqlite_settings):
    with session_scope(sqlite_settings.resolved_database_url) as session:
        project = add_project(session)
        document = add_document(session, project, pages=1)
        config = build_run_config(
            stages=default_stages(extract=None),
            schema_fields=project.schema_fields,
            settings=sqlite_settings,
        )
        run = Run(project_id=project.id, config=config, documents=[document], status="running")
        session.add(run)
        session.flush()
        run_id, document_id = run.id, document.id
    assert upload(client, document_id, "truth.txt", TRUTH_V1).status_code == 201

    refused = client.post(f"{API}/runs/{run_id}/evaluate")
    assert refused.status_code == 409
    assert refused.json()["detail"] == f"run {run_id} is running: it is scored when it finishes"
    body = metrics(client, run_id)
    assert body["provisional"] is True and body["evaluation"] is None
    assert body["evaluations"] == [] and versions(body) == [("text", None, 1)]
    assert client.post(f"{API}/runs/999999/evaluate").status_code == 404


def test_ground_truth_for_what_a_run_does_not_score_does_not_make_it_stale(client, sqlite_settings):
    run = finished_run(client, sqlite_settings)
    records = "first and middle names,surname,occupation,address\nChristian,Förster,,\n"
    assert upload(client, run.document_id, "records.csv", records).status_code == 201
    assert metrics(client, run.run_id)["stale"] is False  # an OCR-only run scores no records

    # A page's own transcription is scored (per page) by every text run.
    line = TRUTH_V1.split("\n")[1]
    assert upload(client, run.document_id, "p2.txt", line, page=2).status_code == 201
    body = metrics(client, run.run_id)
    assert body["stale"] is True
    assert [(g["kind"], g["page"], g["version"]) for g in body["newer_ground_truth"]] == [
        ("text", 2, 1)
    ]
    # The page shows the version of its transcription that the run's scores are against (the
    # current one where they had none for it), until the run is scored again.
    assert page_truth(client, run, 2) == line
    client.post(f"{API}/runs/{run.run_id}/evaluate").raise_for_status()
    fixed = upload(client, run.document_id, "p2-fixed.txt", line + " (fixed)", page=2)
    assert fixed.status_code == 201, fixed.text
    assert page_truth(client, run, 2) == line
    client.post(f"{API}/runs/{run.run_id}/evaluate").raise_for_status()
    assert page_truth(client, run, 2) == line + " (fixed)"


def page_truth(client: TestClient, run: FinishedRun, number: int) -> str | None:
    response = client.get(f"{API}/runs/{run.run_id}/pages/{run.page_ids[number - 1]}")
    assert response.status_code == 200, response.text
    return response.json()["ground_truth"]


def test_version_numbers_are_per_document_page_and_kind(client, sqlite_settings):
    run = finished_run(client, sqlite_settings)  # the document's text is at version 1
    with session_scope(sqlite_settings.resolved_database_url) as session:
        other = add_document(session, session.get_one(Document, run.document_id).project, pages=1)
        other_id = other.id
    csv = "first and middle names,surname,occupation,address\n"
    uploads = [
        (run.document_id, "v2.txt", TRUTH_V2, {}, 2),
        (run.document_id, "p1.txt", "a", {"page": 1}, 1),
        (run.document_id, "p1b.txt", "b", {"page": 1}, 2),
        (run.document_id, "p2.txt", "c", {"page": 2}, 1),
        (run.document_id, "r.csv", csv + "A,B,C,D\n", {}, 1),
        (run.document_id, "r2.csv", csv + "E,F,G,H\n", {}, 2),
        (other_id, "other.txt", TRUTH_V1, {}, 1),
        (run.document_id, "v3.txt", TRUTH_V1, {}, 3),
    ]
    for document_id, name, content, form, expected in uploads:
        response = upload(client, document_id, name, content, **form)
        assert response.status_code == 201, response.text
        assert (name, response.json()["version"]) == (name, expected)
        assert response.json()["author"] == "local"

    # The same file again adds nothing: 200 with the current version.
    same = upload(client, run.document_id, "v3-again.txt", TRUTH_V1)
    assert same.status_code == 200 and same.json()["version"] == 3
    assert same.json()["filename"] == "v3.txt"

    listing = client.get(f"{API}/documents/{run.document_id}/ground-truth").json()
    assert [(t["kind"], t["page_id"], t["version"], t["filename"]) for t in listing] == [
        ("records", None, 2, "r2.csv"),
        ("text", None, 3, "v3.txt"),
        ("text", run.page_ids[0], 2, "p1b.txt"),
        ("text", run.page_ids[1], 1, "p2.txt"),
    ]
    assert all(t["current"] for t in listing)
    history = client.get(f"{API}/documents/{run.document_id}/ground-truth?all=true").json()
    assert [(t["filename"], t["version"], t["current"]) for t in history] == [
        ("r.csv", 1, False),
        ("r2.csv", 2, True),
        ("truth.txt", 1, False),
        ("v2.txt", 2, False),
        ("v3.txt", 3, True),
        ("p1.txt", 1, False),
        ("p1b.txt", 2, True),
        ("p2.txt", 1, True),
    ]
    # Nothing was deleted: every version is still in the database.
    with session_scope(sqlite_settings.resolved_database_url) as session:
        assert len(session.scalars(select(GroundTruth.id)).all()) == 9
    # Back at version 1's content: a run scored against version 1 is stale all the same
    # (version 3 is another upload, by someone, at another time).
    assert metrics(client, run.run_id)["stale"] is True


def _at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(count) in real threads released together."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread below)
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


@pytest.mark.parametrize(
    "database", [pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"], indirect=True
)
def test_concurrent_uploads_and_rescores_never_share_a_number(database):
    url = database.resolved_database_url
    with session_scope(url) as session:
        project = add_project(session)
        document = add_document(session, project, pages=1)
        document_id = document.id
        config = build_run_config(
            stages=default_stages(extract=None),
            schema_fields=project.schema_fields,
            settings=database,
        )
        run = Run(project_id=project.id, config=config, documents=[document], status="done")
        session.add(run)
        session.flush()
        run_id = run.id

    def attach(index: int) -> tuple[int | None, int]:
        # Half for the whole document, half for its page: two pieces, numbered separately.
        page = 1 if index % 2 else None
        with session_scope(url) as session:
            truth, created = attach_ground_truth(
                session=session,
                document=session.get_one(Document, document_id),
                content=f"version from upload {index}",
                kind=GroundTruthKind.TEXT,
                page_number=page,
                author=f"user-{index}",
            )
            assert created
            return page, truth.version

    numbered = _at_once(8, attach)
    assert sorted(v for page, v in numbered if page is None) == [1, 2, 3, 4]
    assert sorted(v for page, v in numbered if page == 1) == [1, 2, 3, 4]

    def rescore(index: int) -> int:
        with session_scope(url) as session:
            evaluation = record_evaluation(
                session=session,
                run=session.get_one(Run, run_id),
                author=f"user-{index}",
                reason=EvaluationReason.RESCORE,
            )
            assert evaluation is not None
            return evaluation.number

    assert sorted(_at_once(4, rescore)) == [1, 2, 3, 4]
    with session_scope(url) as session:
        latest = session.scalars(
            select(RunEvaluation).order_by(RunEvaluation.number.desc()).limit(1)
        ).one()
        # The run's summary is the latest evaluation's, whichever thread stored it.
        assert session.get_one(Run, run_id).metrics == latest.metrics
        assert {g["version"] for g in latest.metrics["ground_truth"]} == {4}


def _alembic(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_makes_existing_ground_truth_version_1_and_keeps_scores(
    backend, tmp_path, request
):
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    command.upgrade(_alembic(url), "0003")
    engine = create_engine(url)
    scores = {"final_stage": "ocr", "text": {"ocr": {"run": {"cer": 0.2318}}}, "records": None}
    values = {"config": stages("ocr").model_dump_json(), "scores": json.dumps(scores)}
    with engine.begin() as connection:
        for statement in (
            "INSERT INTO projects (id, name, description, schema_fields, created_at) "
            "VALUES (1, 'Köln', '', '[]', CURRENT_TIMESTAMP)",
            "INSERT INTO documents (id, project_id, filename, media_type, sha256, size_bytes, "
            "storage_key, status, created_at, updated_at) VALUES (1, 1, 'a.pdf', "
            "'application/pdf', 'x', 1, 'k', 'ready', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            "INSERT INTO pages (id, document_id, number, width, height) VALUES (1, 1, 1, 10, 10)",
            "INSERT INTO ground_truths (id, document_id, page_id, kind, filename, content, "
            "created_at) VALUES (1, 1, NULL, 'text', 'doc.txt', 'abc', CURRENT_TIMESTAMP), "
            "(2, 1, 1, 'text', 'p1.txt', 'a', CURRENT_TIMESTAMP), "
            "(3, 1, NULL, 'records', 'r.csv', 'x', CURRENT_TIMESTAMP)",
            "INSERT INTO runs (id, project_id, name, config, status, metrics, created_at) VALUES "
            "(1, 1, '', :config, 'done', :scores, CURRENT_TIMESTAMP), "
            "(2, 1, '', :config, 'running', NULL, CURRENT_TIMESTAMP)",
            "INSERT INTO run_documents (run_id, document_id) VALUES (1, 1), (2, 1)",
        ):
            connection.execute(text(statement), values if ":config" in statement else {})
    engine.dispose()

    command.upgrade(_alembic(url), "head")
    with session_scope(url) as session:
        truths = session.scalars(select(GroundTruth).order_by(GroundTruth.id)).all()
        assert [(t.id, t.version, t.author) for t in truths] == [
            (1, 1, "local"),
            (2, 1, "local"),
            (3, 1, "local"),
        ]
        evaluations = session.scalars(select(RunEvaluation)).all()
        assert [(e.run_id, e.number, e.reason) for e in evaluations] == [(1, 1, "finished")]
        kept = evaluations[0].metrics
        assert kept["text"] == scores["text"]
        # An OCR-only run names the text it was scored on, not the records.
        assert [(g["id"], g["page"], g["version"]) for g in kept["ground_truth"]] == [
            (1, None, 1),
            (2, 1, 1),
        ]
        assert session.get_one(Run, 1).metrics == kept


@pytest.fixture
def live_server(sqlite_settings: Settings) -> Iterator[str]:
    """The real app on a real loopback port (single-user mode, as `make run` serves it)."""
    with live_app(sqlite_settings) as base:
        yield base


def test_the_run_page_shows_the_versions_and_rescores_on_request(
    live_server,
    browser,  # noqa: F811  (the fixture imported above)
    sqlite_settings,
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    with httpx.Client(base_url=live_server, timeout=30) as client:
        run = finished_run(client, sqlite_settings)
        first = metrics(client, run.run_id)
        assert upload(client, run.document_id, "other.txt", TRUTH_V2).status_code == 201
    browser.get(f"{live_server}/runs/{run.run_id}")
    wait = WebDriverWait(browser, 20)

    def evaluation_text() -> str:
        return browser.find_element(By.ID, "evaluation").text

    wait.until(lambda _d: "Re-score against current ground truth" in evaluation_text())
    shown = evaluation_text()
    assert "Evaluation 1 of 1" in shown and "by histocr" in shown
    assert "truth.txt v1" in shown and "Newer ground truth exists" in shown
    assert "other.txt v2" in shown
    headline = browser.find_element(By.ID, "run-headline").text
    assert f"{first['text']['ocr']['run']['cer_normalized']:.2%}".rstrip("%") in headline

    browser.find_element(By.ID, "rescore").click()
    wait.until(lambda _d: "Evaluation 2 of 2" in evaluation_text())
    shown = evaluation_text()
    assert "other.txt v2" in shown and "re-scored by local" in shown
    assert "Newer ground truth exists" not in shown
    assert not browser.find_elements(By.ID, "rescore")
    with httpx.Client(base_url=live_server, timeout=30) as client:
        second = metrics(client, run.run_id)
    assert second["evaluation"]["number"] == 2
    wait.until(
        lambda d: (
            f"{second['text']['ocr']['run']['cer_normalized']:.2%}".rstrip("%")
            in d.find_element(By.ID, "run-headline").text
        )
    )

    # The earlier evaluation is still there, with the version it was scored against.
    Select(browser.find_element(By.ID, "evaluation-choice")).select_by_value("1")
    wait.until(lambda _d: "Evaluation 1 of 2" in evaluation_text())
    shown = evaluation_text()
    assert "truth.txt v1" in shown and "Newer ground truth exists" in shown
    assert not browser.find_elements(By.ID, "rescore")  # re-scoring is offered on the latest
