"""Connections to OpenAI-compatible endpoints: bounded client pools, shared by a process.

`ClientPool` hands out at most max_in_flight slots (each with an HTTP client) and bounds the
request bodies being sent at once; `SharedPools` keeps one long-lived pool per endpoint, key
and load settings on the process's engine loop (`models.engine_loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import httpx

from models.openai_client import OpenAIConfig, tls_context


class ClientPool:
    """HTTP clients for one batch, handing out at most `slots` (max_in_flight) slots at once.

    httpx's connection pool scans all its connections on every request and response, which
    costs CPU quadratic in the connections (about 13 ms a request with 300 in flight): so
    the slots are spread over small clients of SHARD_SIZE connections each (about 1.5 ms).
    """

    SHARD_SIZE = 8
    #: Request bodies sent at once. Hundreds of page images uploaded together all arrive late
    #: (they share the link and the server's reading); a few at a time arrive in order, so the
    #: server starts on the first ones at once while the rest follow.
    UPLOADS = 4

    def __init__(self, config: OpenAIConfig, *, slots: int | None = None) -> None:
        slots = slots or config.max_in_flight
        count = -(-slots // self.SHARD_SIZE)
        sizes = [len(range(i, slots, count)) for i in range(count)]
        self._clients = [_async_client(config, size, tls_context()) for size in sizes]
        self._slots = slots
        self.uploads = asyncio.Semaphore(self.UPLOADS)
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        # Interleaved, so that a few requests in flight still spread over the clients.
        for slot in range(slots):
            self._free.put_nowait(self._clients[slot % count])

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[httpx.AsyncClient]:
        """Wait for a free slot (the bound on requests in flight); yield its client."""
        client = await self._free.get()
        try:
            yield client
        finally:
            self._free.put_nowait(client)

    @property
    def idle(self) -> bool:
        """No request in flight."""
        return self._free.qsize() == self._slots

    async def aclose(self) -> None:
        """Close every client (and its kept-alive connections)."""
        await asyncio.gather(*(client.aclose() for client in self._clients))

    async def __aenter__(self) -> ClientPool:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


class SharedPools:
    """Long-lived client pools, one per endpoint, key and load settings, on one event loop.

    The engines of a process share them (on `models.engine_loop.ENGINE_LOOP`): max_in_flight
    bounds the whole process, not each batch, and connections stay open between batches.
    """

    LIMIT = 16

    def __init__(self) -> None:
        self._pools: OrderedDict[tuple[Any, ...], ClientPool] = OrderedDict()
        self._owner: asyncio.AbstractEventLoop | None = None

    async def get(self, config: OpenAIConfig) -> ClientPool:
        """The pool for `config`; call on the loop the pools belong to."""
        loop = asyncio.get_running_loop()
        if loop is not self._owner:  # a new loop (e.g. after a fork): the old pools are dead
            self._pools.clear()
            self._owner = loop
        key = (
            config.base_url,
            config.api_key,
            tuple(sorted(config.extra_headers.items())),
            config.max_in_flight,
            config.timeout_s,
        )
        pool = self._pools.pop(key, None) or ClientPool(config)
        self._pools[key] = pool
        if len(self._pools) > self.LIMIT:
            for old_key, old in list(self._pools.items())[: -self.LIMIT]:
                if old.idle:  # the least recently used pools, unless still busy
                    del self._pools[old_key]
                    await old.aclose()
        return pool


def _async_client(config: OpenAIConfig, connections: int, tls: ssl.SSLContext) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        headers=config.headers(),
        timeout=httpx.Timeout(config.timeout_s),
        limits=limits,
        verify=tls,
    )
