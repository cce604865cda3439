"""What the browser polls: a fixed number of statements however many rows, stored metrics served."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import Connection, event, select

from app.config import Settings
from app.db.session import get_engine, session_scope
from app.db.tables import (
    DEFAULT_SCHEMA_FIELDS,
    Document,
    DocumentStatus,
    EvaluationReason,
    GroundTruth,
    GroundTruthKind,
    Page,
    Project,
    Record,
    Run,
    RunEvaluation,
    RunStatus,
    StageResult,
    StageStatus,
)
from app.pipeline.evaluation import compute_run_metrics
from app.pipeline.run_config import build_run_config, default_stages
from app.services.evaluations import AUTOMATIC, record_evaluation
from tests.helpers import RecordingDispatcher

API = "/api/v1"
PAGE_TEXT = "Foerster, Christian, Fabrikmeister, Grosskoelnstrasse A 391."


@dataclass(frozen=True)
class Seeded:
    """What `seed` made: a project, its documents, a running run and settled ones."""

    project_id: int
    document_ids: list[int]
    running_run_id: int
    settled_run_ids: list[int]
    first_page_id: int


def seed(settings: Settings, name: str, size: int) -> Seeded:
    """A project with `size` documents (the first with `size` pages, the others one) that carry
    text and records ground truth, and `size` + 1 runs over all of them, every page done: the
    first run still running, the others settled with their first evaluation stored."""
    with session_scope(settings.resolved_database_url) as session:
        project = Project(name=name, schema_fields=list(DEFAULT_SCHEMA_FIELDS))
        session.add(project)
        session.flush()
        documents = [
            _document(session, project, index, pages=size if index == 0 else 1)
            for index in range(size)
        ]
        config = build_run_config(
            stages=default_stages(), schema_fields=project.schema_fields, settings=settings
        )
        runs = []
        for index in range(size + 1):
            run = Run(project_id=project.id, config=config, documents=documents)
            session.add(run)
            session.flush()
            _results(session, run, documents)
            if index == 0:
                run.status = RunStatus.RUNNING
            else:
                record_evaluation(
                    session=session, run=run, author=AUTOMATIC, reason=EvaluationReason.FINISHED
                )
                run.status = RunStatus.DONE
            runs.append(run)
        return Seeded(
            project_id=project.id,
            document_ids=[d.id for d in documents],
            running_run_id=runs[0].id,
            settled_run_ids=[r.id for r in runs[1:]],
            first_page_id=documents[0].pages[0].id,
        )


def _document(session, project: Project, index: int, pages: int) -> Document:  # noqa: ANN001
    document = Document(
        project_id=project.id,
        filename=f"scan-{index}.png",
        media_type="image/png",
        sha256=hashlib.sha256(f"{project.name}-{index}".encode()).hexdigest(),
        size_bytes=1,
        storage_key=f"uploads/{project.name}-{index}.png",
        status=DocumentStatus.READY,
        page_count=pages,
    )
    document.pages = [
        Page(number=n, width=100, height=100, dpi=300, image_key=f"p{index}-{n}.png")
        for n in range(1, pages + 1)
    ]
    session.add(document)
    session.flush()
    document.ground_truths = [
        GroundTruth(
            document_id=document.id,
            kind=GroundTruthKind.TEXT,
            content="\n".join([PAGE_TEXT] * pages),
        ),
        GroundTruth(
            document_id=document.id,
            kind=GroundTruthKind.RECORDS,
            content="first and middle names,surname,occupation,address\n"
            "Christian,Foerster,Fabrikmeister,Grosskoelnstrasse A 391.\n",
        ),
    ]
    session.flush()
    return document


def _results(session, run: Run, documents: list[Document]) -> None:  # noqa: ANN001
    for document in documents:
        for page in document.pages:
            ocr = StageResult(
                run_id=run.id,
                page_id=page.id,
                stage="ocr",
                position=0,
                status=StageStatus.DONE,
                engine="tesseract",
                text=PAGE_TEXT,
                latency_s=1.0,
            )
            extract = StageResult(
                run_id=run.id,
                page_id=page.id,
                stage="extract",
                position=1,
                status=StageStatus.DONE,
                engine="rules",
            )
            session.add_all([ocr, extract])
            session.flush()
            session.add(
                Record(
                    run_id=run.id,
                    page_id=page.id,
                    stage_result_id=extract.id,
                    position=0,
                    source_line=PAGE_TEXT,
                    fields={
                        "first and middle names": "Christian",
                        "surname": "Foerster",
                        "occupation": "Fabrikmeister",
                        "address": "Grosskoelnstrasse A 391.",
                    },
                )
            )


@contextmanager
def statements(settings: Settings) -> Iterator[list[str]]:
    """The SQL statements sent to the database while the block runs."""
    sent: list[str] = []
    engine = get_engine(settings.resolved_database_url)

    def record(_conn: Connection, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def client(sqlite_settings, client_for):
    client = client_for(sqlite_settings)
    client.app.state.dispatcher = RecordingDispatcher()
    return client


def polled_paths(seeded: Seeded) -> dict[str, str]:
    """The routes the browser polls (and the pages that render the same views), by name."""
    run = seeded.settled_run_ids[0]
    document = seeded.document_ids[0]
    return {
        "document list": f"{API}/projects/{seeded.project_id}/documents",
        "run list": f"{API}/projects/{seeded.project_id}/runs",
        "run": f"{API}/runs/{run}",
        "running run": f"{API}/runs/{seeded.running_run_id}",
        "document": f"{API}/documents/{document}",
        "settled metrics": f"{API}/runs/{run}/metrics",
        "running metrics": f"{API}/runs/{seeded.running_run_id}/metrics",
        "page result": f"{API}/runs/{run}/pages/{seeded.first_page_id}",
        "project page": f"/projects/{seeded.project_id}",
        "run page": f"/runs/{run}",
        "document page": f"/runs/{run}/documents/{document}",
    }


def count_statements(client, settings: Settings, paths: dict[str, str]) -> dict[str, int]:  # noqa: ANN001
    counts = {}
    for name, path in paths.items():
        assert client.get(path).status_code == 200, path  # warm: first-use work is not counted
        with statements(settings) as sent:
            response = client.get(path)
        assert response.status_code == 200, (path, response.text)
        counts[name] = len(sent)
    return counts


def test_polled_routes_send_as_many_statements_for_20_rows_as_for_one(client, sqlite_settings):
    one = count_statements(client, sqlite_settings, polled_paths(seed(sqlite_settings, "one", 1)))
    many = count_statements(
        client, sqlite_settings, polled_paths(seed(sqlite_settings, "many", 20))
    )
    assert many == one
    # And they stay few: a lookup or two, then one statement per kind of figure. The page
    # result is the most (18): besides its own rows it aligns the document's reviewed text
    # (its lines' latest versions) to the ground truth, estimates the page's error and says
    # whether the page is verified, each from a fixed number of statements.
    assert max(v for k, v in one.items() if k != "page result") <= 12, one
    assert one["page result"] <= 18, one


def test_a_settled_run_serves_its_stored_metrics(client, sqlite_settings):
    seeded = seed(sqlite_settings, "stored", 2)
    run_id = seeded.settled_run_ids[0]
    with session_scope(sqlite_settings.resolved_database_url) as session:
        evaluation = session.scalars(
            select(RunEvaluation).where(RunEvaluation.run_id == run_id)
        ).one()
        stored = dict(evaluation.metrics)
        # A figure no recomputation would give: only the stored metrics can carry it.
        stored["text"] = {
            **stored["text"],
            "ocr": {**stored["text"]["ocr"], "run": {"cer": 0.4242}},
        }
        evaluation.metrics = stored
        kept = {"number": 1, "reason": "finished", "author": AUTOMATIC}
    with statements(sqlite_settings) as sent:
        response = client.get(f"{API}/runs/{run_id}/metrics")
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in stored} == stored
    assert body["status"] == "done" and body["provisional"] is False
    assert {k: body["evaluation"][k] for k in kept} == kept
    assert body["stale"] is False and body["newer_ground_truth"] == []
    # Nothing is scored again: no stage output is read, and no ground truth's content (only
    # which versions are current, to say whether newer ground truth exists).
    assert not [s for s in sent if "stage_results" in s or "ground_truths.content" in s], sent


def test_a_running_run_scores_what_is_there_now(client, sqlite_settings):
    seeded = seed(sqlite_settings, "running", 2)
    body = client.get(f"{API}/runs/{seeded.running_run_id}/metrics").json()
    with session_scope(sqlite_settings.resolved_database_url) as session:
        now = compute_run_metrics(session, session.get_one(Run, seeded.running_run_id))
    assert {k: body[k] for k in now} == now
    assert body["status"] == "running" and body["provisional"] is True
    assert body["evaluation"] is None and body["evaluations"] == []
    assert body["text"]["ocr"]["run"]["cer"] == 0.0
    assert body["records"]["run"]["records"]["reference"] == 2


def test_ground_truth_attached_later_leaves_settled_scores_until_rescored(client, sqlite_settings):
    seeded = seed(sqlite_settings, "later", 2)
    run_id, document_id = seeded.settled_run_ids[0], seeded.document_ids[1]
    before = client.get(f"{API}/runs/{run_id}/metrics").json()
    assert before["text"]["ocr"]["run"]["cer"] == 0.0

    response = client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": ("truth.txt", b"Something else entirely", "text/plain")},
        params={"confirm": "true"},  # not the run's text, on purpose
    )
    assert response.status_code == 201, response.text
    # Nothing is queued: the settled runs keep their scores and say newer ground truth exists.
    assert client.app.state.dispatcher.sent == []
    after = client.get(f"{API}/runs/{run_id}/metrics").json()
    assert after["text"] == before["text"] and after["stale"] is True
    # The running run is scored against what is there now, as always.
    running = client.get(f"{API}/runs/{seeded.running_run_id}/metrics").json()
    assert running["text"]["ocr"]["run"]["cer"] > 0.0

    rescored = client.post(f"{API}/runs/{run_id}/evaluate")
    assert rescored.status_code == 201, rescored.text
    assert rescored.json()["text"] == running["text"] and rescored.json()["stale"] is False
    assert client.get(f"{API}/runs/{run_id}/metrics").json() == rescored.json()
