"""Housekeeping (issue 12 §4): renaming and deleting projects, documents and runs. A deletion
removes its rows and the stored files nothing else names, and nothing else; a running run is
cancelled; only owners delete projects; run numbers count per project.

Runs happen in process (tests/helpers.inline_dispatcher) on imported text, or wait in a
recording dispatcher where a test needs them unfinished.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.config import Settings
from app.db.accounts import AuditEvent
from app.db.review import LineVersion
from app.db.schemas import ProjectSchema
from app.db.session import session_scope
from app.db.tables import (
    Document,
    GroundTruth,
    Line,
    OutboxMessage,
    Page,
    Project,
    Record,
    Run,
    StageResult,
    run_documents,
)
from app.main import create_app
from app.pipeline.dispatch import STAGE_TASKS
from app.pipeline.scheduler import recover_stale
from app.services import accounts
from app.storage import LocalStorage
from models.base import EngineResult
from models.stages import StageOutput
from tests.helpers import PRINTED_LINES, RecordingDispatcher, inline_dispatcher, render_page
from workers.context import make_context
from workers.tasks import stages as stage_tasks
from workers.tasks.ingest import ingest_document

API = "/api/v1"
IMPORT_THEN_RULES = [{"stage": "ocr", "engine": "import"}, {"stage": "extract", "engine": "rules"}]
TEXT_A = "\n".join(PRINTED_LINES[:2]) + "\n"
TEXT_B = "\n".join(PRINTED_LINES[2:]) + "\n"


class Site:
    """The app over one database, with a dispatcher that runs the work when drained."""

    def __init__(self, settings: Settings, dispatcher: Any = None) -> None:
        self.settings = settings
        app = create_app(settings)
        self.dispatcher = dispatcher or inline_dispatcher(settings)
        app.state.dispatcher = self.dispatcher
        self.client = TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 1))
        self.storage = LocalStorage(settings.resolved_storage_dir)

    def drain(self) -> None:
        if hasattr(self.dispatcher, "drain"):
            self.dispatcher.drain()

    def project(self, name: str) -> int:
        answer = self.client.post(f"{API}/projects", json={"name": name})
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    def upload(self, project_id: int, name: str, data: bytes, media_type: str) -> int:
        answer = self.client.post(
            f"{API}/projects/{project_id}/documents", files={"files": (name, data, media_type)}
        )
        assert answer.status_code == 201, answer.text
        self.drain()
        return int(answer.json()["documents"][0]["id"])

    def run(self, project_id: int, stages: list[dict[str, str]] | None = None) -> int:
        answer = self.client.post(
            f"{API}/projects/{project_id}/runs", json={"stages": stages or IMPORT_THEN_RULES}
        )
        assert answer.status_code == 201, answer.text
        self.drain()
        return int(answer.json()["id"])

    def files_of(self, document_id: int) -> set[str]:
        """The storage keys a document and its pages name."""
        with session_scope(self.settings.resolved_database_url) as session:
            document = session.get_one(Document, document_id)
            keys = {document.storage_key, document.imported_text_key}
            for page in document.pages:
                keys |= {page.image_key, page.preview_key, page.text_key}
        return {key for key in keys if key}

    def stored(self, keys: set[str]) -> set[str]:
        return {key for key in keys if self.storage.exists(key)}

    def count(self, table: Any, *where: Any) -> int:
        with session_scope(self.settings.resolved_database_url) as session:
            return int(session.scalar(select(func.count()).select_from(table).where(*where)) or 0)


@pytest.fixture
def site(sqlite_settings: Settings) -> Iterator[Site]:
    made = Site(sqlite_settings)
    with made.client:
        yield made


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_site(request: pytest.FixtureRequest) -> Iterator[Site]:
    """The site on SQLite and on PostgreSQL (cascades and locks differ between the two)."""
    made = Site(request.getfixturevalue(f"{request.param}_settings"))
    with made.client:
        yield made


def test_deleting_a_document_removes_its_rows_and_only_the_files_nothing_else_names(
    any_site: Site, tmp_path: Path
) -> None:
    site = any_site
    cologne, bonn = site.project("Köln 1822"), site.project("Bonn 1830")
    scan = render_page(tmp_path / "scan.png", PRINTED_LINES[:1]).read_bytes()
    # The same scan in both projects is one file (content-addressed), its pages too.
    shared_here = site.upload(cologne, "scan.png", scan, "image/png")
    shared_there = site.upload(bonn, "same-scan.png", scan, "image/png")
    assert site.files_of(shared_here) == site.files_of(shared_there)
    own = site.upload(cologne, "koeln.txt", TEXT_A.encode(), "text/plain")
    other = site.upload(cologne, "bonn.txt", TEXT_B.encode(), "text/plain")
    truth = site.client.post(
        f"{API}/documents/{own}/ground-truth",
        files={"file": ("koeln-gt.txt", TEXT_A.encode(), "text/plain")},
    )
    assert truth.status_code == 201
    run = site.run(cologne)
    own_pages = [p["id"] for p in site.client.get(f"{API}/documents/{own}").json()["pages"]]
    assert site.count(Record, Record.page_id.in_(own_pages)) == 2
    own_files, shared_files = site.files_of(own), site.files_of(shared_here)
    assert site.stored(own_files) == own_files and len(shared_files) >= 3
    other_files = site.files_of(other)

    assert site.client.delete(f"{API}/documents/{own}").status_code == 204
    assert site.client.get(f"{API}/documents/{own}").status_code == 404
    for table, column in (
        (Page, Page.document_id),
        (GroundTruth, GroundTruth.document_id),
        (run_documents, run_documents.c.document_id),
    ):
        assert site.count(table, column == own) == 0
    for table in (StageResult, Record, Line):
        assert site.count(table, table.page_id.in_(own_pages)) == 0
    assert site.stored(own_files) == set()
    # Nothing else: the run keeps its other documents and their results, the files stay.
    assert site.client.get(f"{API}/runs/{run}").json()["document_ids"] == [shared_here, other]
    assert site.count(Record, Record.run_id == run) == 2  # bonn.txt's two entries
    assert site.stored(other_files) == other_files

    # A file another project's document names stays when this project's copy goes.
    assert site.client.delete(f"{API}/documents/{shared_here}").status_code == 204
    assert site.stored(shared_files) == shared_files
    assert site.client.delete(f"{API}/documents/{shared_there}").status_code == 204
    assert site.stored(shared_files) == set()


def test_deleting_a_project_removes_everything_of_it_and_nothing_of_another(
    any_site: Site,
) -> None:
    site = any_site
    cologne, bonn = site.project("Köln 1822"), site.project("Bonn 1830")
    kept = site.upload(bonn, "bonn.txt", TEXT_B.encode(), "text/plain")
    site.upload(cologne, "same-bonn.txt", TEXT_B.encode(), "text/plain")  # the same file
    gone = site.upload(cologne, "koeln.txt", TEXT_A.encode(), "text/plain")
    gone_files, kept_files = site.files_of(gone), site.files_of(kept)
    site.run(cologne)
    bonn_run = site.run(bonn)
    schema = {"fields": [{"name": "surname"}, {"name": "address"}]}
    assert site.client.put(f"{API}/projects/{cologne}/schema", json=schema).status_code == 200

    assert site.client.delete(f"{API}/projects/{cologne}").status_code == 204
    assert site.client.get(f"{API}/projects/{cologne}").status_code == 404
    assert site.count(Document, Document.project_id == cologne) == 0
    assert site.count(Run, Run.project_id == cologne) == 0
    assert site.count(ProjectSchema, ProjectSchema.project_id == cologne) == 0
    assert site.stored(gone_files) == set()
    assert site.stored(kept_files) == kept_files
    assert site.client.get(f"{API}/runs/{bonn_run}").json()["status"] == "done"
    assert site.count(Record, Record.run_id == bonn_run) == 2
    # The audit trail keeps what happened (the rows it names are gone).
    assert site.count(AuditEvent, AuditEvent.project_id == cologne, AuditEvent.action == "delete")


def test_deleting_a_running_run_cancels_it_and_nothing_brings_it_back(
    sqlite_settings: Settings,
) -> None:
    recorder = RecordingDispatcher()
    site = Site(sqlite_settings, recorder)
    with site.client:
        project = site.project("Köln 1822")
        site.upload(project, "koeln.txt", TEXT_A.encode(), "text/plain")
        ctx = make_context(sqlite_settings, recorder)
        for dispatch in list(recorder.sent):
            ingest_document(ctx, *dispatch.args)
        doomed = site.run(project)
        survivor = site.run(project)
        assert site.client.get(f"{API}/runs/{doomed}").json()["status"] == "running"
        queued = [d.args[0] for d in recorder.sent if d.task == STAGE_TASKS["ocr"]]
        doomed_ids = queued[0]
        # A worker has taken the doomed run's page and is working on it ...
        claimed, spec, run_id = stage_tasks._claim(ctx, "ocr", doomed_ids)
        assert claimed and run_id == doomed and spec is not None

        assert site.client.delete(f"{API}/runs/{doomed}").status_code == 204
        assert site.client.get(f"{API}/runs/{doomed}").status_code == 404
        assert site.count(StageResult, StageResult.run_id == doomed) == 0

        # ... and stores its answer after the deletion: nothing is written, nothing queued.
        read = StageOutput(text=TEXT_A, result=EngineResult(text=TEXT_A, model="m", latency_s=1))
        before = site.count(OutboxMessage)
        stage_tasks._store(ctx, doomed, claimed, [read] * len(claimed), {})
        assert site.count(Line, Line.run_id == doomed) == 0
        assert site.count(OutboxMessage) == before
        # The task message still in the broker claims nothing; the recovery sweep finds nothing.
        stage_tasks.run_stage(ctx, "ocr", doomed_ids)
        with session_scope(sqlite_settings.resolved_database_url) as session:
            again = recover_stale(session, lease_s=0, requeue_after_s=0, max_attempts=3)
        assert all(
            doomed_id not in (d.args[0] if isinstance(d.args[0], list) else [d.args[0]])
            for d in again
            for doomed_id in doomed_ids
        )
        assert site.count(StageResult, StageResult.run_id == doomed) == 0
        # The other run goes on.
        for dispatch in list(recorder.sent):
            if dispatch.task == STAGE_TASKS["ocr"] and dispatch.args[0] != doomed_ids:
                stage_tasks.run_stage(ctx, "ocr", dispatch.args[0])
        assert site.count(StageResult, StageResult.run_id == survivor) == 2


def test_renaming_and_run_numbers(site: Site) -> None:
    cologne, bonn = site.project("Köln 1822"), site.project("Bonn 1830")
    site.upload(cologne, "koeln.txt", TEXT_A.encode(), "text/plain")
    document = site.upload(bonn, "bonn.txt", TEXT_B.encode(), "text/plain")
    first, second = site.run(cologne), site.run(cologne)
    elsewhere = site.run(bonn)
    numbers = {
        run: site.client.get(f"{API}/runs/{run}").json()["number"]
        for run in (first, second, elsewhere)
    }
    assert numbers == {first: 1, second: 2, elsewhere: 1}
    # Deleting an earlier run does not renumber the later ones.
    assert site.client.delete(f"{API}/runs/{first}").status_code == 204
    third = site.run(cologne)
    assert site.client.get(f"{API}/runs/{second}").json()["number"] == 2
    assert site.client.get(f"{API}/runs/{third}").json()["number"] == 3

    taken = site.client.patch(f"{API}/projects/{cologne}", json={"name": "Bonn 1830"})
    assert taken.status_code == 409
    renamed = site.client.patch(
        f"{API}/projects/{cologne}", json={"name": "Köln 1822 (Greven)", "description": "1822"}
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "Köln 1822 (Greven)"
    assert renamed.json()["description"] == "1822"
    blank = site.client.patch(f"{API}/projects/{cologne}", json={"name": "  "})
    assert blank.status_code == 422
    doc = site.client.patch(f"{API}/documents/{document}", json={"filename": "dir/Bonn 1830.txt"})
    assert doc.status_code == 200 and doc.json()["filename"] == "Bonn 1830.txt"
    run = site.client.patch(f"{API}/runs/{second}", json={"name": "  Tesseract baseline "})
    assert run.status_code == 200 and run.json()["name"] == "Tesseract baseline"
    assert run.json()["number"] == 2


def test_a_finished_runs_time_stays_when_ground_truth_comes_and_it_is_rescored(
    site: Site,
) -> None:
    project = site.project("Köln 1822")
    document = site.upload(project, "koeln.txt", TEXT_A.encode(), "text/plain")
    run = site.run(project)
    finished = site.client.get(f"{API}/runs/{run}").json()["finished_at"]
    assert finished
    for version in range(2):
        text = TEXT_A if version == 0 else TEXT_A.replace("Foerster", "Förster")
        truth = site.client.post(
            f"{API}/documents/{document}/ground-truth",
            files={"file": ("gt.txt", text.encode(), "text/plain")},
        )
        assert truth.status_code == 201
        site.drain()
        assert site.client.post(f"{API}/runs/{run}/evaluate").status_code == 201
        site.drain()
        assert site.client.get(f"{API}/runs/{run}").json()["finished_at"] == finished


def _users(settings: Settings) -> dict[str, dict[str, str]]:
    tokens = {}
    with session_scope(settings.resolved_database_url) as session:
        for name in ("owner", "editor", "viewer"):
            user, _ = accounts.create_user(session, name)
            _, secret = accounts.create_token(session, user)
            tokens[name] = {"Authorization": f"Bearer {secret}"}
    return tokens


def test_owners_delete_projects_editors_delete_documents_and_runs(
    sqlite_settings: Settings,
) -> None:
    site = Site(sqlite_settings)
    with site.client:
        as_ = _users(sqlite_settings)
        api = site.client
        project = api.post(f"{API}/projects", json={"name": "Köln 1822"}, headers=as_["owner"])
        pid = project.json()["id"]
        for name in ("editor", "viewer"):
            member = api.put(
                f"{API}/projects/{pid}/members/{name}", json={"role": name}, headers=as_["owner"]
            )
            assert member.status_code == 200, member.text
        upload = api.post(
            f"{API}/projects/{pid}/documents",
            files={"files": ("koeln.txt", TEXT_A.encode(), "text/plain")},
            headers=as_["editor"],
        )
        site.drain()
        document = upload.json()["documents"][0]["id"]
        run = api.post(
            f"{API}/projects/{pid}/runs", json={"stages": IMPORT_THEN_RULES}, headers=as_["editor"]
        ).json()["id"]
        site.drain()

        for target in (f"documents/{document}", f"runs/{run}", f"projects/{pid}"):
            refused = api.delete(f"{API}/{target}", headers=as_["viewer"])
            assert refused.status_code == 403, target
        refused = api.delete(f"{API}/projects/{pid}", headers=as_["editor"])
        assert refused.status_code == 403 and "owner" in refused.json()["detail"]
        assert api.delete(f"{API}/runs/{run}", headers=as_["editor"]).status_code == 204
        assert api.delete(f"{API}/documents/{document}", headers=as_["editor"]).status_code == 204
        assert api.delete(f"{API}/projects/{pid}", headers=as_["owner"]).status_code == 204
        trail = {
            (event.actor, event.action, event.target_type)
            for event in _events(sqlite_settings, pid)
        }
        assert {
            ("editor", "delete", "run"),
            ("editor", "delete", "document"),
            ("owner", "delete", "project"),
        } <= trail


def _events(settings: Settings, project_id: int) -> list[AuditEvent]:
    with session_scope(settings.resolved_database_url) as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.project_id == project_id))
        return list(rows)


def test_a_document_being_ingested_is_not_deleted(site: Site) -> None:
    project = site.project("Köln 1822")
    document = site.upload(project, "koeln.txt", TEXT_A.encode(), "text/plain")
    with session_scope(site.settings.resolved_database_url) as session:
        session.get_one(Document, document).status = "ingesting"
    refused = site.client.delete(f"{API}/documents/{document}")
    assert refused.status_code == 409 and "ingest" in refused.json()["detail"]
    assert site.count(Project, Project.id == project) == 1
    assert site.count(LineVersion) == 0
