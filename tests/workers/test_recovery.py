"""Nothing is lost: work a killed worker leaves behind is found in the database and redone."""

import time

from sqlalchemy import select

from app.db.session import session_scope
from app.db.tables import StageResult
from tests.conftest import benchmark_file
from tests.test_flow import wait_for_run


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
