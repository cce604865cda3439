"""The `openai` engine: any OpenAI-compatible chat-completions endpoint with image input.

Layers, as olmOCR has them: one POST with transport retries (`models.openai_client`); a
policy that judges each answer (cut off, no content, not JSON, not matching the schema, a
correction that lost most of its text) and asks again a bounded number of times before
failing visibly; a bound on the requests in flight (the slots of `ClientPool`, which work as
an asyncio semaphore that also picks the HTTP client), shared by every batch of the process on
one event loop thread (`models.engine_loop`).

Counting: each page has one tally of requests (`Attempts`) over both retry layers. It sends
at most `max_attempts` requests in all, whatever each failure was (HTTP 5xx/429, timeout,
connection, unusable answer), and stops sooner after `max_invalid_attempts` unusable answers.
The `attempts` a result or an error carries is the number of requests sent for the page (0
when none could be: an unreadable image), and an error's message says the same number.
"""

import asyncio
import concurrent.futures
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from PIL import Image

from models.base import EngineError, EngineRequest, EngineResult
from models.chat import chat_messages
from models.engine_loop import ENGINE_LOOP
from models.images import cached_encode_image, data_url
from models.openai_client import (
    Attempts,
    ChatReply,
    OpenAIConfig,
    check_model,
    encode_body,
    list_models,
    post_chat,
)
from models.openai_pool import ClientPool, SharedPools
from models.rewrite import rewrite_problem

__all__ = ["OpenAIConfig", "OpenAIEngine", "check_model", "list_models", "openai_config"]

logger = logging.getLogger(__name__)

#: How requests are laid out in messages; part of what a run records, like a prompt version.
MESSAGE_FORMAT = "openai-chat-v1"
SCHEMA_INSTRUCTION = "Answer with JSON only, matching this JSON schema:"
#: Recorded with every result: they decide the output.
RECORDED = (
    "model",
    "structured_output",
    "image_max_side",
    "image_format",
    "image_quality",
    "temperature",
    "max_tokens",
    "max_invalid_attempts",
)
#: Machine-local: where the endpoint is and how hard to push it; never recorded.
LOCAL = (
    "base_url",
    "api_key",
    "extra_headers",
    "max_in_flight",
    "timeout_s",
    "max_attempts",
    "backoff_base_s",
    "backoff_max_s",
    "image_cache_dir",
)
#: The process's client pools, on ENGINE_LOOP.
SHARED_POOLS = SharedPools()
#: One request body is built at a time in a process: with every task thread building at once,
#: the loop thread gets the GIL a fraction of the time and the first requests leave late.
_BUILDING = threading.Lock()
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL | re.IGNORECASE)


def openai_config(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> OpenAIConfig:
    """A config from a run's recorded parameters and the machine's environment.

    The parameters decide the output (the environment may give defaults for them, e.g. the
    model a machine serves); the endpoint, the key and the load settings come only from the
    environment, so a key that slipped into a run's parameters is never used.
    """
    values = {k: environment[k] for k in (*LOCAL, *RECORDED) if environment.get(k) is not None}
    values.update({k: parameters[k] for k in RECORDED if parameters.get(k) is not None})
    return OpenAIConfig(**values)


class OpenAIEngine:
    """Sends each request as one chat completion; many at once, bounded by max_in_flight."""

    name = "openai"

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"OpenAIEngine({self.config!r})"

    def describe(self) -> dict[str, Any]:
        """The model and the parameters that decide the output; no key, no headers."""
        described = {name: getattr(self.config, name) for name in RECORDED}
        return {**described, "endpoint": self.config.endpoint, "message_format": MESSAGE_FORMAT}

    def check(self) -> None:
        """Fail clearly (EngineNotAvailable) unless the endpoint answers and serves the model."""
        check_model(self.config)

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """Run all requests concurrently on the process's engine loop; results in request order.

        Page images are encoded here, in the calling thread, one after the other (and one at a
        time in the process), and each request leaves as soon as its body is ready: the first
        is on its way after one encode, and the loop thread does nothing but HTTP. Batches of
        several threads (a threads pool) share the process's client pools, so max_in_flight
        bounds the process.
        """
        if not requests:
            return []
        pool = ENGINE_LOOP.run(SHARED_POOLS.get(self.config))
        futures: list[concurrent.futures.Future[EngineResult | EngineError]] = []
        for request in requests:
            started = time.perf_counter()
            try:
                with _BUILDING:
                    body = self._body(request)
                    prepared = _Prepared(body, encode_body(body))
            except EngineError as exc:
                futures.append(_done(exc))
                continue
            except Exception as exc:  # one page's bug must not take the batch's results along
                logger.exception("openai %s: cannot build a request", self.config.model)
                futures.append(_done(_internal_error(exc, attempts=0)))
                continue
            futures.append(ENGINE_LOOP.submit(self._guarded(pool, request, prepared, started)))
        return [future.result() for future in futures]

    async def arun_batch(
        self, requests: Sequence[EngineRequest]
    ) -> list[EngineResult | EngineError]:
        """The async form of run_batch, for callers that run an event loop of their own.

        Uses a client pool of its own, closed at the end; images are encoded in a thread.
        """
        if not requests:
            return []

        async def one(pool: ClientPool, request: EngineRequest) -> EngineResult | EngineError:
            started = time.perf_counter()
            try:
                body = await asyncio.to_thread(self._body, request)
            except EngineError as exc:
                return exc
            return await self._guarded(pool, request, _Prepared(body, None), started)

        async with ClientPool(
            self.config, slots=min(len(requests), self.config.max_in_flight)
        ) as pool:
            return list(await asyncio.gather(*(one(pool, r) for r in requests)))

    async def _guarded(
        self, pool: ClientPool, request: EngineRequest, prepared: "_Prepared", started: float
    ) -> EngineResult | EngineError:
        async with pool.slot() as client:
            try:
                return await self._answer(client, pool.uploads, request, prepared, started)
            except EngineError as exc:
                return exc
            except Exception as exc:  # one page's bug must not take the batch's results along
                logger.exception("openai %s: request failed unexpectedly", self.config.model)
                return _internal_error(exc)

    async def _answer(
        self,
        client: httpx.AsyncClient,
        uploads: asyncio.Semaphore,
        request: EngineRequest,
        prepared: "_Prepared",
        started: float,
    ) -> EngineResult:
        """Ask until an answer passes, within the page's one tally (see the module's doc);
        after max_invalid_attempts unusable answers the same question rarely does better."""
        validator = _validator(request.json_schema)
        attempts = Attempts(self.config.max_attempts)
        usage = _Usage()
        while True:
            reply = await post_chat(
                client, self.config, prepared.body, uploads, prepared.payload, attempts
            )
            usage.add(reply.data)
            text, problem = _judge(reply, validator, request.text)
            if not problem:
                return _result(self.config, reply, text, usage, attempts.sent, started)
            attempts.unusable += 1
            if attempts.unusable >= self.config.max_invalid_attempts or attempts.left <= 0:
                raise EngineError(
                    f"{problem} {attempts.summary()}", retryable=False, attempts=attempts.sent
                )
            logger.warning(
                "openai %s: unusable answer (%s); attempt %d",
                self.config.model,
                problem,
                attempts.sent,
            )

    def _body(self, request: EngineRequest) -> dict[str, Any]:
        """The chat-completions request body (the image encoded once, reused on retries)."""
        mode = self.config.structured_output
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": build_messages(
                request, self._image_url(request), schema_in_prompt=mode == "prompt-only"
            ),
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if request.json_schema is not None and mode != "prompt-only":
            body["response_format"] = response_format(mode, request.json_schema)
        return body

    def _image_url(self, request: EngineRequest) -> str | None:
        if request.image_path is None:
            return None
        try:
            cache = self.config.image_cache_dir
            image = cached_encode_image(
                request.image_path,
                max_side=self.config.image_max_side,
                fmt=self.config.image_format,
                quality=self.config.image_quality,
                cache_dir=Path(cache) if cache else None,
            )
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise EngineError(
                f"cannot read the page image {request.image_path.name}: {exc}",
                retryable=False,
                attempts=0,  # nothing was sent
            ) from None
        return data_url(image)


def build_messages(
    request: EngineRequest, image_url: str | None, *, schema_in_prompt: bool = False
) -> list[dict[str, Any]]:
    """System prompt, then one user message: prompt, page image, and the delimited text."""
    if schema_in_prompt and request.json_schema is not None:
        schema = json.dumps(request.json_schema, ensure_ascii=False)
        prompt = f"{request.prompt or ''}\n\n{SCHEMA_INSTRUCTION}\n{schema}".strip()
        request = replace(request, prompt=prompt)
    image_part = (
        None if image_url is None else {"type": "image_url", "image_url": {"url": image_url}}
    )
    return chat_messages(request, image_part=image_part)


def response_format(mode: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """The `response_format` for a structured-output mode (the endpoint's dialect)."""
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "records", "schema": dict(schema), "strict": True},
        }
    if mode == "json_object+schema":  # llama.cpp's server
        return {"type": "json_object", "schema": dict(schema)}
    raise ValueError(f"no response_format for structured output mode {mode!r}")


@dataclass(frozen=True)
class _Prepared:
    """A request body, and its JSON bytes when made ahead (in the task's thread)."""

    body: dict[str, Any]
    payload: bytes | None


def _done(outcome: EngineError) -> "concurrent.futures.Future[EngineResult | EngineError]":
    future: concurrent.futures.Future[EngineResult | EngineError] = concurrent.futures.Future()
    future.set_result(outcome)
    return future


def _internal_error(exc: Exception, attempts: int = 1) -> EngineError:
    message = f"internal error: {type(exc).__name__}: {exc}"
    return EngineError(message, retryable=False, attempts=attempts)


class _Usage:
    """Tokens over all answered attempts: a retried page costs what all its tries cost."""

    def __init__(self) -> None:
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None

    def add(self, data: Any) -> None:
        usage = data.get("usage") if isinstance(data, dict) else None
        if not isinstance(usage, dict):
            return
        if isinstance(usage.get("prompt_tokens"), int):
            self.tokens_in = (self.tokens_in or 0) + usage["prompt_tokens"]
        if isinstance(usage.get("completion_tokens"), int):
            self.tokens_out = (self.tokens_out or 0) + usage["completion_tokens"]


def _validator(schema: Mapping[str, Any] | None) -> jsonschema.protocols.Validator | None:
    if schema is None:
        return None
    return _compiled_validator(json.dumps(schema, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _compiled_validator(schema_json: str) -> jsonschema.protocols.Validator:
    """Checking a schema takes ~4 ms; every page of a run has the same one."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        message = f"the request's JSON schema is invalid: {exc.message}"
        raise EngineError(message, retryable=False, attempts=0) from None
    return cls(schema)


def _judge(
    reply: ChatReply, validator: jsonschema.protocols.Validator | None, source: str | None
) -> tuple[str, str]:
    """(text, problem): problem is empty when the answer is usable.

    `source` is the text the request gave; without a schema, the answer is that text
    rewritten (a correction) and must keep most of it (models.rewrite). An image alone may
    rightly get an empty answer: a blank page.
    """
    choice = _first_choice(reply.data)
    if choice is None:
        return "", "malformed response: no choices[0].message"
    message = choice["message"]
    content = message.get("content")
    finish_reason = choice.get("finish_reason")
    if finish_reason != "stop":
        return "", f"output cut off: finish_reason {finish_reason!r}"
    if message.get("refusal"):
        return "", f"the model refused: {str(message['refusal'])[:200]}"
    if not isinstance(content, str):
        return "", "the answer has no content (message.content is missing or null)"
    if validator is None:
        return content, rewrite_problem(source or "", content)
    fenced = _FENCE.match(content)
    answer = fenced.group(1) if fenced else content.strip()
    try:
        data = json.loads(answer)
    except json.JSONDecodeError as exc:
        return "", f"output is not valid JSON ({exc})"
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return "", f"output does not match the schema at {where}: {error.message[:200]}"
    return answer, ""


def _first_choice(data: Any) -> dict[str, Any] | None:
    if not isinstance(data, dict):
        return None
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0] if isinstance(choices[0].get("message"), dict) else None


def _result(
    config: OpenAIConfig,
    reply: ChatReply,
    text: str,
    usage: _Usage,
    attempts: int,
    started: float,
) -> EngineResult:
    data = reply.data
    return EngineResult(
        text=text,
        model=str(data.get("model") or config.model),
        latency_s=time.perf_counter() - started,
        finish_reason="stop",
        tokens_in=usage.tokens_in,
        tokens_out=usage.tokens_out,
        attempts=attempts,
        raw=data,
    )
