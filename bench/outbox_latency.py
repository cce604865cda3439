"""What the outbox adds to a creating POST while the broker is up, and what a POST takes while
it is down.

`POST /api/v1/projects/{id}/runs` over one ingested document of `--pages` pages (each page an OCR
task) is timed `--requests` times per variant, in-process (Starlette's TestClient), alternating
the variants request by request so that both see the same machine:

- `outbox`: the app as it is: the tasks are outbox rows written with the run, published after
  the commit, and their rows deleted;
- `direct`: the same app with the rows left out (the tasks published after the commit, as
  before the outbox): the difference is the outbox's cost;
- `broker down`: the outbox with the broker URL on a port nobody listens on (timed separately,
  `--down-requests` times).

    python bench/outbox_latency.py --database postgres   # fresh database, Redis db 13
    python bench/outbox_latency.py --database sqlite     # a temp file, Redis db 13

Prints per variant the wall time (p50/p95/mean), this process's CPU time (p50: app and client
are one process, the database's own work is not in it) and the SQL statements of a request
(median), then one JSON line on stdout. On a busy machine the wall times carry the wait for a
CPU; the CPU time and the statements show the outbox's own cost.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.llm_throughput import PG_ADMIN_URL, REDIS_URL, postgres_database, redis_database  # noqa: E402

DEAD_BROKER = "redis://127.0.0.1:1/0"
DIRECT = "bench.direct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--down-requests", type=int, default=20)
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        url = (
            stack.enter_context(postgres_database(PG_ADMIN_URL))
            if args.database == "postgres"
            else f"sqlite:///{folder / 'histocr.db'}"
        )
        broker = stack.enter_context(redis_database(REDIS_URL))
        report = measure(folder, url, broker, args)
    summary = {}
    for name, samples in report.items():
        wall = [x.wall_ms for x in samples]
        cpu = [x.cpu_ms for x in samples]
        summary[name] = {
            "p50_ms": percentile(wall, 50),
            "p95_ms": percentile(wall, 95),
            "cpu_p50_ms": percentile(cpu, 50),
            "statements": statistics.median(x.statements for x in samples),
        }
        print(
            f"{name:12} n={len(samples):4}  p50 {percentile(wall, 50):7.2f} ms"
            f"  p95 {percentile(wall, 95):7.2f} ms  mean {statistics.fmean(wall):7.2f} ms"
            f"  CPU p50 {percentile(cpu, 50):6.2f} ms"
            f"  SQL statements {summary[name]['statements']:g}",
            file=sys.stderr,
        )
    print(json.dumps({"database": args.database, "pages": args.pages, **summary}))


def measure(
    folder: Path, url: str, broker: str, args: argparse.Namespace
) -> dict[str, list[Sample]]:
    from fastapi.testclient import TestClient
    from sqlalchemy import event

    from app.cli.serve import upgrade_database
    from app.config import Settings
    from app.db.session import get_engine
    from app.main import create_app

    settings = Settings(data_dir=folder / "var", database_url=url, broker_url=broker)
    upgrade_database(settings)
    project_id = setup_project(settings, args.pages)
    statements = [0]
    event.listen(
        get_engine(url),
        "before_cursor_execute",
        lambda *_: statements.__setitem__(0, statements[0] + 1),
    )
    # A script on the server's own machine: single-user mode, as tests/conftest.py's clients.
    local = {"base_url": "http://127.0.0.1:8000", "client": ("127.0.0.1", 50000)}
    up = TestClient(create_app(settings), **local)
    down = TestClient(create_app(settings.model_copy(update={"broker_url": DEAD_BROKER})), **local)
    path = f"/api/v1/projects/{project_id}/runs"
    report: dict[str, list[Sample]] = {"outbox": [], "direct": [], "broker down": []}
    for client in (up, down):  # warm up: connections, the preflight, the first publish
        post(client, path, statements)
    for _ in range(args.requests):
        report["outbox"].append(post(up, path, statements))
        with rows_left_out():
            report["direct"].append(post(up, path, statements))
    report["broker down"] = [post(down, path, statements) for _ in range(args.down_requests)]
    return report


def setup_project(settings: Any, pages: int) -> int:
    from app.db.session import session_scope
    from tests.factories import add_document, add_project

    with session_scope(settings.resolved_database_url) as session:
        project = add_project(session, "latency")
        add_document(session, project, pages=pages)
        return project.id


@dataclass(frozen=True)
class Sample:
    """One request: wall time and this process's CPU time (ms), SQL statements it sent."""

    wall_ms: float
    cpu_ms: float
    statements: int


def post(client: Any, path: str, statements: list[int]) -> Sample:
    before = statements[0]
    started, cpu = time.perf_counter(), time.process_time()
    response = client.post(path, json={})
    sample = Sample(
        (time.perf_counter() - started) * 1000,
        (time.process_time() - cpu) * 1000,
        statements[0] - before,
    )
    assert response.status_code == 201, response.text
    return sample


@contextlib.contextmanager
def rows_left_out() -> Iterator[None]:
    """Routes' tasks published after the commit without outbox rows (the old way)."""
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from app.pipeline.dispatch import Dispatch
    from app.pipeline.outbox import Outbox

    def add(self: Outbox, dispatches: Sequence[Dispatch]) -> None:
        self.session.info.setdefault(DIRECT, (self.sender, []))[1].extend(dispatches)

    def send(session: Session) -> None:
        sender, dispatches = session.info.pop(DIRECT, (None, []))
        if sender is not None:
            sender.send(dispatches)

    original = Outbox.add
    Outbox.add = add  # type: ignore[method-assign]
    event.listen(Session, "after_commit", send)
    try:
        yield
    finally:
        event.remove(Session, "after_commit", send)
        Outbox.add = original  # type: ignore[method-assign]


def percentile(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


if __name__ == "__main__":
    main()
