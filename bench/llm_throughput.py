"""Throughput of the `openai` engine through real workers against a capacity-bound endpoint.

N synthetic pages go through the `ocr` stage with the `openai` engine. The endpoint is the fake
OpenAI-compatible server of the tests (its own process) in capacity mode: every request takes
`--latency` seconds and at most `--capacity` are served at once, the rest queue. The best any
client can do is capacity ÷ latency pages/s (the ideal); the benchmark prints what histocr
achieved against it, end to end (the POST of the run until the run is done) and on the server
(first request received until the last answer), and where the rest of the time went.

    python bench/llm_throughput.py --mode embedded          # SQLite + filesystem broker
    python bench/llm_throughput.py --mode redis             # PostgreSQL + Redis (db 13)
    python bench/llm_throughput.py --mode redis --pages 1024 --latency 5

Setup is not timed: a temp data dir, a migrated database (in redis mode a fresh PostgreSQL
database, dropped afterwards, and Redis db 13, flushed: not the tests' db 15, whose workers would
take the benchmark's tasks), the fake server, `python -m app.cli worker` process(es) in
histocr's default layout (a prefork cpu worker, a threads llm worker), a project with the pages
uploaded as multi-page TIFFs and ingested, and (unless --no-warm-up) one untimed run over the
first document, so that the timed run meets workers and an API that have served a run before,
as in a deployment. Timed: the run, started through the
API (a TestClient over `app.main.create_app`, as `histocr serve` would run it) and polled until
it settles. The run's `finished_at` (written by the evaluate task) ends the end-to-end time,
so the polling interval does not blur it. Everything is cleaned up, on errors and Ctrl-C too.

The server does not decode the images it gets unless `--decode-images` is given: a real model
server does that on its own machine, and here it would take CPU from the workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "fake-vlm-bench"
API_KEY = "sk-bench-0123456789"
PG_ADMIN_URL = os.environ.get("HISTOCR_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
#: Not the tests' db 15: a test run beside the benchmark flushes it and its workers, on the same
#: queue names, would take (and drop) the benchmark's tasks.
REDIS_URL = os.environ.get("HISTOCR_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


# --- the fake server, with a timeline ------------------------------------------------------------


def serve_fake(args: argparse.Namespace) -> None:
    """Run the fake server in this process (the benchmark starts it so), recording each request."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from tests.fakes.openai_server import FakeOpenAIServer, Stats

    class TimedServer(FakeOpenAIServer):
        """Also records, per chat request, when it arrived and when its answer was ready."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.timeline: list[tuple[float, float, int]] = []

        async def _chat(self, request: Request) -> Response:
            arrived = time.time()
            response = await super()._chat(request)
            self.timeline.append((arrived, time.time(), response.status_code))
            return response

        async def _reset(self, _request: Request) -> Response:
            """Forget the warm-up's requests (violations stay: they count whenever they were)."""
            self.stats = Stats()
            self.timeline = []
            return JSONResponse({"reset": True})

        async def _timeline(self, _request: Request) -> Response:
            return JSONResponse(
                {
                    "stats": {k: v for k, v in vars(self.stats).items()},
                    "violations": self.violations[:20],
                    "timeline": self.timeline,
                }
            )

        def app(self):  # type: ignore[no-untyped-def]
            app = super().app()
            # Before the fake's catch-all route, which would count it as a violation.
            app.router.routes.insert(0, Route("/_bench/timeline", self._timeline))
            app.router.routes.insert(0, Route("/_bench/reset", self._reset, methods=["POST"]))
            return app

    server = TimedServer(
        model=MODEL,
        api_key=API_KEY,
        latency_s=args.latency,
        capacity=args.capacity,
        decode_images=args.decode_images,
    )
    uvicorn.run(
        server.app(),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


# --- setup ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Processes:
    """Child processes of this benchmark, each in its own session; all stopped at the end."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes], Path, Any]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> Any:
        """Start a process with its output in `log`."""
        handle = log.open("wb")
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, process, log, handle))
        return process

    def check_alive(self) -> None:
        """Fail with the log's tail when a child has exited."""
        for name, process, log, _ in self.started:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")

    def stop_all(self) -> None:
        """SIGTERM every process group we started, wait, then SIGKILL what is left."""
        for _, process, _, _ in self.started:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, process, _, handle in self.started:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Pool children left behind in the group (a warm shutdown that hung).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            handle.close()
        self.started.clear()


def wait_for_log(
    processes: Processes, log: Path, marker: bytes, count: int = 1, timeout: float = 90
) -> None:
    """Wait until `marker` shows `count` times in a child's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.read_bytes().count(marker) >= count:
            return
        processes.check_alive()
        time.sleep(0.2)
    raise RuntimeError(f"{log.name}: no {marker!r} within {timeout} s")


def wait_for_server(base: str, processes: Processes, timeout: float = 30) -> None:
    """Wait until the fake server answers."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processes.check_alive()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/_fake/stats", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError("the fake server did not start")


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards (connections forced off)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"histocr_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = (
        make_url(admin_url)
        .set(drivername="postgresql+psycopg", database=name)
        .render_as_string(hide_password=False)
    )
    try:
        yield url
    finally:
        from app.db.session import get_engine

        with contextlib.suppress(Exception):
            get_engine(url).dispose()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_database(url: str) -> Iterator[str]:
    """A Redis database for the broker, emptied before and after."""
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            client.flushdb()
        client.close()


def page_tiffs(pages: int, per_document: int, folder: Path) -> list[Path]:
    """Multi-page TIFFs of 800×1200 grey printed-looking pages, each page numbered (unique)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=22)
    bases = []
    for variant in range(4):
        image = Image.new("L", (800, 1200), 232)
        draw = ImageDraw.Draw(image)
        for line in range(36):
            entry = f"Mueller{variant}, Peter {line}, Baecker, Hochstrasse {line + 7 * variant}."
            draw.text((40, 90 + 30 * line), entry, fill=25, font=font)
        bases.append(image)
    paths = []
    for start in range(0, pages, per_document):
        frames = []
        for number in range(start, min(pages, start + per_document)):
            frame = bases[number % len(bases)].copy()
            ImageDraw.Draw(frame).text((40, 30), f"Seite {number + 1}", fill=0, font=font)
            frames.append(frame)
        path = folder / f"pages-{start + 1:05d}.tif"
        frames[0].save(
            path, save_all=True, append_images=frames[1:], compression="tiff_lzw", dpi=(300, 300)
        )
        paths.append(path)
    return paths


# --- the measurement -----------------------------------------------------------------------------


@dataclass
class Measurement:
    """Everything the report is made of (wall-clock seconds since the epoch unless noted)."""

    posted: float
    answered: float
    observed_done: float
    run: dict[str, Any]
    results: list[dict[str, Any]]
    server: dict[str, Any]


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, run the timed part, tear everything down; return the report."""
    processes = Processes()
    temp = Path(tempfile.mkdtemp(prefix="histocr-llm-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            database_url = broker_url = ""
            if args.mode == "redis":
                database_url = stack.enter_context(postgres_database(args.pg_admin_url))
                broker_url = stack.enter_context(redis_database(args.redis_url))
            measurement = measure(args, temp, processes, database_url, broker_url)
            processes.stop_all()  # before the database goes (its connections are forced off)
        return report(args, measurement)
    finally:
        processes.stop_all()
        if args.keep:
            print(f"kept {temp}", file=sys.stderr)
        else:
            shutil.rmtree(temp, ignore_errors=True)


def measure(
    args: argparse.Namespace,
    temp: Path,
    processes: Processes,
    database_url: str,
    broker_url: str,
) -> Measurement:
    import httpx
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from app.cli.serve import upgrade_database
    from app.config import OpenAISettings, Settings
    from app.main import create_app

    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    openai = OpenAISettings(
        base_url=base_url,
        model=MODEL,
        api_key=SecretStr(API_KEY),
        batch_size=args.batch_size,
        max_in_flight=args.max_in_flight,
    )
    settings = Settings(
        data_dir=temp / "var",
        database_url=database_url,
        broker_url=broker_url,
        log_level="WARNING",
        openai=openai,
    )
    upgrade_database(settings)

    server_argv = [sys.executable, str(Path(__file__).resolve()), "--serve-fake", "--port"]
    server_argv += [str(port), "--latency", str(args.latency), "--capacity", str(args.capacity)]
    if args.decode_images:
        server_argv.append("--decode-images")
    processes.start("fake server", server_argv, dict(os.environ), temp / "server.log")
    wait_for_server(f"http://127.0.0.1:{port}", processes)

    env = {k: v for k, v in os.environ.items() if not k.startswith("HISTOCR_")}
    env.update(
        {
            "HISTOCR_DATA_DIR": str(settings.data_dir),
            "HISTOCR_DATABASE_URL": settings.resolved_database_url,
            "HISTOCR_OPENAI_BASE_URL": base_url,
            "HISTOCR_OPENAI_MODEL": MODEL,
            "HISTOCR_OPENAI_API_KEY": API_KEY,
            "HISTOCR_OPENAI_MAX_IN_FLIGHT": str(args.max_in_flight),
            "HISTOCR_OPENAI_BATCH_SIZE": str(args.batch_size),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if broker_url:
        env["HISTOCR_BROKER_URL"] = broker_url
    for index in range(args.workers):
        log = temp / f"worker-{index}.log"
        argv = [sys.executable, "-m", "app.cli", "worker", "--queues", "cpu,llm"]
        if args.pool:
            argv += ["--pool", args.pool]
        if args.concurrency:
            argv += ["--concurrency", str(args.concurrency)]
        argv += ["--loglevel", "INFO"]
        if args.llm_concurrency:
            env["HISTOCR_LLM_WORKER_CONCURRENCY"] = str(args.llm_concurrency)
        processes.start(f"worker {index}", argv, env, log)
    for index in range(args.workers):
        # The default layout is a cpu and an llm worker, each saying "ready."
        wait_for_log(processes, temp / f"worker-{index}.log", b"ready.", 1 if args.pool else 2)

    tiffs = page_tiffs(args.pages, args.pages_per_document, temp)
    with TestClient(create_app(settings)) as client:
        import logging

        logging.getLogger("httpx").setLevel(logging.WARNING)
        project_id = upload_and_ingest(args, client, tiffs, processes)
        if args.warm_up:
            warm_up(args, client, project_id, processes)
            httpx.post(f"http://127.0.0.1:{port}/_bench/reset", timeout=10).raise_for_status()
        time.sleep(1.0)  # let the workers settle after the ingest
        posted, answered, observed_done, run = timed_run(args, client, project_id, processes)

    timeline = httpx.get(f"http://127.0.0.1:{port}/_bench/timeline", timeout=30).json()
    return Measurement(
        posted=posted,
        answered=answered,
        observed_done=observed_done,
        run=run,
        results=stage_rows(settings.resolved_database_url, run["id"]),
        server=timeline,
    )


def upload_and_ingest(
    args: argparse.Namespace, client: Any, tiffs: list[Path], processes: Processes
) -> int:
    """A project with the pages uploaded; returns once every document is ingested."""
    project = client.post("/api/v1/projects", json={"name": "llm throughput"}).json()
    files = [("files", (p.name, p.read_bytes(), "image/tiff")) for p in tiffs]
    upload = client.post(f"/api/v1/projects/{project['id']}/documents", files=files)
    if upload.status_code != 201:
        raise RuntimeError(f"upload failed: {upload.status_code} {upload.text[:500]}")
    started = time.monotonic()
    while True:
        documents = client.get(f"/api/v1/projects/{project['id']}/documents").json()
        states = Counter(d["status"] for d in documents)
        if states.get("failed"):
            raise RuntimeError(f"ingest failed: {[d['error'] for d in documents]}")
        if states.get("ready") == len(documents):
            break
        if time.monotonic() - started > args.timeout:
            raise RuntimeError(f"ingest did not finish in {args.timeout} s: {states}")
        processes.check_alive()
        time.sleep(0.5)
    pages = sum(d["page_count"] for d in documents)
    if pages != args.pages:
        raise RuntimeError(f"{pages} pages ingested, {args.pages} expected")
    seconds = time.monotonic() - started
    print(f"setup: {pages} pages ingested in {seconds:.1f} s", file=sys.stderr)
    return int(project["id"])


def warm_up(args: argparse.Namespace, client: Any, project_id: int, processes: Processes) -> None:
    """One untimed run over the first document, as a server and workers that have been up a
    while have done: code imported, statements compiled, database connections and the
    endpoint's client pool open."""
    documents = client.get(f"/api/v1/projects/{project_id}/documents").json()
    body = {"stages": [{"stage": "ocr", "engine": "openai"}], "document_ids": [documents[0]["id"]]}
    response = client.post(f"/api/v1/projects/{project_id}/runs", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"the warm-up run was refused: {response.status_code} {response.text}")
    run_id = response.json()["id"]
    deadline = time.time() + args.timeout
    while client.get(f"/api/v1/runs/{run_id}").json()["status"] not in (
        "done",
        "partial",
        "failed",
    ):
        if time.time() > deadline:
            raise RuntimeError("the warm-up run did not finish")
        processes.check_alive()
        time.sleep(args.poll)


def timed_run(
    args: argparse.Namespace, client: Any, project_id: int, processes: Processes
) -> tuple[float, float, float, dict[str, Any]]:
    """POST the run and poll it until it settles: (posted, answered, seen done, the run)."""
    stages = [{"stage": "ocr", "engine": "openai"}]
    # A server that has been up a while has its code loaded and its statements compiled: the
    # estimate builds the same run configuration, so the timed POST is not the process's first.
    estimate = client.post(f"/api/v1/projects/{project_id}/runs/estimate", json={"stages": stages})
    if estimate.status_code != 200:
        raise RuntimeError(f"the estimate was refused: {estimate.status_code} {estimate.text}")
    posted = time.time()
    response = client.post(f"/api/v1/projects/{project_id}/runs", json={"stages": stages})
    answered = time.time()
    if response.status_code != 201:
        raise RuntimeError(f"the run was refused: {response.status_code} {response.text}")
    run_id = response.json()["id"]
    while True:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("done", "partial", "failed"):
            return posted, answered, time.time(), run
        if time.time() - posted > args.timeout:
            raise RuntimeError(f"the run did not finish in {args.timeout} s: {run['progress']}")
        processes.check_alive()
        time.sleep(args.poll)


def stage_rows(database_url: str, run_id: int) -> list[dict[str, Any]]:
    """The run's stage results with their timestamps (as epoch seconds)."""
    from sqlalchemy import select

    from app.db.session import session_scope
    from app.db.tables import StageResult

    def epoch(value: Any) -> float | None:
        return value.timestamp() if value is not None else None

    with session_scope(database_url) as session:
        rows = session.execute(
            select(
                StageResult.id,
                StageResult.status,
                StageResult.queued_at,
                StageResult.started_at,
                StageResult.finished_at,
                StageResult.latency_s,
            ).where(StageResult.run_id == run_id)
        ).all()
    return [
        {
            "id": row.id,
            "status": row.status,
            "queued": epoch(row.queued_at),
            "started": epoch(row.started_at),
            "finished": epoch(row.finished_at),
            "latency": row.latency_s,
        }
        for row in rows
    ]


# --- the report ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, m: Measurement) -> dict[str, Any]:
    """Compute the figures from the measurement; print the table (stderr) and JSON (stdout)."""
    from datetime import datetime

    n = args.pages
    ideal = args.capacity / args.latency
    done = datetime.fromisoformat(m.run["finished_at"]).timestamp()
    ok = [e for e in m.server["timeline"] if e[2] == 200]
    arrivals = sorted(e[0] for e in ok)
    answers = sorted(e[1] for e in ok)
    first_request, last_answer = arrivals[0], answers[-1]
    end_to_end = done - m.posted
    server_span = last_answer - first_request
    statuses = Counter(r["status"] for r in m.results)
    queued = [r["queued"] for r in m.results if r["queued"]]
    claimed = sorted(r["started"] for r in m.results if r["started"])
    finished = [r["finished"] for r in m.results if r["finished"]]
    # Each task claims its pages with one timestamp: the distinct ones are the tasks.
    tasks = sorted(Counter(r["started"] for r in m.results if r["started"]).items())
    task_ends: dict[float, float] = {}
    for r in m.results:
        if r["started"] and r["finished"]:
            task_ends[r["started"]] = max(task_ends.get(r["started"], 0.0), r["finished"])
    best_span = math.ceil(n / args.capacity) * args.latency
    # The server kept `capacity` slots busy for n × latency slot-seconds out of capacity × span.
    busy = len(ok) * args.latency / (args.capacity * server_span) if server_span > 0 else 0.0
    result = {
        "mode": args.mode,
        "pages": n,
        "latency_s": args.latency,
        "capacity": args.capacity,
        "workers": args.workers,
        "concurrency": args.concurrency,
        "pool": args.pool or "layout",
        "warm_up": args.warm_up,
        "llm_concurrency": args.llm_concurrency or 8,
        "batch_size": args.batch_size,
        "max_in_flight": args.max_in_flight,
        "status": m.run["status"],
        "stage_statuses": dict(statuses),
        "ideal_pages_s": round(ideal, 3),
        "achieved_pages_s": round(n / end_to_end, 3),
        "ratio": round(n / end_to_end / ideal, 4),
        "server_pages_s": round(len(ok) / server_span, 3),
        "server_ratio": round(len(ok) / server_span / ideal, 4),
        "best_possible_ratio": round(n / args.capacity * args.latency / best_span, 4),
        "end_to_end_s": round(end_to_end, 3),
        "observed_by_polling_s": round(m.observed_done - m.posted, 3),
        "server_span_s": round(server_span, 3),
        "server_busy_fraction": round(busy, 4),
        "max_concurrency_server": m.server["stats"]["max_serving"],
        "max_connections_server": m.server["stats"]["max_in_flight"],
        "requests": m.server["stats"]["requests"],
        "post_s": round(m.answered - m.posted, 3),
        "first_queued_s": round(min(queued) - m.posted, 3) if queued else None,
        "first_claim_s": round(claimed[0] - m.posted, 3) if claimed else None,
        "time_to_first_request_s": round(first_request - m.posted, 3),
        "last_answer_to_last_store_s": round(max(finished) - last_answer, 3),
        "tail_s": round(done - last_answer, 3),
        "tasks": len(tasks),
        "posted_at": round(m.posted, 4),
        "server_violations": m.server["violations"],
    }
    print_table(result, tasks, task_ends, m.posted)
    print_timeline(ok, m.posted, args.latency, args.timeline_step)
    return result


def print_timeline(requests: list[list[float]], t0: float, latency: float, step: float) -> None:
    """Per `step` seconds after the POST: requests arrived, and the mean number in service.

    In capacity mode a request is served during the `latency` before its answer; a gap in
    "in service" is capacity the workers left unused.
    """
    if not requests:
        return
    end = max(e[1] for e in requests) - t0
    buckets = math.ceil(end / step)
    arrived = [0] * buckets
    serving = [0.0] * buckets
    for arrival, answer, _ in requests:
        arrived[min(buckets - 1, int((arrival - t0) / step))] += 1
        start, stop = answer - latency - t0, answer - t0
        for index in range(max(0, int(start / step)), min(buckets, int(stop / step) + 1)):
            low, high = index * step, (index + 1) * step
            serving[index] += max(0.0, min(stop, high) - max(start, low)) / step
    out = sys.stderr
    print(f"  timeline, {step:g} s steps after the POST: arrived / mean in service", file=out)
    for index in range(buckets):
        print(
            f"    {index * step:6.2f}  {arrived[index]:4d}  {serving[index]:6.1f}",
            file=out,
        )
    print("", file=out)


def print_table(
    r: dict[str, Any], tasks: list[tuple[float, int]], ends: dict[float, float], t0: float
) -> None:
    out = sys.stderr
    rows = [
        ("mode", r["mode"]),
        ("pages", r["pages"]),
        ("latency / capacity", f"{r['latency_s']} s / {r['capacity']}"),
        (
            "workers",
            (
                f"{r['workers']} × {r['pool']} {r['concurrency'] or 'auto'}"
                if r["pool"] != "layout"
                else f"{r['workers']} × (cpu prefork, llm threads {r['llm_concurrency']})"
            )
            + f" (batch {r['batch_size']}, max in flight {r['max_in_flight']})",
        ),
        ("run status", f"{r['status']} {r['stage_statuses']}"),
        ("ideal pages/s", f"{r['ideal_pages_s']:.2f}"),
        ("achieved pages/s (end to end)", f"{r['achieved_pages_s']:.2f}  ratio {r['ratio']:.3f}"),
        (
            "achieved pages/s (server side)",
            f"{r['server_pages_s']:.2f}  ratio {r['server_ratio']:.3f}",
        ),
        ("best possible ratio (⌈N/C⌉ rounds)", f"{r['best_possible_ratio']:.3f}"),
        (
            "end to end",
            f"{r['end_to_end_s']:.2f} s (seen by polling: {r['observed_by_polling_s']:.2f} s)",
        ),
        ("server: first request → last answer", f"{r['server_span_s']:.2f} s"),
        ("server slots busy", f"{r['server_busy_fraction']:.1%}"),
        (
            "max served at once / connections",
            f"{r['max_concurrency_server']} / {r['max_connections_server']}",
        ),
        ("POST /runs answered after", f"{r['post_s']:.3f} s"),
        ("first page claimed by a task after", f"{r['first_claim_s']:.3f} s"),
        ("time to first request", f"{r['time_to_first_request_s']:.3f} s"),
        ("last answer → last page stored", f"{r['last_answer_to_last_store_s']:.3f} s"),
        ("tail: last answer → run done", f"{r['tail_s']:.3f} s"),
    ]
    width = max(len(k) for k, _ in rows)
    print("", file=out)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}", file=out)
    print(
        f"\n  tasks ({len(tasks)}): claimed at → last page stored, seconds after the POST", file=out
    )
    for started, count in tasks:
        end = ends.get(started)
        shown = f"{end - t0:7.3f}" if end else "      -"
        print(f"    {started - t0:7.3f} → {shown}  {count:4d} pages", file=out)
    print("", file=out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("embedded", "redis"), default="embedded")
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per request")
    parser.add_argument("--capacity", type=int, default=64, help="requests served at once")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="with --pool: its size; else the cpu worker's processes (default: the cores)",
    )
    parser.add_argument(
        "--pool",
        default=None,
        help="one Celery pool for both queues (prefork, threads); default: histocr's layout, "
        "a prefork cpu worker and a threads llm worker",
    )
    parser.add_argument(
        "--llm-concurrency", type=int, default=None, help="HISTOCR_LLM_WORKER_CONCURRENCY (8)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="pages per task (HISTOCR_OPENAI_BATCH_SIZE)"
    )
    parser.add_argument(
        "--max-in-flight", type=int, default=256, help="HISTOCR_OPENAI_MAX_IN_FLIGHT"
    )
    parser.add_argument("--pages-per-document", type=int, default=50)
    parser.add_argument(
        "--warm-up",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="first an untimed run over the first document (default: yes)",
    )
    parser.add_argument(
        "--pg-admin-url", default=PG_ADMIN_URL, help="redis mode: where to create the database"
    )
    parser.add_argument(
        "--redis-url",
        default=REDIS_URL,
        help="redis mode: the broker database, flushed before and after",
    )
    parser.add_argument("--decode-images", action="store_true", help="the server decodes images")
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between run polls")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for ingest / run")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    parser.add_argument("--timeline-step", type=float, default=0.5, help="seconds per timeline row")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.serve_fake:
        serve_fake(args)
        return

    # SIGTERM and SIGHUP clean up like Ctrl-C does (and Ctrl-C works even when started in the
    # background of a script, which starts it with SIGINT ignored).
    def interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)
    try:
        result = run_benchmark(args)
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
