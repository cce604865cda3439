"""Sending work to the workers: Celery in the service, an in-process queue in `histocr process`."""

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

logger = logging.getLogger(__name__)

STAGE_TASKS = {
    "ocr": "histocr.ocr",
    "correct": "histocr.correct",
    "extract": "histocr.extract",
}
INGEST_TASK = "histocr.ingest"
EVALUATE_TASK = "histocr.evaluate"
#: Fine-tune a project's recogniser (workers/tasks/train.py).
TRAIN_TASK = "histocr.train"

#: How long one try to publish may wait on an unresponsive broker's socket (connect or answer).
#: kombu's default is no limit: a broker that accepted the connection and then said nothing held
#: a request (and its client) for as long as the client waited.
PUBLISH_SOCKET_TIMEOUT_S = 1.0
#: One retry, at once: a pooled connection the broker dropped (a restart) fails once and the
#: retry opens a fresh one. Two tries of at most a second each: a publish gives up within about
#: two seconds, and the task waits in the outbox for the recovery sweep (app/pipeline/outbox.py).
PUBLISH_RETRY_POLICY: Mapping[str, float] = MappingProxyType(
    {"max_retries": 1, "interval_start": 0.0, "interval_step": 0.2, "interval_max": 0.2}
)


@dataclass(frozen=True)
class Dispatch:
    """One task to send: its registered name, its arguments (IDs only) and its queue."""

    task: str
    args: tuple[Any, ...]
    queue: str = "cpu"
    countdown: float | None = None


class Dispatcher(Protocol):
    """Anything that can deliver dispatches to a worker."""

    def send(self, dispatches: Sequence[Dispatch]) -> None:
        """Deliver the tasks; called only after the rows they refer to are committed."""
        ...


class CeleryDispatcher:
    """Sends tasks by name through the Celery broker, giving up quickly when it is unreachable.

    Publishes on connections of its own, opened with socket timeouts, so that the bound applies
    to sending only: the app it is given may be a worker's, whose consuming connection keeps
    kombu's defaults.
    """

    def __init__(self, celery_app: Any) -> None:
        self.celery_app = celery_app
        self._connections: Any = None
        self._lock = threading.Lock()

    def send(self, dispatches: Sequence[Dispatch]) -> None:
        """Publish each task on its queue; raises (within seconds) when the broker is down."""
        if not dispatches:
            return
        pool = self._connection_pool()
        # A bounded wait for a free connection too: 40 request threads share the pool.
        with pool.acquire(block=True, timeout=2 * PUBLISH_SOCKET_TIMEOUT_S) as connection:
            for item in dispatches:
                self.celery_app.send_task(
                    item.task,
                    args=list(item.args),
                    queue=item.queue,
                    countdown=item.countdown,
                    connection=connection,
                    retry_policy=PUBLISH_RETRY_POLICY,
                )

    def _connection_pool(self) -> Any:
        with self._lock:
            if self._connections is None:
                bounded = {
                    "socket_timeout": PUBLISH_SOCKET_TIMEOUT_S,
                    "socket_connect_timeout": PUBLISH_SOCKET_TIMEOUT_S,
                }
                connection = self.celery_app.connection_for_write(
                    connect_timeout=PUBLISH_SOCKET_TIMEOUT_S, transport_options=bounded
                )
                self._connections = connection.Pool(limit=self.celery_app.conf.broker_pool_limit)
            return self._connections


class InlineDispatcher:
    """Runs tasks in this process on a small thread pool, until no work is left."""

    def __init__(self, handlers: dict[str, Callable[..., None]], concurrency: int = 2) -> None:
        self.handlers = handlers
        self.concurrency = concurrency
        self.pending: deque[Dispatch] = deque()

    def send(self, dispatches: Sequence[Dispatch]) -> None:
        """Queue the tasks; `drain` runs them."""
        self.pending.extend(dispatches)

    def drain(self) -> None:
        """Run queued tasks (and those they queue) until none are left."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            running: set[Future[None]] = set()
            while self.pending or running:
                while self.pending and len(running) < self.concurrency:
                    item = self.pending.popleft()
                    running.add(pool.submit(self.handlers[item.task], *item.args))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
