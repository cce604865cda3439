"""Latency of the routes the browser polls while a Tesseract run is going.

`--clients` (50) clients each poll `GET /api/v1/runs/{id}` and the project's document list
(`GET /api/v1/projects/{id}/documents`) every `--interval` seconds (1.0: twice the rate of the
browser's run page) for `--duration` seconds (30), while a run of the default pipeline
(Tesseract OCR, rules extraction) works through the 15 pages of the benchmark scans
(`benchmark/pdfs/type-1..5.pdf`). The API is a real `histocr serve` on 127.0.0.1:

    python bench/api_load.py --mode embedded     # SQLite + filesystem broker + embedded worker
    python bench/api_load.py --mode redis        # fresh PostgreSQL database, Redis db 13,
                                                 # `histocr serve --no-worker` + `histocr worker`

Setup is not timed: a temp data dir, the server (and in redis mode the worker), a project, the
five PDFs uploaded and ingested. Then the run is started and the clients begin at once. Printed:
requests/s, p50/p95/p99/max latency per route and overall, errors (a status other than 200, a
timeout, a refused connection), and how far the run got while the clients polled. Every process
the benchmark started is stopped at the end, on errors and Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.llm_throughput import (  # noqa: E402
    PG_ADMIN_URL,
    REDIS_URL,
    Processes,
    free_port,
    postgres_database,
    redis_database,
    wait_for_log,
)

BENCHMARK = Path(os.environ.get("HISTOCR_BENCHMARK_DIR", ROOT.parent / "shared" / "benchmark"))
SETTLED = ("done", "partial", "failed")


@dataclass
class Samples:
    """Latencies (seconds) of the answered requests of one route, and its errors."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        """Count one failed request by what went wrong."""
        self.errors[what] = self.errors.get(what, 0) + 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("embedded", "redis"), default="embedded")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of polling")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs)")
    return parser.parse_args()


@contextlib.contextmanager
def backing_services(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """The environment of the server and worker: a fresh database and broker in redis mode."""
    if args.mode == "embedded":
        yield {}
        return
    with (
        postgres_database(args.pg_admin_url) as database_url,
        redis_database(args.redis_url) as broker_url,
    ):
        yield {"HISTOCR_DATABASE_URL": database_url, "HISTOCR_BROKER_URL": broker_url}


def start_stack(
    args: argparse.Namespace, processes: Processes, temp: Path, env: dict[str, str]
) -> str:
    """Start `histocr serve` (embedded: with its worker; redis: and a `histocr worker`)."""
    port = free_port()
    child_env = {**os.environ, "HISTOCR_DATA_DIR": str(temp / "var"), **env}
    child_env.pop("HISTOCR_AUTH_REQUIRED", None)
    cli = [sys.executable, "-m", "app.cli"]
    serve = cli + ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if args.mode == "redis":
        serve.append("--no-worker")
    server_log = temp / "serve.log"
    processes.start("histocr serve", serve, child_env, server_log)
    wait_for_log(processes, server_log, b"Application startup complete")
    if args.mode == "redis":
        worker_log = temp / "worker.log"
        processes.start("histocr worker", cli + ["worker"], child_env, worker_log)
        # The default layout: a cpu, an llm and a gpu worker, each says "ready.".
        wait_for_log(processes, worker_log, b"ready.", count=3)
    else:
        wait_for_log(processes, server_log, b"ready.", count=3)
    return f"http://127.0.0.1:{port}"


def prepare(base: str, processes: Processes) -> tuple[int, list[int]]:
    """A project with the five benchmark PDFs uploaded and ingested (15 pages)."""
    import httpx

    pdfs = [BENCHMARK / "pdfs" / f"type-{n}.pdf" for n in range(1, 6)]
    missing = [str(p) for p in pdfs if not p.is_file()]
    if missing:
        raise SystemExit(f"benchmark scans missing: {missing} (set HISTOCR_BENCHMARK_DIR)")
    with httpx.Client(base_url=base, timeout=120) as client:
        project = client.post("/api/v1/projects", json={"name": "api-load"})
        project.raise_for_status()
        project_id = project.json()["id"]
        files = [("files", (p.name, p.read_bytes(), "application/pdf")) for p in pdfs]
        upload = client.post(f"/api/v1/projects/{project_id}/documents", files=files)
        upload.raise_for_status()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            processes.check_alive()
            documents = client.get(f"/api/v1/projects/{project_id}/documents").json()
            states = {d["status"] for d in documents}
            if states <= {"ready", "failed"}:
                if "failed" in states:
                    raise RuntimeError(f"ingest failed: {documents}")
                return project_id, [d["id"] for d in documents]
            time.sleep(0.5)
    raise RuntimeError("ingest did not finish in 300 s")


async def poll_client(
    client: Any, paths: list[str], args: argparse.Namespace, stop_at: float, samples: dict
) -> None:
    """Poll each path in turn, one round every `interval` seconds, until `stop_at`."""
    import httpx

    await asyncio.sleep(random.uniform(0, args.interval))  # clients do not start in lockstep
    while time.monotonic() < stop_at:
        round_start = time.monotonic()
        for path in paths:
            started = time.perf_counter()
            try:
                response = await client.get(path)
            except httpx.TimeoutException:
                samples[path].error("timeout")
                continue
            except httpx.TransportError as exc:
                samples[path].error(type(exc).__name__)
                continue
            if response.status_code == 200:
                samples[path].latencies.append(time.perf_counter() - started)
            else:
                samples[path].error(f"HTTP {response.status_code}")
        await asyncio.sleep(max(0.0, args.interval - (time.monotonic() - round_start)))


async def load(
    base: str, paths: list[str], args: argparse.Namespace
) -> tuple[dict[str, Samples], float]:
    """Run the clients; their samples per path and the seconds they polled."""
    import httpx

    samples = {path: Samples() for path in paths}
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=base, timeout=args.timeout, limits=limits) as client:
        started = time.monotonic()
        stop_at = started + args.duration
        await asyncio.gather(
            *(poll_client(client, paths, args, stop_at, samples) for _ in range(args.clients))
        )
        return samples, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def summarise(name: str, samples: list[Samples], seconds: float) -> dict[str, Any]:
    """Requests/s, latency percentiles in ms, and errors over some routes."""
    latencies = [v for s in samples for v in s.latencies]
    errors: dict[str, int] = {}
    for s in samples:
        for key, count in s.errors.items():
            errors[key] = errors.get(key, 0) + count
    row: dict[str, Any] = {
        "route": name,
        "requests": len(latencies) + sum(errors.values()),
        "requests_per_s": round((len(latencies) + sum(errors.values())) / seconds, 1),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }
    if latencies:
        row |= {
            f"{key}_ms": round(1000 * value, 1)
            for key, value in (
                ("p50", percentile(latencies, 50)),
                ("p95", percentile(latencies, 95)),
                ("p99", percentile(latencies, 99)),
                ("max", max(latencies)),
                ("mean", statistics.fmean(latencies)),
            )
        }
    return row


def print_table(args: argparse.Namespace, rows: list[dict[str, Any]], run: dict[str, Any]) -> None:
    print(
        f"\nmode {args.mode}: {args.clients} clients, one round every {args.interval:g} s, "
        f"{args.duration:g} s",
        file=sys.stderr,
    )
    header = f"{'route':<38} {'req/s':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'errors':>7}"
    print(header + "\n" + "-" * len(header), file=sys.stderr)
    for r in rows:
        figures = " ".join(
            f"{r.get(k + '_ms', float('nan')):>6.1f}ms" for k in ("p50", "p95", "p99", "max")
        )
        print(
            f"{r['route']:<38} {r['requests_per_s']:>7.1f} {figures} {r['errors']:>7}",
            file=sys.stderr,
        )
        if r["error_kinds"]:
            print(f"    errors: {r['error_kinds']}", file=sys.stderr)
    print(
        f"run {run['id']}: {run['status']} when the clients stopped, "
        f"{run['done']}/{run['total']} stage results done",
        file=sys.stderr,
    )


def main() -> None:
    args = parse_args()
    import httpx

    processes = Processes()
    temp = Path(tempfile.mkdtemp(prefix="histocr-api-load-"))
    try:
        with backing_services(args) as env:
            base = start_stack(args, processes, temp, env)
            project_id, _ = prepare(base, processes)
            response = httpx.post(f"{base}/api/v1/projects/{project_id}/runs", json={}, timeout=60)
            response.raise_for_status()
            run_id = response.json()["id"]
            run_path = f"/api/v1/runs/{run_id}"
            documents_path = f"/api/v1/projects/{project_id}/documents"
            samples, seconds = asyncio.run(load(base, [run_path, documents_path], args))
            run = httpx.get(base + run_path, timeout=30).json()
            processes.check_alive()
            rows = [
                summarise("GET /runs/{id}", [samples[run_path]], seconds),
                summarise("GET /projects/{id}/documents", [samples[documents_path]], seconds),
                summarise("all", list(samples.values()), seconds),
            ]
            progress = {
                "id": run_id,
                "status": run["status"],
                "done": run["progress"]["done"],
                "total": run["progress"]["total"],
            }
            print_table(args, rows, progress)
            print(
                json.dumps(
                    {"mode": args.mode, "clients": args.clients, "rows": rows, "run": progress}
                )
            )
            if run["status"] in SETTLED:
                print("note: the run settled before the clients stopped", file=sys.stderr)
    finally:
        processes.stop_all()
        if args.keep:
            print(f"kept {temp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
