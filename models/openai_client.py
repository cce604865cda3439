"""Talking to an OpenAI-compatible endpoint: configuration, one POST with retries, preflight.

The layers above (messages, validation of what comes back) live in `models.openai_engine`.
"""

import asyncio
import email.utils
import functools
import json
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from models.base import EngineError, EngineNotAvailable

logger = logging.getLogger(__name__)

STRUCTURED_OUTPUT_MODES = ("json_schema", "json_object+schema", "prompt-only")
IMAGE_FORMATS = ("jpeg", "png")
#: Statuses worth another try: the server is busy, overloaded or briefly broken.
RETRY_STATUSES = frozenset({408, 429})
_MESSAGE_LIMIT = 300


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context per process: loading the CA certificates takes 20-200 ms each time."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class OpenAIConfig:
    """How to reach the endpoint and what to ask it; the API key never shows in repr."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    max_in_flight: int = 256
    timeout_s: float = 120.0
    max_attempts: int = 4
    max_invalid_attempts: int = 2
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    structured_output: str = "json_schema"
    image_max_side: int = 1288
    image_format: str = "jpeg"
    image_quality: int = 90
    temperature: float = 0.0
    max_tokens: int = 4096
    #: Where encoded page images are kept (models.images.cached_encode_image); None: not kept.
    image_cache_dir: str | None = None
    # Header values may be credentials too (e.g. an `api-key` header): keep them out of repr.
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        problems = []
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            problems.append(f"base_url must start with http:// or https:// ({self.endpoint!r})")
        if not self.model:
            problems.append("model is empty")
        if self.structured_output not in STRUCTURED_OUTPUT_MODES:
            problems.append(
                f"structured_output {self.structured_output!r} is not one of "
                f"{', '.join(STRUCTURED_OUTPUT_MODES)}"
            )
        if self.image_format not in IMAGE_FORMATS:
            problems.append(f"image_format {self.image_format!r} is not one of jpeg, png")
        for name in ("max_in_flight", "max_attempts", "max_invalid_attempts", "image_max_side"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.timeout_s <= 0:
            problems.append("timeout_s must be positive")
        if problems:
            raise EngineNotAvailable("openai engine misconfigured: " + "; ".join(problems))
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def endpoint(self) -> str:
        """The base URL without user info, query or fragment: safe to record and show."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))

    def headers(self) -> dict[str, str]:
        """Request headers, the key among them: never log what this returns."""
        headers = {"User-Agent": "histocr", **self.extra_headers}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def redact(self, text: str) -> str:
        """`text` with the API key (and any extra header value) blotted out."""
        for secret in (self.api_key, *self.extra_headers.values()):
            if secret and len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class ChatReply:
    """One HTTP 200 answer: the decoded body (None when it was not JSON) and its cost."""

    data: Any
    latency_s: float
    attempts: int


@dataclass
class Attempts:
    """The requests sent for one page in one call of the engine, against `max_attempts`.

    Every request counts, whatever came back: an error status, a timeout, a broken
    connection, or an answer the policy layer (models.openai_engine) found unusable. So the
    number a caller reports is the number of requests the endpoint was sent.
    """

    limit: int
    sent: int = 0
    #: Of those, answers that came back but could not be used (cut off, not JSON, empty, …).
    unusable: int = 0

    @property
    def left(self) -> int:
        """Requests that may still be sent."""
        return self.limit - self.sent

    def summary(self) -> str:
        """'after N attempts', saying what they were when they were not all of one kind."""
        text = f"after {self.sent} attempt{'s' if self.sent != 1 else ''}"
        answered = self.unusable
        if 0 < answered < self.sent:
            text += f": {answered} answered unusably, {self.sent - answered} not answered"
        return text


@dataclass(frozen=True)
class _Failure:
    message: str
    retry_after_s: float | None = None


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body as sent: compact JSON in UTF-8 (a page image makes it ~100s of KB)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def post_chat(
    client: httpx.AsyncClient,
    config: OpenAIConfig,
    body: Mapping[str, Any],
    uploads: asyncio.Semaphore | None = None,
    payload: bytes | None = None,
    attempts: Attempts | None = None,
) -> ChatReply:
    """POST a chat completion; retry busy, failing and unreachable servers with backoff.

    `uploads` bounds the request bodies being sent at once (see ClientPool.UPLOADS);
    `payload` is `encode_body(body)` when the caller made it already (off the event loop);
    `attempts` is the page's tally when the caller asks more than once (unusable answers),
    so that all its requests together stay within `max_attempts`. Raises EngineError (with
    the requests sent) when the server refuses the request or stays unusable until the
    tally is spent.
    """
    url = f"{config.base_url}/chat/completions"
    if payload is None:
        payload = encode_body(body)
    if attempts is None:
        attempts = Attempts(config.max_attempts)
    failures = 0  # in a row: the backoff grows with them, not with earlier unusable answers
    while True:
        started = time.perf_counter()
        attempts.sent += 1
        outcome = await _post_once(client, config, url, (body, payload, uploads), attempts.sent)
        if isinstance(outcome, ChatReply):
            return outcome
        failures += 1
        if attempts.left <= 0:
            raise EngineError(
                f"{outcome.message} (gave up {attempts.summary()})",
                retryable=True,
                attempts=attempts.sent,
            )
        delay = _delay(config, failures, outcome.retry_after_s)
        logger.warning(
            "openai %s: %s after %.2f s; retrying in %.2f s (attempt %d of %d)",
            config.model,
            outcome.message,
            time.perf_counter() - started,
            delay,
            attempts.sent,
            attempts.limit,
        )
        await asyncio.sleep(delay)


async def _post_once(
    client: httpx.AsyncClient,
    config: OpenAIConfig,
    url: str,
    request: tuple[Mapping[str, Any], bytes, asyncio.Semaphore | None],
    attempt: int,
) -> ChatReply | _Failure:
    body, payload, uploads = request
    started = time.perf_counter()
    try:
        response = await _post_gated(client, url, payload, uploads)
    except httpx.TimeoutException:
        return _Failure(f"no answer from {config.endpoint} within {config.timeout_s:g} s")
    except httpx.UnsupportedProtocol as exc:
        raise EngineError(
            f"cannot use {config.endpoint}: {exc}", retryable=False, attempts=attempt
        ) from None
    except httpx.TransportError as exc:
        return _Failure(f"cannot reach {config.endpoint}: {_transport_message(exc)}")
    latency = time.perf_counter() - started
    status = response.status_code
    if status == 200:
        try:
            data = response.json()
        except ValueError:
            data = None
        return ChatReply(data=data, latency_s=latency, attempts=attempt)
    message = f"HTTP {status} from {config.endpoint}: {server_message(config, response)}"
    if status in RETRY_STATUSES or (status >= 500 and not _rejects_response_format(body, response)):
        return _Failure(message, _retry_after(response))
    raise EngineError(
        _refusal_message(config, status, message, body), retryable=False, attempts=attempt
    )


_CHUNK = 1024 * 1024


async def _post_gated(
    client: httpx.AsyncClient, url: str, payload: bytes, uploads: asyncio.Semaphore | None
) -> httpx.Response:
    """POST `payload`, holding an upload slot from before connecting until the body is sent."""
    headers = {"Content-Type": "application/json", "Content-Length": str(len(payload))}
    if uploads is None:
        return await client.post(url, content=payload, headers=headers)
    await uploads.acquire()
    held = True

    def release() -> None:
        nonlocal held
        if held:
            held = False
            uploads.release()

    async def stream() -> AsyncIterator[bytes]:
        try:
            for start in range(0, len(payload), _CHUNK):
                yield payload[start : start + _CHUNK]
        finally:
            release()

    try:
        return await client.post(url, content=stream(), headers=headers)
    finally:
        release()


def _rejects_response_format(body: Mapping[str, Any], response: httpx.Response) -> bool:
    """A 5xx that names response_format: a request the server cannot take, not a busy server.

    llama-cpp-python's server answers `response_format` type `json_schema` with HTTP 500 and
    a validation error naming `response_format`; asking again would get the same answer.
    """
    return "response_format" in body and "response_format" in response.text


def _delay(config: OpenAIConfig, attempt: int, retry_after_s: float | None) -> float:
    """The server's Retry-After when it gives one, else exponential backoff with full jitter."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), config.backoff_max_s)
    ceiling = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempt - 1))
    return random.uniform(0.0, ceiling)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI) or `Retry-After` (seconds or an HTTP date)."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _refusal_message(
    config: OpenAIConfig, status: int, message: str, body: Mapping[str, Any]
) -> str:
    if status in (401, 403):
        if not config.api_key:
            return f"the endpoint wants an API key and none is configured ({message})"
        return f"the endpoint refused the API key ({message})"
    if status == 404:
        return f"{message} (check the model name {config.model!r} and the base URL)"
    if "response_format" in body and (status in (400, 422) or status >= 500):
        return (
            f"{message} (if the endpoint does not support this response_format, set "
            f"structured_output to one of {', '.join(STRUCTURED_OUTPUT_MODES)})"
        )
    return message


def server_message(config: OpenAIConfig, response: httpx.Response) -> str:
    """The error message a server put in its body (OpenAI, vLLM, llama.cpp, FastAPI style)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    text: Any = None
    if isinstance(data, dict):
        error = data.get("error")
        text = error.get("message") if isinstance(error, dict) else error
        text = text or data.get("message") or data.get("detail")
    if not text:
        text = response.text or response.reason_phrase
    text = config.redact(" ".join(str(text).split()))
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def _transport_message(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (is the server running?)"
        cause = cause.__cause__ or cause.__context__
    return str(exc) or type(exc).__name__


def list_models(config: OpenAIConfig) -> list[str]:
    """The model names the endpoint serves (`GET {base_url}/models`), for a check before a run."""
    url = f"{config.base_url}/models"
    timeout = httpx.Timeout(min(config.timeout_s, 30.0))
    try:
        client = httpx.Client(headers=config.headers(), timeout=timeout, verify=tls_context())
        with client:
            response = client.get(url)
    except httpx.TimeoutException:
        raise EngineNotAvailable(
            f"no answer from {config.endpoint} within {timeout.read:g} s"
        ) from None
    except httpx.TransportError as exc:
        raise EngineNotAvailable(
            f"cannot reach {config.endpoint}: {_transport_message(exc)}"
        ) from None
    if response.status_code != 200:
        message = f"HTTP {response.status_code} from {url}: {server_message(config, response)}"
        if response.status_code in (401, 403):
            raise EngineNotAvailable(_refusal_message(config, response.status_code, message, {}))
        if response.status_code == 404:
            message += " (the base URL usually ends in /v1)"
        raise EngineNotAvailable(message)
    try:
        entries = response.json()["data"]
        return [str(entry["id"]) for entry in entries]
    except (ValueError, KeyError, TypeError):
        raise EngineNotAvailable(f"{url} did not answer with an OpenAI-style model list") from None


def check_model(config: OpenAIConfig) -> list[str]:
    """Fail clearly unless the endpoint serves the configured model; return what it serves."""
    served = list_models(config)
    # Gemini lists "models/<name>", Ollama "<name>:latest"; both answer to the short name.
    aliases = {config.model, f"models/{config.model}", f"{config.model}:latest"}
    if not aliases & set(served):
        shown = ", ".join(served[:20]) + (
            f" and {len(served) - 20} more" if len(served) > 20 else ""
        )
        raise EngineNotAvailable(
            f"model {config.model!r} is not served at {config.endpoint} (served: {shown or 'none'})"
        )
    return served
