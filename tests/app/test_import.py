"""Text made elsewhere (Transkribus exports, transcriptions) through the CLI, API and a worker."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.metrics.text import score_text
from tests.conftest import BENCHMARK, ROOT, benchmark_file
from tests.test_flow import wait_for_run

pytestmark = pytest.mark.e2e  # `histocr process` runs and real workers


def histocr(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "process", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def transkribus_pages(tmp_path: Path, number: int) -> Path:
    """A folder of Transkribus page files for type-N (copied: the benchmark is read-only)."""
    folder = tmp_path / f"transkribus-{number}"
    shutil.copytree(BENCHMARK / "reference_outputs" / "transkribus" / f"type-{number}", folder)
    return folder


def test_process_with_imported_transkribus_pages_scores_as_transkribus(tmp_path: Path):
    truth = benchmark_file("ground_truth", "txt", "type-1.txt")
    result = histocr(
        benchmark_file("pdfs", "type-1.pdf"),
        "--out",
        tmp_path / "out",
        "--import-from",
        transkribus_pages(tmp_path, 1),
        "--ground-truth",
        truth,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [s["engine"] for s in summary["stages"]] == ["import", "crf"]
    expected = score_text(
        truth.read_text(encoding="utf-8"),
        benchmark_file("reference_outputs", "transkribus", "type-1.txt").read_text(
            encoding="utf-8"
        ),
    ).as_dict()
    assert abs(summary["cer_normalized"] - expected["cer_normalized"]) < 1e-4
    assert abs(summary["cer"] - expected["cer"]) < 1e-4
    assert summary["records_written"] > 50


def test_process_refuses_imported_text_with_the_wrong_page_count(tmp_path: Path):
    folder = transkribus_pages(tmp_path, 1)
    (folder / "page-3.txt").unlink()
    result = histocr(
        benchmark_file("pdfs", "type-1.pdf"), "--out", tmp_path / "out", "--import-from", folder
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "page" in result.stderr.lower() and "3" in result.stderr


def test_import_through_the_api_with_a_worker(sqlite_settings, start_worker, client_for, tmp_path):
    worker = start_worker(sqlite_settings)
    client = client_for(sqlite_settings)
    project = client.post("/api/v1/projects", json={"name": "imported"}).json()
    pdf = benchmark_file("pdfs", "type-2.pdf")
    document = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("type-2.pdf", pdf.read_bytes(), "application/pdf")},
    ).json()["documents"][0]
    folder = transkribus_pages(tmp_path, 2)
    short = client.post(
        f"/api/v1/documents/{document['id']}/imported-text",
        files=[
            ("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(folder.iterdir())[:2]
        ],
    )
    assert short.status_code == 422 and "page" in short.json()["detail"]
    pages = sorted(folder.iterdir())
    attached = client.post(
        f"/api/v1/documents/{document['id']}/imported-text",
        files=[("files", (p.name, p.read_bytes(), "text/plain")) for p in pages],
    )
    assert attached.status_code == 200, attached.text

    run = client.post(
        f"/api/v1/projects/{project['id']}/runs",
        json={
            "stages": [
                {"stage": "ocr", "engine": "import"},
                {"stage": "extract", "engine": "rules"},
            ]
        },
    ).json()
    finished = wait_for_run(client, run["id"], timeout=180, workers=(worker,))
    assert finished["status"] == "done", finished
    detail = client.get(f"/api/v1/documents/{document['id']}").json()
    page_two = detail["pages"][1]
    result = client.get(f"/api/v1/runs/{run['id']}/pages/{page_two['id']}").json()
    expected = (folder / "page-2.txt").read_text(encoding="utf-8").strip("\n")
    assert result["stages"][0]["text"] == expected
    assert result["stages"][0]["model"] == "imported"


def test_a_txt_transcription_is_a_document_of_its_own(sqlite_settings, start_worker, client_for):
    worker = start_worker(sqlite_settings)
    client = client_for(sqlite_settings)
    project = client.post("/api/v1/projects", json={"name": "transcriptions"}).json()
    text = (
        "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n\f"
        "Förster, Johann, Schreiner, Großkölnstraße A 393.\n"
    )
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("aachen.txt", text.encode(), "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    document = upload.json()["documents"][0]
    assert (document["media_type"], document["page_count"]) == ("text/plain", 2)
    run = client.post(
        f"/api/v1/projects/{project['id']}/runs",
        json={
            "stages": [
                {"stage": "ocr", "engine": "import"},
                {"stage": "extract", "engine": "rules"},
            ]
        },
    ).json()
    assert wait_for_run(client, run["id"], timeout=120, workers=(worker,))["status"] == "done"
    rows = client.get(f"/api/v1/runs/{run['id']}/records.csv").text.strip().splitlines()
    assert rows[1].startswith(
        "Christian,Förster,Fabrikmeister,Großkölnstraße A 391.,aachen.txt,1,1,"
    )
    assert rows[2].startswith("Johann,Förster,Schreiner,Großkölnstraße A 393.,aachen.txt,2,1,")
    page = client.get(f"/api/v1/documents/{document['id']}").json()["pages"][0]
    assert page["image_url"] is None
