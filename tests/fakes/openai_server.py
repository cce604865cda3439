"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

Real HTTP on 127.0.0.1 (uvicorn + Starlette, asyncio, in a background thread), speaking the
wire format hosted and local endpoints speak. It validates every request the way a strict
server would and records each violation, so a test can assert that none happened. Answers are
scripted per test: a queue of replies, then a responder callable. A capacity mode (fixed
latency, at most C requests served at once, the rest queue in arrival order) stands in for a
vLLM server in throughput benchmarks; a request whose client hangs up keeps its booked slot.

Run standalone for benchmarks in other processes:
    python -m tests.fakes.openai_server --port 8011 --latency 1.0 --capacity 64
"""

import argparse
import asyncio
import base64
import binascii
import heapq
import io
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import jsonschema
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROLES = {"system", "user", "assistant"}
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|webp|gif);base64,(.*)$", re.DOTALL)
_SCHEMA_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "jpg": "JPEG", "webp": "WEBP", "gif": "GIF"}
TOKENS_PER_IMAGE = 256


@dataclass
class Reply:
    """One scripted answer to a chat-completions request."""

    content: str | None = "ok"
    status: int = 200
    finish_reason: str = "stop"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    error: str = "scripted error"
    raw_body: str | None = None


def ok(content: str, *, delay_s: float = 0.0) -> Reply:
    """A correct, complete answer."""
    return Reply(content=content, delay_s=delay_s)


def rate_limited(retry_after: str | None = "1") -> Reply:
    """HTTP 429, with a Retry-After header unless None."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=429, headers=headers, error="Rate limit reached, retry later")


def server_error(status: int = 500, message: str = "the model crashed") -> Reply:
    """A 5xx answer."""
    return Reply(status=status, error=message)


def slow(delay_s: float, content: str = "too late") -> Reply:
    """A correct answer that takes `delay_s` (ends early when the client hangs up)."""
    return Reply(content=content, delay_s=delay_s)


def cut_off(content: str = "Mueller, Peter, Bae") -> Reply:
    """An answer cut off by the token limit."""
    return Reply(content=content, finish_reason="length")


def invalid_json(content: str = '{"records": [{"surname": "Mueller",') -> Reply:
    """A complete answer that is not JSON."""
    return Reply(content=content)


def empty_answer(*, null: bool = False) -> Reply:
    """HTTP 200, finish_reason "stop", and nothing in it: content "" (or null)."""
    return Reply(content=None if null else "")


def short_answer(text: str, share: float = 0.2) -> Reply:
    """A complete answer with only the first `share` of `text` (a page cut to its top lines)."""
    return Reply(content=text[: int(len(text) * share)])


def html_answer() -> Reply:
    """HTTP 200 with an HTML page instead of JSON (a proxy's login or error page)."""
    page = "<html><body><h1>Gateway</h1><p>Please sign in.</p></body></html>"
    return Reply(raw_body=page, headers={"Content-Type": "text/html"})


Responder = Callable[[dict[str, Any]], Reply | str]


def default_responder(body: dict[str, Any]) -> Reply:
    """A fixed transcription, or an empty record list when structured output was asked for."""
    if "response_format" in body:
        return Reply(content='{"records": []}')
    return Reply(content="Mueller, Peter Joseph, Baecker, Hochstrasse 12.")


@dataclass
class Stats:
    """What the server saw; counters are only written on the server's event loop."""

    requests: int = 0
    served: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    serving: int = 0
    max_serving: int = 0
    unauthorized: int = 0
    disconnects: int = 0
    images: int = 0
    tokens_in: int = 0
    tokens_out: int = 0


class FakeOpenAIServer:
    """The server; `start()` it (or use it as a context manager), then point a client at it."""

    def __init__(
        self,
        *,
        model: str = "fake-vlm",
        api_key: str | None = None,
        responder: Responder = default_responder,
        latency_s: float = 0.0,
        capacity: int | None = None,
        decode_images: bool = True,
    ) -> None:
        self.model = model
        self.api_key = api_key
        self.responder = responder
        self.latency_s = latency_s
        self.decode_images = decode_images
        self.script: deque[Reply | str] = deque()
        self.received: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.stats = Stats()
        self.capacity = capacity
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def capacity(self) -> int | None:
        """At most this many requests are served at once (None: no limit)."""
        return self._capacity_value

    @capacity.setter
    def capacity(self, value: int | None) -> None:
        self._capacity_value = value
        # When each of the C slots is free next, and when the requests being served end.
        self._slot_free_at = [0.0] * (value or 0)
        self._busy_until: list[float] = []

    @property
    def base_url(self) -> str:
        """What a client's base_url should be."""
        return f"http://127.0.0.1:{self.port}/v1"

    def queue(self, *replies: Reply | str) -> None:
        """Answer the next requests with these, in order, before the responder takes over."""
        self.script.extend(replies)

    def app(self) -> Starlette:
        """The ASGI app (usable without the thread, e.g. under another server)."""
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/_fake/stats", self._stats, methods=["GET"]),
                Route("/{path:path}", self._elsewhere, methods=["GET", "POST", "PUT", "DELETE"]),
            ]
        )

    def start(self, timeout_s: float = 10.0) -> "FakeOpenAIServer":
        """Serve on a free port of 127.0.0.1 in a daemon thread; return once it accepts."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(),
            log_level="warning",
            access_log=False,
            lifespan="off",
            backlog=2048,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name="fake-openai"
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- handlers -------------------------------------------------------------------------

    async def _chat(self, request: Request) -> Response:
        self.stats.requests += 1
        self.stats.in_flight += 1
        self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
        try:
            return await self._answer_chat(request)
        finally:
            self.stats.in_flight -= 1

    async def _answer_chat(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        body, problems = await _read_json(request)
        if body is not None:
            problems = chat_request_problems(body)
            if not problems and self.decode_images:
                problems = await asyncio.to_thread(image_problems, body)
        if problems:
            self.violations.extend(problems)
            return _error(400, "; ".join(problems))
        assert body is not None
        if body["model"] != self.model:
            self.violations.append(f"unknown model {body['model']!r}")
            return _error(404, f"The model `{body['model']}` does not exist.", code="not_found")
        self.received.append(body)
        reply = self._next_reply(body)
        await self._serve_time(request)
        if reply.delay_s:
            await self._pause(request, reply.delay_s)
        return self._respond(body, reply)

    async def _models(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        entry = {"id": self.model, "object": "model", "created": 0, "owned_by": "histocr-tests"}
        return JSONResponse({"object": "list", "data": [entry]})

    async def _stats(self, _request: Request) -> Response:
        return JSONResponse({**asdict(self.stats), "violations": list(self.violations)})

    async def _elsewhere(self, request: Request) -> Response:
        self.violations.append(f"{request.method} {request.url.path}: no such endpoint")
        return _error(404, f"no such endpoint: {request.url.path}")

    def _authorized(self, request: Request) -> bool:
        if self.api_key is None:
            return True
        if request.headers.get("authorization") == f"Bearer {self.api_key}":
            return True
        self.stats.unauthorized += 1
        return False

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        try:
            reply = self.script.popleft() if self.script else self.responder(body)
        except Exception as exc:  # a broken test responder must show, not hang the client
            self.violations.append(f"the responder raised {exc!r}")
            return server_error(500, f"responder raised {exc!r}")
        return Reply(content=reply) if isinstance(reply, str) else reply

    async def _serve_time(self, request: Request) -> None:
        """The capacity mode: wait for a free slot, then take latency_s to 'generate'.

        Slots are booked by the clock, not by waking waiters, so the server's own CPU time
        (shared with the client in tests) does not stretch every request as a queue would.
        """
        if not self.capacity:
            if self.latency_s:
                await self._pause(request, self.latency_s)
            return
        now = time.monotonic()
        start = max(now, heapq.heappop(self._slot_free_at))
        finish = start + self.latency_s
        heapq.heappush(self._slot_free_at, finish)
        while self._busy_until and self._busy_until[0] <= start:
            heapq.heappop(self._busy_until)
        heapq.heappush(self._busy_until, finish)
        self.stats.serving = len(self._busy_until)
        self.stats.max_serving = max(self.stats.max_serving, self.stats.serving)
        await self._pause(request, finish - now)

    async def _pause(self, request: Request, seconds: float) -> None:
        """Sleep, but stop early when the client hangs up (as a real server aborts the work)."""
        waiter = asyncio.ensure_future(_disconnected(request))
        try:
            done, _ = await asyncio.wait({waiter}, timeout=seconds)
            if done:
                self.stats.disconnects += 1
        finally:
            waiter.cancel()

    def _respond(self, body: dict[str, Any], reply: Reply) -> Response:
        if reply.raw_body is not None:
            return Response(reply.raw_body, status_code=reply.status, headers=reply.headers)
        if reply.status != 200:
            return _error(reply.status, reply.error, headers=reply.headers)
        content = reply.content or ""
        tokens_in = _prompt_tokens(body)
        tokens_out = max(1, len(content) // 4) if content else 0
        self.stats.served += 1
        self.stats.tokens_in += tokens_in
        self.stats.tokens_out += tokens_out
        self.stats.images += len(image_urls(body))
        served = self.stats.served
        answer = {
            "id": f"chatcmpl-fake-{served}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
        }
        return JSONResponse(answer, headers=reply.headers)


# --- validation ------------------------------------------------------------------------------


async def _read_json(request: Request) -> tuple[dict[str, Any] | None, list[str]]:
    if not request.headers.get("content-type", "").startswith("application/json"):
        return None, [f"content-type is {request.headers.get('content-type')!r}, not JSON"]
    try:
        body = await request.json()
    except ValueError as exc:
        return None, [f"the body is not JSON: {exc}"]
    if not isinstance(body, dict):
        return None, ["the body is not a JSON object"]
    return body, []


def chat_request_problems(body: Mapping[str, Any]) -> list[str]:
    """Everything a strict endpoint would reject in a chat-completions body (images aside)."""
    problems = []
    if not isinstance(body.get("model"), str) or not body["model"]:
        problems.append("model missing")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        problems.append("messages must be a non-empty list")
        messages = []
    for index, message in enumerate(messages):
        problems += [f"messages[{index}]: {p}" for p in _message_problems(message)]
    if "response_format" in body:
        problems += _response_format_problems(body["response_format"])
    temperature = body.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or not 0 <= temperature <= 2:
        problems.append(f"temperature {temperature!r} is not a number in [0, 2]")
    max_tokens = body.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        problems.append(f"max_tokens {max_tokens!r} is not a positive integer")
    if body.get("stream"):
        problems.append("stream is not supported here")
    return problems


def _message_problems(message: Any) -> list[str]:
    if not isinstance(message, dict):
        return ["not an object"]
    role = message.get("role")
    if role not in ROLES:
        return [f"role {role!r} is not one of {sorted(ROLES)}"]
    content = message.get("content")
    if isinstance(content, str):
        return []
    if not isinstance(content, list) or not content:
        return ["content must be a string or a non-empty list of parts"]
    problems = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        if kind == "image_url" and role == "user":
            image_url = part.get("image_url")
            url = image_url.get("url") if isinstance(image_url, dict) else None
            if not isinstance(url, str) or not _DATA_URL.match(url):
                problems.append(f"content[{index}]: image_url.url is not a base64 data:image URL")
            continue
        problems.append(f"content[{index}]: not a text part or a user's image_url part")
    return problems


def _response_format_problems(fmt: Any) -> list[str]:
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        return [f"response_format {fmt!r} has no known type"]
    schema = None
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            return ["response_format json_schema needs json_schema.schema, an object"]
        if not isinstance(spec.get("name"), str) or not _SCHEMA_NAME.match(spec["name"]):
            return ["response_format json_schema needs json_schema.name ([A-Za-z0-9_-]{1,64})"]
        if "strict" in spec and not isinstance(spec["strict"], bool):
            return ["response_format json_schema.strict must be a boolean"]
        schema = spec["schema"]
    elif fmt["type"] == "json_object" and "schema" in fmt:
        if not isinstance(fmt["schema"], dict):
            return ["response_format json_object schema must be an object"]
        schema = fmt["schema"]
    if schema is not None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            return [f"response_format schema is not a valid JSON schema: {exc.message}"]
    return []


def image_urls(body: Mapping[str, Any]) -> list[str]:
    """The image URLs of all messages, in order."""
    urls = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("type") == "image_url":
                urls.append(part["image_url"]["url"])
    return urls


def texts(body: Mapping[str, Any]) -> list[str]:
    """The text of all messages (string contents and text parts), in order."""
    found = []
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            found.append(content)
            continue
        found += [p["text"] for p in content if p.get("type") == "text"]
    return found


def decode_image(url: str) -> Image.Image:
    """The image a data URL carries, fully decoded; ValueError when it is not one."""
    match = _DATA_URL.match(url)
    if not match:
        raise ValueError("not a base64 data:image URL")
    try:
        data = base64.b64decode(match.group(2), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bad base64: {exc}") from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"the bytes are not an image Pillow can decode: {exc}") from None
    if image.format != _PIL_FORMATS[match.group(1)]:
        raise ValueError(f"declared image/{match.group(1)} but the bytes are {image.format}")
    return image


def images(body: Mapping[str, Any]) -> list[Image.Image]:
    """All images a request carries, decoded."""
    return [decode_image(url) for url in image_urls(body)]


def image_problems(body: Mapping[str, Any]) -> list[str]:
    problems = []
    for index, url in enumerate(image_urls(body)):
        try:
            decode_image(url)
        except ValueError as exc:
            problems.append(f"image {index + 1}: {exc}")
    return problems


def _prompt_tokens(body: Mapping[str, Any]) -> int:
    return sum(len(t) for t in texts(body)) // 4 + TOKENS_PER_IMAGE * len(image_urls(body))


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _error(
    status: int, message: str, *, code: str | None = None, headers: Mapping[str, str] | None = None
) -> Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    if status == 429:
        kind = "rate_limit_exceeded"
    error = {"message": message, "type": kind, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status, headers=dict(headers or {}))


def main() -> None:
    """Serve in the foreground (for benchmarks whose clients are other processes)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--model", default="fake-vlm")
    parser.add_argument("--api-key")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--capacity", type=int, help="requests served at once")
    parser.add_argument("--no-decode", action="store_true", help="skip decoding images")
    args = parser.parse_args()
    server = FakeOpenAIServer(
        model=args.model,
        api_key=args.api_key,
        latency_s=args.latency,
        capacity=args.capacity,
        decode_images=not args.no_decode,
    )
    uvicorn.run(server.app(), host="127.0.0.1", port=args.port, log_level="warning", backlog=2048)


if __name__ == "__main__":
    main()
