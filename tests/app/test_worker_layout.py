"""`histocr worker` and `serve`: one Celery worker per queue, each with the pool that suits it."""

import os
import subprocess
import sys

import pytest

from app.cli.serve import WorkerSpec, worker_command, worker_layout
from app.config import Settings
from app.pipeline.celery_app import QUEUES
from tests.conftest import ROOT


def test_each_queue_gets_the_pool_that_suits_its_work(tmp_path):
    settings = Settings(data_dir=tmp_path, llm_worker_concurrency=12)
    layout = worker_layout(settings, QUEUES, cpu=3)
    assert layout == [
        WorkerSpec("cpu", "prefork", 3),  # Tesseract and rendering: a process per core
        WorkerSpec("llm", "threads", 12),  # HTTP: threads sharing one event loop and pool
        WorkerSpec("gpu", "solo", None),  # one loaded model, one task at a time
    ]
    assert worker_layout(settings, ["llm"], cpu=None) == [WorkerSpec("llm", "threads", 12)]


def test_worker_command_names_queue_pool_and_size():
    settings = Settings()
    llm = worker_command(settings, WorkerSpec("llm", "threads", 8), "worker")
    assert llm[llm.index("--queues") + 1] == "llm"
    assert llm[llm.index("--pool") + 1] == "threads"
    assert llm[llm.index("--concurrency") + 1] == "8"
    solo = worker_command(settings, WorkerSpec("gpu", "solo", 4), "worker")
    assert "--concurrency" not in solo  # a solo pool runs one task at a time whatever it is told
    both = worker_command(settings, WorkerSpec("cpu,llm", "prefork", 2), "embedded")
    hostname = both[both.index("--hostname") + 1]
    assert hostname.startswith(f"embedded-{os.getpid()}-cpu+llm@")


@pytest.mark.e2e  # a `histocr` subprocess
def test_an_unknown_queue_is_a_usage_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("HISTOCR_")}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker", "--queues", "cpu,ocr"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown queue(s) ocr; queues are cpu, llm, gpu" in done.stderr
    assert "Traceback" not in done.stderr
