"""`histocr serve`, `histocr worker` and `histocr migrate`."""

import ctypes
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from fastapi import FastAPI

from app.config import Settings, get_settings
from app.pipeline.celery_app import QUEUES

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def upgrade_database(settings: Settings) -> None:
    """Bring the database schema to the newest migration."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.resolved_database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


@click.command()
def migrate() -> None:
    """Apply database migrations (SQLite or PostgreSQL, from HISTOCR_DATABASE_URL)."""
    upgrade_database(get_settings())
    click.echo("database is up to date")


def _die_with_parent() -> None:
    # Linux: the embedded worker gets SIGTERM when `histocr serve` goes away, even on SIGKILL.
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _prepare_worker_child(settings: Settings) -> None:
    _die_with_parent()
    lower_priority(settings)


def lower_priority(settings: Settings) -> None:
    """Run this process (and what it starts: pool processes, Tesseract) at a lower priority,
    so that on a machine that also serves the API, requests are answered while OCR runs."""
    if settings.worker_nice:
        os.nice(settings.worker_nice)


@dataclass(frozen=True)
class WorkerSpec:
    """One Celery worker: the queues it takes, its pool and the pool's size."""

    queues: str
    pool: str
    concurrency: int | None = None


def worker_layout(settings: Settings, queues: Sequence[str], cpu: int | None) -> list[WorkerSpec]:
    """One worker per kind of work, each with the pool that suits it.

    cpu (ingest, Tesseract, rules): processes, one core each. llm (HTTP to a model server):
    threads of one process, so that its tasks share one event loop, one bound on requests in
    flight and the kept-alive connections (`models.engine_loop`). gpu (a model loaded in the
    worker): one task at a time in the worker's own process, so the model is loaded once.
    """
    layout = {
        "cpu": WorkerSpec("cpu", "prefork", cpu),
        "llm": WorkerSpec("llm", "threads", settings.llm_worker_concurrency),
        "gpu": WorkerSpec("gpu", "solo", None),
    }
    unknown = sorted(set(queues) - set(layout))
    if unknown:
        raise click.UsageError(f"unknown queue(s) {', '.join(unknown)}; queues are cpu, llm, gpu")
    return [layout[name] for name in QUEUES if name in queues]


def worker_command(settings: Settings, spec: WorkerSpec, name: str) -> list[str]:
    """The command line of one Celery worker process."""
    celery = [sys.executable, "-m", "celery", "-A", "workers.celery_app"]
    return celery + worker_arguments(settings, spec, name)


def worker_arguments(settings: Settings, spec: WorkerSpec, name: str) -> list[str]:
    """Celery's `worker` sub-command and its options for one worker."""
    arguments = [
        "worker",
        "--queues",
        spec.queues,
        "--pool",
        spec.pool,
        "--hostname",
        f"{name}-{os.getpid()}-{spec.queues.replace(',', '+')}@%h",
        "--loglevel",
        settings.log_level.upper(),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    if spec.concurrency and spec.pool != "solo":
        arguments += ["--concurrency", str(spec.concurrency)]
    return arguments


def start_worker_process(
    settings: Settings, spec: WorkerSpec, name: str
) -> subprocess.Popen[bytes]:
    """A Celery worker as a child process, on the same settings."""
    # A session of its own: a Ctrl-C or a signal to the parent's process group must not reach
    # the pool processes directly (Celery's warm shutdown then waits for them forever); the
    # parent stops the worker itself, and the worker gets SIGTERM if the parent dies first.
    return subprocess.Popen(  # noqa: PLW1509
        worker_command(settings, spec, name),
        preexec_fn=functools.partial(_prepare_worker_child, settings),
        start_new_session=True,
    )


class WorkerGroup:
    """Worker processes run beside `serve` (or by `histocr worker`), restarted if they die."""

    def __init__(self, settings: Settings, specs: Sequence[WorkerSpec], name: str) -> None:
        self.settings = settings
        self.specs = list(specs)
        self.name = name
        self.processes = [start_worker_process(settings, spec, name) for spec in self.specs]
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="histocr-worker-watch", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(2.0):
            for index, spec in enumerate(self.specs):
                code = self.processes[index].poll()
                if code is not None and not self._stop.is_set():
                    # Its unfinished stages come back through their leases; new work needs it.
                    logger.error(
                        "the %s worker exited with %s; starting a new one", spec.queues, code
                    )
                    self.processes[index] = start_worker_process(self.settings, spec, self.name)

    def request_stop(self) -> None:
        """Make wait() return (safe in a signal handler)."""
        self._stop.set()

    def wait(self) -> None:
        """Block until request_stop() or stop() is called."""
        while not self._stop.wait(1.0):
            pass

    def stop(self) -> None:
        """Stop watching, then stop the workers (warm shutdown, then kill them and their pools)."""
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for spec, process in zip(self.specs, self.processes, strict=True):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                logger.error("the %s worker did not stop in 20 s; killing it", spec.queues)
                # It leads a process group of its own (see start_worker_process): its pool too.
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@click.command()
@click.option("--host", default=None, help="Address to listen on (HISTOCR_HOST).")
@click.option("--port", type=int, default=None, help="Port (HISTOCR_PORT, default 8000).")
@click.option(
    "--worker/--no-worker",
    default=None,
    help="Run a worker beside the app (default: yes with the embedded broker).",
)
@click.option("--migrate/--no-migrate", default=True, help="Apply migrations before starting.")
def serve(host: str | None, port: int | None, worker: bool | None, migrate: bool) -> None:
    """Run the API and the browser UI (and, embedded, a worker)."""
    import uvicorn

    from app.api.auth import auth_required
    from app.main import create_app
    from app.pipeline.dispatch import CeleryDispatcher
    from app.pipeline.recovery import RecoveryLoop

    settings = get_settings()
    if host is not None:  # the app decides from the address it listens on whether to ask for
        settings = settings.model_copy(update={"host": host})  # accounts (app/api/auth.py)
    logging.basicConfig(level=settings.log_level.upper())
    if migrate:
        upgrade_database(settings)
    run_worker = settings.runs_embedded_worker if worker is None else worker

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        # In the app's lifespan, not after uvicorn.run: uvicorn re-raises SIGTERM/SIGINT once it
        # has shut down, so code after it would not run and the worker would be left behind.
        embedded = (
            WorkerGroup(
                settings,
                worker_layout(settings, QUEUES, settings.embedded_worker_concurrency),
                "embedded",
            )
            if run_worker
            else None
        )
        recovery = RecoveryLoop(settings, CeleryDispatcher(app.state.celery)).start()
        try:
            yield
        finally:
            recovery.stop()
            if embedded is not None:
                embedded.stop()

    app = create_app(settings, lifespan=background)
    click.echo(f"histocr on http://{settings.host}:{port or settings.port}")
    if auth_required(settings):
        click.echo("accounts required: log in, or send an API token (histocr users create NAME)")
    else:
        click.echo("single-user mode on loopback until the first user is created")
    # The event loop hands each request to a worker thread and back; with the interpreter's
    # default 5-ms switch interval it waits that long for the GIL whenever a thread is busy,
    # which made the tail of the polled routes' latency (bench/api_load.py).
    sys.setswitchinterval(0.0005)
    uvicorn.run(app, host=settings.host, port=port or settings.port, log_level="info")


@click.command()
@click.option("--queues", "-Q", default="cpu,llm,gpu", show_default=True, help="Queues to take.")
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=None,
    help="Pool size (with several queues and no --pool: the cpu worker's processes).",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default=None,
    help="One Celery pool for all the queues (default: a worker per queue, each with its pool).",
)
@click.option("--loglevel", "-l", default=None, help="Log level (HISTOCR_LOG_LEVEL).")
def worker(queues: str, concurrency: int | None, pool: str | None, loglevel: str | None) -> None:
    """Run workers for the given queues (distributed mode: set HISTOCR_BROKER_URL).

    By default each queue gets a worker of its own: cpu a process pool, llm a threads pool
    (HISTOCR_LLM_WORKER_CONCURRENCY tasks at once), gpu one task at a time. With one queue the
    worker runs in this process; with several, as child processes of this one.
    """
    from app.pipeline.dispatch import CeleryDispatcher
    from app.pipeline.recovery import RecoveryLoop

    settings = get_settings()
    if loglevel:
        settings = settings.model_copy(update={"log_level": loglevel})
    names = [q.strip() for q in queues.split(",") if q.strip()]
    specs = worker_layout(settings, names, concurrency)
    if pool is not None:  # one worker, one pool, for all the queues (as Celery has it)
        specs = [WorkerSpec(",".join(s.queues for s in specs), pool, concurrency)]
    recovery = RecoveryLoop(settings, CeleryDispatcher(_celery_app())).start()
    try:
        if len(specs) == 1:
            _run_worker_here(settings, specs[0])
        else:
            _run_worker_group(settings, specs)
    finally:
        recovery.stop()


def _celery_app() -> Any:
    from workers.celery_app import celery_app

    return celery_app


def _run_worker_here(settings: Settings, spec: WorkerSpec) -> None:
    lower_priority(settings)
    _celery_app().worker_main(worker_arguments(settings, spec, "worker"))


def _run_worker_group(settings: Settings, specs: Sequence[WorkerSpec]) -> None:
    logging.basicConfig(level=settings.log_level.upper())
    group = WorkerGroup(settings, specs, "worker")
    click.echo(
        "workers: " + ", ".join(f"{s.queues} ({s.pool}, {s.concurrency or 'auto'})" for s in specs)
    )

    def shutdown(_signum: int, _frame: Any) -> None:
        group.request_stop()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    try:
        group.wait()
    finally:
        group.stop()
