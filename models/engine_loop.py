"""One asyncio event loop per process, in a thread of its own, for engines that talk HTTP.

A worker process runs several tasks at once (threads of a Celery pool). Each task hands its
requests to this loop, so that they all share one bound on requests in flight and one set of
kept-alive connections per endpoint, and the next task's requests join the queue while the
previous task's slowest answers are still out: the endpoint never waits for the workers.

The loop starts on first use. A forked child (a prefork pool process) gets a loop of its own
on first use there: the parent's thread does not exist in the child.
"""

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    """A daemon thread running an event loop; coroutines are submitted from other threads."""

    def __init__(self, name: str = "histocr-engine-loop") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first use."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                threading.Thread(target=serve, name=self.name, daemon=True).start()
                ready.wait()
                self._loop = loop
            return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> "concurrent.futures.Future[T]":
        """Schedule `coroutine` on the loop; its result arrives in the returned future."""
        loop = self.loop()
        if _running_loop() is loop:
            coroutine.close()
            raise RuntimeError("EngineLoop.submit would wait on its own loop (deadlock)")
        return asyncio.run_coroutine_threadsafe(coroutine, loop)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and wait for its result."""
        return self.submit(coroutine).result()

    def _forget_after_fork(self) -> None:
        # The child has the parent's loop object but not its thread: start afresh on first use.
        self._lock = threading.Lock()
        self._loop = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: The process's loop, shared by every engine instance.
ENGINE_LOOP = EngineLoop()
os.register_at_fork(after_in_child=ENGINE_LOOP._forget_after_fork)
