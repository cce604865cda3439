"""A small in-process rate limiter (per key, sliding window) for logins and token use.

Each web process counts on its own: with N processes a client gets at most N times the limit,
which is enough to stop password guessing and runaway scripts without a shared store.
"""

import threading
import time
from collections import deque


class RateLimiter:
    """At most `limit` events per `window_s` seconds for each key."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window_s:
            events.popleft()
        return events

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False (not counted) when the limit is reached."""
        now = time.monotonic()
        with self._lock:
            if len(self._events) > 50_000:
                self._events.clear()
            events = self._recent(key, now)
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def blocked(self, key: str) -> int:
        """Seconds until `key` may try again (0: now), without counting anything."""
        now = time.monotonic()
        with self._lock:
            events = self._recent(key, now)
            if len(events) < self.limit:
                return 0
            return max(1, int(events[0] + self.window_s - now) + 1)

    def reset(self, key: str) -> None:
        """Forget `key`'s events (a successful login clears its failures)."""
        with self._lock:
            self._events.pop(key, None)
