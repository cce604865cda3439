"""`histocr serve` on its embedded defaults, as `make run` starts it: real HTTP, its own worker."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.helpers import PRINTED_LINES, render_page

pytestmark = pytest.mark.e2e  # starts `histocr serve` and its workers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_embedded_runs_a_scan_end_to_end(tmp_path: Path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HISTOCR_")} | {
        "HISTOCR_PORT": str(port)
    }
    log = (tmp_path / "serve.log").open("wb")
    # The working directory decides where ./var goes, as for a user running `make run`.
    server = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=tmp_path,
        env=env | {"PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            _wait_healthy(client, server, tmp_path / "serve.log")
            health = client.get("/healthz").json()
            assert health["database"]["dialect"] == "sqlite"
            assert (tmp_path / "var" / "histocr.db").is_file()

            project = client.post("/api/v1/projects", json={"name": "embedded"}).json()
            page = render_page(tmp_path / "page.png", PRINTED_LINES)
            upload = client.post(
                f"/api/v1/projects/{project['id']}/documents",
                files={"files": ("page.png", page.read_bytes(), "image/png")},
                data={"start_run": "true"},
            )
            assert upload.status_code == 201, upload.text
            run_id = upload.json()["run_id"]
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                run = client.get(f"/api/v1/runs/{run_id}").json()
                if run["status"] in ("done", "partial", "failed"):
                    break
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                time.sleep(0.5)
            assert run["status"] == "done", run
            rows = client.get(f"/api/v1/runs/{run_id}/records.csv").text.strip().splitlines()
            assert len(rows) == 1 + len(PRINTED_LINES)
            assert "Schreiner" in rows[2]
            html = client.get(f"/runs/{run_id}", headers={"accept": "text/html"})
            assert html.status_code == 200 and "done" in html.text
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
    # The embedded worker (and its pool processes) went down with the server.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", f"embedded-{server.pid}"], capture_output=True)
        if not left.stdout:
            break
        time.sleep(0.5)
    assert left.stdout == b"", "embedded worker processes outlived histocr serve"


def _wait_healthy(client: httpx.Client, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, log.read_text()[-3000:]
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("histocr serve did not become healthy:\n" + log.read_text()[-3000:])
