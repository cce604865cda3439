"""Sending work to the workers: Celery in the service, an in-process queue in `histocr process`."""

import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

logger = logging.getLogger(__name__)

STAGE_TASKS = {
    "ocr": "histocr.ocr",
    "correct": "histocr.correct",
    "extract": "histocr.extract",
}
INGEST_TASK = "histocr.ingest"
EVALUATE_TASK = "histocr.evaluate"


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
    """Sends tasks by name through the Celery broker."""

    def __init__(self, celery_app: Any) -> None:
        self.celery_app = celery_app

    def send(self, dispatches: Sequence[Dispatch]) -> None:
        """Publish each task on its queue."""
        for item in dispatches:
            self.celery_app.send_task(
                item.task, args=list(item.args), queue=item.queue, countdown=item.countdown
            )


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
