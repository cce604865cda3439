"""How long a SIGKILLed worker's page waits before it runs again, with the default settings.

A one-page text goes through `import` OCR and `openai` post-correction against the fake
OpenAI-compatible server of the tests (in this process). The page's first request never gets
an answer: its worker is SIGKILLed (with its pool, one process group: a crashed machine) at a
random point of its heartbeat cycle, a new worker starts at once (as `serve` restarts a dead
worker within 2 s, or as the other machines' workers already run), and the page's row is
watched in the database: when it is queued again (the lease ran out and a sweep took it
back), when a worker runs it again, and when it is done. Each round is a new page. Before the
kills, one page whose answer takes longer than the lease (`--slow-s`) checks that a slow page
keeps its lease: it must be sent once and done on its first attempt.

    python bench/recovery.py                         # SQLite + filesystem broker, 3 kills
    python bench/recovery.py --rounds 5 --mode redis # PostgreSQL (fresh database) + Redis db 12

The lease and the sweep interval are the defaults of `app.config.Settings` unless
`HISTOCR_STAGE_LEASE_S` / `HISTOCR_RECOVERY_INTERVAL_S` are set. Prints a table on stderr and
one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "fake-vlm-recovery"
API_KEY = "sk-bench-recovery-0123456789"
PG_ADMIN_URL = os.environ.get("HISTOCR_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
#: Not the tests' db 15 nor llm_throughput's 13: their workers would take these tasks.
REDIS_URL = os.environ.get("HISTOCR_BENCH_RECOVERY_REDIS_URL", "redis://127.0.0.1:6379/12")


class Endpoint:
    """The fake server; a page's first request hangs until its client is gone."""

    def __init__(self) -> None:
        from tests.fakes.openai_server import FakeOpenAIServer

        self.requests: dict[str, int] = {}
        self.hold_s: dict[str, float] = {}
        self.server = FakeOpenAIServer(model=MODEL, api_key=API_KEY, responder=self.answer)

    def answer(self, body: dict[str, Any]) -> Any:
        from tests.fakes.openai_server import ok, texts

        text = "\n".join(texts(body)).split("<text>\n", 1)[1].rsplit("\n</text>", 1)[0]
        self.requests[text] = self.requests.get(text, 0) + 1
        first = self.requests[text] == 1
        return ok(text, delay_s=self.hold_s.get(text, 3600.0) if first else 0.0)


class Worker:
    """`histocr worker` with one prefork pool for every queue: one process group to kill."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        handle = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--pool", "prefork", "--concurrency", "2"],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while b"ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the worker did not start:\n" + self.log.read_text()[-3000:])
            time.sleep(0.2)

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def database(mode: str) -> Iterator[tuple[str, str]]:
    """(database URL, broker URL): SQLite and the filesystem broker, or PostgreSQL and Redis."""
    if mode == "embedded":
        yield "", ""
        return
    import psycopg
    import redis

    name = f"histocr_recovery_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    host = PG_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
    try:
        yield f"postgresql+psycopg://{host}/{name}", REDIS_URL
    finally:
        from app.db.session import get_engine

        get_engine(f"postgresql+psycopg://{host}/{name}").dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def correction_row(url: str, run_id: int) -> Any:
    """The run's correction row, detached (status, attempts, heartbeat_at, started_at)."""
    from sqlalchemy import select

    from app.db.session import session_scope
    from app.db.tables import StageResult

    with session_scope(url) as session:
        row = session.scalars(
            select(StageResult).where(StageResult.run_id == run_id, StageResult.stage == "correct")
        ).first()
        if row is not None:
            session.expunge(row)
        return row


def start_run(client: Any, project_id: int, text: str) -> int:
    """Upload a one-page text and start import + correction on it."""
    upload = client.post(
        f"/api/v1/projects/{project_id}/documents",
        files={"files": (f"{uuid.uuid4().hex[:6]}.txt", text.encode(), "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    stages = [{"stage": "ocr", "engine": "import"}, {"stage": "correct", "engine": "openai"}]
    body = {"stages": stages, "document_ids": [upload.json()["documents"][0]["id"]]}
    run = client.post(f"/api/v1/projects/{project_id}/runs", json=body)
    assert run.status_code == 201, run.text
    return int(run.json()["id"])


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def kill_round(ctx: dict[str, Any], number: int, worker: Worker) -> tuple[dict[str, float], Worker]:
    """One page, its worker killed mid-request; returns the figures and the new worker."""
    settings, endpoint, url = ctx["settings"], ctx["endpoint"], ctx["url"]
    text = f"Mueller {number}, Peter Joseph, Baecker, Hochstrasse {number}."
    run_id = start_run(ctx["client"], ctx["project_id"], text)
    wait_for(
        lambda: endpoint.requests.get(text),
        60,
        f"the page's request (run {run_id}: {ctx['client'].get(f'/api/v1/runs/{run_id}').text}; "
        f"worker log: {worker.log.read_text(errors='replace')[-2000:]})",
    )
    # Anywhere in the heartbeat cycle: the lease runs from the last beat before the kill.
    time.sleep(random.uniform(0.0, settings.stage_lease_s / 4))
    before = correction_row(url, run_id)
    worker.kill()
    killed = time.monotonic()
    since_beat = (
        time.time() - before.heartbeat_at.timestamp() if before.heartbeat_at else float("nan")
    )
    replacement = Worker(ctx["env"], ctx["folder"] / f"worker-{number + 1}.log")
    marks: dict[str, float] = {}
    while "done" not in marks:
        row = correction_row(url, run_id)
        now = time.monotonic() - killed
        if "queued again" not in marks and (row.status != "running" or row.attempts > 1):
            marks["queued again"] = now
        if "running again" not in marks and row.attempts > 1:
            marks["running again"] = now
        if row.status in ("done", "failed"):
            marks["done"] = now
            if row.status != "done" or row.attempts != 2 or endpoint.requests[text] != 2:
                raise SystemExit(f"round {number}: {row.status}, {row.attempts} attempts")
        if now > settings.stage_lease_s + settings.recovery_interval_s + 120:
            raise SystemExit(f"round {number}: the page did not come back ({row.status})")
        time.sleep(0.05)
    replacement.wait_ready()
    return {"last beat before the kill": since_beat, **marks}, replacement


def slow_page(ctx: dict[str, Any], seconds: float) -> dict[str, Any]:
    """A page whose answer takes `seconds`: sent once, done on its first attempt?"""
    text = "Schmidt, Anna, Naeherin, Markt 3."
    ctx["endpoint"].hold_s[text] = seconds
    run_id = start_run(ctx["client"], ctx["project_id"], text)
    row = wait_for(
        lambda: (
            (r := correction_row(ctx["url"], run_id)) is not None
            and r.status in ("done", "failed")
            and r
        ),
        seconds + 120,
        "the slow page",
    )
    return {
        "answer after s": seconds,
        "status": row.status,
        "attempts": row.attempts,
        "requests": ctx["endpoint"].requests[text],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="kills to measure")
    parser.add_argument("--mode", choices=["embedded", "redis"], default="embedded")
    parser.add_argument(
        "--slow-s", type=float, default=None, help="the slow page's answer (1.5 leases)"
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    random.seed(args.seed)
    from fastapi.testclient import TestClient

    from app.cli.serve import upgrade_database
    from app.config import Settings
    from app.main import create_app

    with tempfile.TemporaryDirectory(prefix="histocr-recovery-") as tmp:
        folder = Path(tmp)
        with database(args.mode) as (database_url, broker_url):
            endpoint = Endpoint()
            endpoint.server.start()
            # The API process resolves the endpoint from its settings too.
            os.environ["HISTOCR_OPENAI_BASE_URL"] = endpoint.server.base_url
            os.environ["HISTOCR_OPENAI_MODEL"] = MODEL
            os.environ["HISTOCR_OPENAI_API_KEY"] = API_KEY
            settings = Settings(
                data_dir=folder / "var", database_url=database_url, broker_url=broker_url
            )
            settings.data_dir.mkdir()
            upgrade_database(settings)
            env = {
                **os.environ,
                "HISTOCR_DATA_DIR": str(settings.data_dir),
                "HISTOCR_DATABASE_URL": settings.resolved_database_url,
                "HISTOCR_BROKER_URL": broker_url,
            }
            env = {k: v for k, v in env.items() if v}
            print(
                f"lease {settings.stage_lease_s:g} s, sweep every "
                f"{settings.recovery_interval_s:g} s, {args.mode}",
                file=sys.stderr,
            )
            worker = Worker(env, folder / "worker-0.log")
            worker.wait_ready()
            try:
                # A script on the server's machine, as the loopback single-user mode serves it.
                app = create_app(settings)
                loopback = {"base_url": "http://127.0.0.1:8000", "client": ("127.0.0.1", 50000)}
                with TestClient(app, **loopback) as client:
                    project = client.post("/api/v1/projects", json={"name": "recovery"}).json()
                    ctx = {
                        "settings": settings,
                        "endpoint": endpoint,
                        "url": settings.resolved_database_url,
                        "client": client,
                        "project_id": project["id"],
                        "env": env,
                        "folder": folder,
                    }
                    slow = slow_page(ctx, args.slow_s or settings.stage_lease_s * 1.5)
                    print(f"slow page: {slow}", file=sys.stderr)
                    rounds = []
                    for number in range(1, args.rounds + 1):
                        figures, worker = kill_round(ctx, number, worker)
                        rounds.append(figures)
                        print(
                            f"round {number}: "
                            + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items()),
                            file=sys.stderr,
                        )
            finally:
                worker.stop()
                endpoint.server.stop()
    running = [r["running again"] for r in rounds]
    summary = {
        "mode": args.mode,
        "lease_s": settings.stage_lease_s,
        "recovery_interval_s": settings.recovery_interval_s,
        "slow_page": slow,
        "rounds": rounds,
        "running_again_s": {
            "min": min(running),
            "median": statistics.median(running),
            "max": max(running),
        },
    }
    print(
        f"a SIGKILLed worker's page ran again after {min(running):.1f}–{max(running):.1f} s "
        f"(median {statistics.median(running):.1f} s, {len(running)} kills); bound: lease + "
        f"sweep = {settings.stage_lease_s + settings.recovery_interval_s:g} s",
        file=sys.stderr,
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
