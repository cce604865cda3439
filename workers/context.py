"""What a task body needs: settings, a database session, the file store and a dispatcher."""

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings, get_settings
from app.db.session import session_scope
from app.pipeline.dispatch import CeleryDispatcher, Dispatcher
from app.pipeline.engines import engine_environment
from app.storage import LocalStorage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskContext:
    """The environment task bodies run in (Celery worker or `histocr process`)."""

    settings: Settings
    dispatcher: Dispatcher
    storage: LocalStorage

    def engine_environment(self, engine: str) -> dict[str, Any]:
        """This machine's settings for an engine (paths, limits, keys): never recorded."""
        return engine_environment(engine, self.settings)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success."""
        with session_scope(self.settings.resolved_database_url) as session:
            yield session


def make_context(settings: Settings, dispatcher: Dispatcher) -> TaskContext:
    """A context over the given settings."""
    return TaskContext(
        settings=settings,
        dispatcher=dispatcher,
        storage=LocalStorage(settings.resolved_storage_dir),
    )


@lru_cache(maxsize=1)
def celery_context() -> TaskContext:
    """The context of a Celery worker process, built from the environment once."""
    from workers.celery_app import celery_app

    return make_context(get_settings(), CeleryDispatcher(celery_app))


#: Beats per lease: a lease survives this many beats less one failing in a row (a database
#: busy for a moment), and a dead worker's work is free again one lease after its last beat.
BEATS_PER_LEASE = 4


def beat_interval_s(settings: Settings) -> float:
    """How often a task renews the lease of what it holds (HISTOCR_STAGE_LEASE_S / 4)."""
    return settings.stage_lease_s / BEATS_PER_LEASE


@contextmanager
def heartbeat(beat: Callable[[], None], interval_s: float) -> Iterator[None]:
    """Call `beat` every `interval_s` seconds while the block runs (a lease for long work).

    The beats come from a thread of their own, so they go on while the task's thread waits on
    an endpoint, a subprocess or a lock; they stop when the block ends, and with the process.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                beat()
            except Exception:  # a missed beat only shortens the lease; the work goes on
                logger.exception("heartbeat failed")

    thread = threading.Thread(target=loop, name="histocr-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
