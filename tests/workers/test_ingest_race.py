"""A run created while one of its documents finishes ingest: the document's pages are in it.

Found by the review-queue test on a loaded machine: the run read the document as still
ingesting, the ingest (not seeing the uncommitted run) continued no run, and the run settled
as done without the document's pages. `scheduler.lock_documents` orders the two.
"""

import threading

import pytest
from sqlalchemy import func, select

import workers.tasks.ingest as ingest
from app.db.session import session_scope
from app.db.tables import StageResult
from tests.helpers import RecordingDispatcher
from workers.context import make_context


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request):
    return request.getfixturevalue(f"{request.param}_settings")


def test_a_run_created_during_the_end_of_ingest_gets_the_documents_pages(
    settings, client_for, monkeypatch
):
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "race"}).json()
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("two.txt", "Müller, Peter\fSchmidt, Anna".encode(), "text/plain")},
    )
    document_id = upload.json()["documents"][0]["id"]
    checked, run_created = threading.Event(), threading.Event()
    real = ingest.runs_waiting_for

    def waiting_then_pause(session, document_id):  # type: ignore[no-untyped-def]
        runs = real(session, document_id)  # the document is ready, not yet committed
        checked.set()
        run_created.wait(timeout=3)  # a run is created now (without the lock it gets through)
        return runs

    monkeypatch.setattr(ingest, "runs_waiting_for", waiting_then_pause)
    worker = threading.Thread(
        target=ingest.ingest_document,
        args=(make_context(settings, RecordingDispatcher()), document_id),
    )
    worker.start()
    assert checked.wait(timeout=30)
    run = client.post(
        f"/api/v1/projects/{project['id']}/runs",
        json={"stages": [{"stage": "ocr", "engine": "import"}]},
    )
    run_created.set()
    worker.join(timeout=30)
    assert run.status_code == 201, run.text
    with session_scope(settings.resolved_database_url) as session:
        results = session.scalar(select(func.count()).where(StageResult.run_id == run.json()["id"]))
    assert results == 2  # both pages of the document, by the run or by the ingest
    assert client.get(f"/api/v1/runs/{run.json()['id']}").json()["status"] != "done"
