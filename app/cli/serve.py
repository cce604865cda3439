"""`histocr serve`, `histocr worker` and `histocr migrate`."""

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import click
from fastapi import FastAPI

from app.config import Settings, get_settings

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


class EmbeddedWorker:
    """The worker `histocr serve` runs beside the app, restarted if it dies."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.process = start_embedded_worker(settings)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="histocr-worker-watch", daemon=True
        )
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(2.0):
            code = self.process.poll()
            if code is not None and not self._stop.is_set():
                # Its unfinished stages come back through their leases; new work needs a worker.
                logger.error("the embedded worker exited with %s; starting a new one", code)
                self.process = start_embedded_worker(self.settings)

    def stop(self) -> None:
        """Stop watching, then stop the worker (warm shutdown, then kill it and its pool)."""
        self._stop.set()
        self._thread.join(timeout=5)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            logger.error("the embedded worker did not stop in 20 s; killing it")
            # It leads a process group of its own (see start_embedded_worker): its pool too.
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_embedded_worker(settings: Settings) -> subprocess.Popen[bytes]:
    """A Celery worker as a child process, on the same settings and all queues."""
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--queues",
        "cpu,llm,gpu",
        "--concurrency",
        str(settings.embedded_worker_concurrency),
        "--hostname",
        f"embedded-{os.getpid()}@%h",
        "--loglevel",
        settings.log_level.upper(),
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    # A session of its own: a Ctrl-C or a signal to serve's process group must not reach the
    # pool processes directly (Celery's warm shutdown then waits for them forever); serve stops
    # the worker itself, and the worker gets SIGTERM if serve dies without doing so.
    return subprocess.Popen(  # noqa: PLW1509
        command, preexec_fn=_die_with_parent, start_new_session=True
    )


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

    from app.main import create_app
    from app.pipeline.dispatch import CeleryDispatcher
    from app.pipeline.recovery import RecoveryLoop

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper())
    if migrate:
        upgrade_database(settings)
    run_worker = settings.runs_embedded_worker if worker is None else worker

    @asynccontextmanager
    async def background(app: FastAPI) -> AsyncIterator[None]:
        # In the app's lifespan, not after uvicorn.run: uvicorn re-raises SIGTERM/SIGINT once it
        # has shut down, so code after it would not run and the worker would be left behind.
        embedded = EmbeddedWorker(settings) if run_worker else None
        recovery = RecoveryLoop(settings, CeleryDispatcher(app.state.celery)).start()
        try:
            yield
        finally:
            recovery.stop()
            if embedded is not None:
                embedded.stop()

    app = create_app(settings, lifespan=background)
    click.echo(f"histocr on http://{host or settings.host}:{port or settings.port}")
    uvicorn.run(app, host=host or settings.host, port=port or settings.port, log_level="info")


@click.command()
@click.option("--queues", "-Q", default="cpu,llm,gpu", show_default=True, help="Queues to take.")
@click.option("--concurrency", "-c", type=int, default=None, help="Worker processes/threads.")
@click.option(
    "--pool", default="prefork", show_default=True, help="Celery pool (prefork, threads)."
)
@click.option("--loglevel", "-l", default=None, help="Log level (HISTOCR_LOG_LEVEL).")
def worker(queues: str, concurrency: int | None, pool: str, loglevel: str | None) -> None:
    """Run a worker for the given queues (distributed mode: set HISTOCR_BROKER_URL)."""
    from app.pipeline.dispatch import CeleryDispatcher
    from app.pipeline.recovery import RecoveryLoop
    from workers.celery_app import celery_app

    settings = get_settings()
    recovery = RecoveryLoop(settings, CeleryDispatcher(celery_app)).start()
    argv = [
        "worker",
        "--queues",
        queues,
        "--pool",
        pool,
        "--loglevel",
        (loglevel or settings.log_level).upper(),
    ]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    try:
        celery_app.worker_main(argv)
    finally:
        recovery.stop()
