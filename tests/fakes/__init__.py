"""Local stand-ins for services tests cannot reach, speaking their real wire protocols."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes.openai_server import FakeOpenAIServer, Reply

__all__ = ["FakeOpenAIServer", "Reply", "fake_openai", "fake_openai_servers"]


def fake_openai_servers() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """A factory of started fake servers; on exit stops them and fails on any bad request.

    Pass `allow_violations=True` to a server a test sends bad requests to on purpose.
    """
    started: list[tuple[FakeOpenAIServer, bool]] = []

    def start(*, allow_violations: bool = False, **options: Any) -> FakeOpenAIServer:
        server = FakeOpenAIServer(**options).start()
        started.append((server, allow_violations))
        return server

    try:
        yield start
    finally:
        for server, _ in started:
            server.stop()
    violations = [v for server, allowed in started if not allowed for v in server.violations]
    if violations:
        pytest.fail("the fake OpenAI server got invalid requests:\n" + "\n".join(violations))


@pytest.fixture
def fake_openai() -> Iterator[Callable[..., FakeOpenAIServer]]:
    """`fake_openai(model=..., api_key=..., responder=..., latency_s=..., capacity=...)`."""
    yield from fake_openai_servers()
