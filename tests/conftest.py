"""Shared fixtures: real SQLite and PostgreSQL databases, Redis, Celery workers, the app."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
import redis
from fastapi.testclient import TestClient

from app.cli.serve import upgrade_database
from app.config import Settings, get_settings
from app.main import create_app
from tests.fakes import fake_openai  # noqa: F401  (a fixture for every test module)

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = Path(os.environ.get("HISTOCR_BENCHMARK_DIR", ROOT.parent / "shared" / "benchmark"))
PG_ADMIN_URL = os.environ.get("HISTOCR_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("HISTOCR_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

#: Fixtures that start a worker, a server, a browser or load a model: their tests are `e2e`,
#: left out of `make test-fast` (modules made only of such tests also say so themselves).
E2E_FIXTURES = frozenset({"start_worker", "llama", "llama_server", "tiny_model", "browser"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses an end-to-end fixture as `e2e`."""
    for item in items:
        if E2E_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


def benchmark_file(*parts: str) -> Path:
    """A file of the shared benchmark (read-only); fails loudly when it is missing."""
    path = BENCHMARK.joinpath(*parts)
    assert path.is_file(), f"benchmark file missing: {path} (set HISTOCR_BENCHMARK_DIR)"
    return path


@pytest.fixture(autouse=True)
def _fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment variables that reproduce `settings` in a child process."""
    env = {
        "HISTOCR_DATA_DIR": str(settings.data_dir),
        "HISTOCR_DATABASE_URL": settings.resolved_database_url,
        "HISTOCR_BROKER_URL": settings.broker_url,
        "HISTOCR_STAGE_LEASE_S": str(settings.stage_lease_s),
        "HISTOCR_RECOVERY_INTERVAL_S": str(settings.recovery_interval_s),
        "HISTOCR_RENDER_DPI": str(settings.render_dpi),
    }
    return {k: v for k, v in env.items() if v}


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated once per session, copied by every test that needs one: a
    copy takes milliseconds, a migration about 0.1 s (tests/app/test_migrations.py runs them)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("sqlite-template"))
    upgrade_database(settings)
    path = settings.data_dir / "histocr.db"
    # Fold the write-ahead log into the file, so that the file alone is the whole database.
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA journal_mode=DELETE")
    return path


@pytest.fixture
def sqlite_settings(tmp_path: Path, sqlite_template: Path) -> Settings:
    """Embedded mode: SQLite and the filesystem broker under a temp folder, migrated."""
    settings = Settings(data_dir=tmp_path / "var")
    settings.data_dir.mkdir(parents=True)
    shutil.copyfile(sqlite_template, settings.data_dir / "histocr.db")
    return settings


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    name = f"histocr_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        from app.db.session import get_engine

        get_engine(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}").dispose()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    """A Redis database emptied for the test."""
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    return REDIS_URL


@pytest.fixture
def postgres_settings(tmp_path: Path, postgres_url: str, redis_url: str) -> Settings:
    """Distributed mode: PostgreSQL and Redis, migrated.

    Migrated per test: a copy of a migrated template (CREATE DATABASE … TEMPLATE) saves about
    0.3 s a test, no more than making the template costs while so few tests use PostgreSQL.
    """
    settings = Settings(data_dir=tmp_path / "var", database_url=postgres_url, broker_url=redis_url)
    upgrade_database(settings)
    return settings


#: One prefork worker for all queues, killable as one process group (the recovery test's crash).
ONE_POOL = ("--pool", "prefork", "--concurrency", "2")


class WorkerProcess:
    """A real `histocr worker` in a child process.

    `args` () gives the production layout: a worker per queue, as child processes.
    """

    def __init__(
        self,
        settings: Settings,
        log: Path,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = ONE_POOL,
    ):
        self.log = log
        # The default layout is three Celery workers (cpu, llm, gpu); each says "ready.".
        self.workers = 1 if "--pool" in args or "--queues" in args else 3
        env = {**os.environ, **settings_env(settings), **(extra_env or {})}
        self.handle = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until Celery says the worker is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log.read_bytes().count(b"ready.") >= self.workers:
                return
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        raise AssertionError(
            "worker did not start:\n" + self.log.read_text(errors="replace")[-3000:]
        )

    def assert_alive(self) -> None:
        """Fail with the worker's log if it has exited."""
        if self.process.poll() is not None:
            raise AssertionError(
                f"worker exited with {self.process.returncode}:\n"
                + self.log.read_text(errors="replace")[-3000:]
            )

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a crash, not a shutdown)."""
        os.killpg(self.process.pid, 9)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the worker (warm shutdown, then kill)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self.handle.close()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    """Start real workers on given settings; all are stopped after the test."""
    workers: list[WorkerProcess] = []

    def start(
        settings: Settings, args: tuple[str, ...] = ONE_POOL, **extra_env: str
    ) -> WorkerProcess:
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = WorkerProcess(settings, log, extra_env, args)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def client_for() -> Iterator[object]:
    """A TestClient over the real app for given settings."""
    clients: list[TestClient] = []

    def make(settings: Settings) -> TestClient:
        # A browser or script on the server's own machine, as `make run` serves it: with no
        # user yet, the app runs in single-user mode for it (tests/app/test_auth.py covers
        # the rest).
        client = TestClient(
            create_app(settings), base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def copy_benchmark(tmp_path: Path, *parts: str) -> Path:
    """Copy a benchmark file into the test's folder (the benchmark stays untouched)."""
    source = benchmark_file(*parts)
    target = tmp_path / source.name
    shutil.copyfile(source, target)
    return target


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-VL-style model with a locally trained tokenizer, built once."""
    from tests.tiny_vlm import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("tiny-qwen2-vl"), benchmark_dir=BENCHMARK)


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Debian's chromium and chromium-driver, which `make test` installs (no browser download).
    for program in (CHROMIUM, CHROMEDRIVER):
        assert Path(program).exists(), f"{program} is missing: run make test (it installs it)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
