"""The `openai` engine against a local server that speaks and checks the real wire protocol."""

import asyncio
import base64
import io
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.openai_engine import (
    SCHEMA_INSTRUCTION,
    OpenAIConfig,
    OpenAIEngine,
    check_model,
    list_models,
    openai_config,
)
from models.stages.runner import records_json_schema
from tests.fakes import FakeOpenAIServer, fake_openai_servers
from tests.fakes.openai_server import (
    Reply,
    cut_off,
    empty_answer,
    html_answer,
    images,
    invalid_json,
    ok,
    rate_limited,
    server_error,
    short_answer,
    slow,
    texts,
)

Factory = Callable[..., FakeOpenAIServer]
FIELDS = ["surname", "occupation"]
SCHEMA = records_json_schema(FIELDS)
VALID_RECORDS = '{"records": [{"surname": "Mueller", "occupation": "Baecker"}]}'


@pytest.fixture
def fake_openai() -> Iterator[Factory]:
    yield from fake_openai_servers()


def _config(server: FakeOpenAIServer, **overrides: Any) -> OpenAIConfig:
    values: dict[str, Any] = {
        "base_url": server.base_url,
        "model": server.model,
        "api_key": server.api_key,
        "timeout_s": 5.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
    }
    return OpenAIConfig(**{**values, **overrides})


def _run(config: OpenAIConfig, requests: list[EngineRequest]) -> list[EngineResult | EngineError]:
    return OpenAIEngine(config).run_batch(requests)


def _one(config: OpenAIConfig, request: EngineRequest) -> EngineResult | EngineError:
    return _run(config, [request])[0]


def _pages(folder: Path, count: int) -> list[Path]:
    """Small PNG pages whose grey level says which page they are (10 × index)."""
    paths = []
    for index in range(count):
        path = folder / f"page-{index}.png"
        Image.new("RGB", (64, 48), (index * 10,) * 3).save(path)
        paths.append(path)
    return paths


def _page_number(body: dict[str, Any]) -> int:
    (image,) = images(body)
    grey = image.convert("L").getpixel((image.width // 2, image.height // 2))
    assert isinstance(grey, int)
    return round(grey / 10)


def test_ocr_batch_answers_in_request_order_with_valid_image_parts(
    fake_openai: Factory, tmp_path: Path
) -> None:
    def transcribe(body: dict[str, Any]) -> Reply:
        number = _page_number(body)
        # Later pages answer first, so order has to be restored by the engine.
        return ok(f"text of page {number}", delay_s=0.02 * (12 - number))

    server = fake_openai(api_key="test-key", responder=transcribe)
    requests = [
        EngineRequest(prompt="Transcribe the page.", system="You transcribe.", image_path=path)
        for path in _pages(tmp_path, 12)
    ]
    results = _run(_config(server, image_max_side=32), requests)
    assert [r.text for r in results if isinstance(r, EngineResult)] == [
        f"text of page {n}" for n in range(12)
    ]
    first = results[0]
    assert isinstance(first, EngineResult)
    assert (first.model, first.finish_reason, first.attempts) == ("fake-vlm", "stop", 1)
    assert first.tokens_in and first.tokens_out and first.latency_s > 0
    assert first.raw["choices"][0]["message"]["content"] == "text of page 0"
    assert server.stats.images == 12 and server.stats.served == 12
    body = server.received[0]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 4096
    assert "response_format" not in body
    assert body["messages"][0] == {"role": "system", "content": "You transcribe."}
    parts = body["messages"][1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[0]["text"] == "Transcribe the page."
    assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert images(body)[0].size == (32, 24)


def test_correction_sends_prompt_image_then_the_delimited_text(
    fake_openai: Factory, tmp_path: Path
) -> None:
    server = fake_openai()
    (page,) = _pages(tmp_path, 1)
    request = EngineRequest(prompt="Correct the text.", image_path=page, text="Mtiller, Peter")
    result = _one(_config(server, image_format="png"), request)
    assert isinstance(result, EngineResult)
    parts = server.received[0]["messages"][0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url", "text"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[2]["text"] == "<text>\nMtiller, Peter\n</text>"


@pytest.mark.parametrize(
    ("mode", "answer"),
    [
        ("json_schema", VALID_RECORDS),
        ("json_object+schema", VALID_RECORDS),
        ("prompt-only", f"```json\n{VALID_RECORDS}\n```"),
    ],
)
def test_structured_extraction_in_each_mode(fake_openai: Factory, mode: str, answer: str) -> None:
    server = fake_openai(responder=lambda _body: answer)
    request = EngineRequest(
        prompt="Extract the entries.", text="Mueller, Baecker", json_schema=SCHEMA
    )
    result = _one(_config(server, structured_output=mode), request)
    assert isinstance(result, EngineResult)
    assert json.loads(result.text) == json.loads(VALID_RECORDS)
    body = server.received[0]
    content = body["messages"][0]["content"]
    assert isinstance(content, str)  # text only: a plain string, as every server takes it
    assert (
        content.startswith("Extract the entries.")
        and "<text>\nMueller, Baecker\n</text>" in content
    )
    expected_format = {
        "json_schema": {
            "type": "json_schema",
            "json_schema": {"name": "records", "schema": SCHEMA, "strict": True},
        },
        "json_object+schema": {"type": "json_object", "schema": SCHEMA},
        "prompt-only": None,
    }[mode]
    assert body.get("response_format") == expected_format
    schema_in_prompt = SCHEMA_INSTRUCTION in content and json.dumps(SCHEMA) in content
    assert schema_in_prompt == (mode == "prompt-only")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (invalid_json(), "output is not valid JSON"),
        ('{"records": [{"surname": "Mueller"}]}', "does not match the schema at records/0"),
    ],
)
def test_invalid_extraction_output_is_retried_then_fails(
    fake_openai: Factory, bad: Reply | str, message: str
) -> None:
    server = fake_openai()
    request = EngineRequest(prompt="Extract.", text="Mueller, Baecker", json_schema=SCHEMA)
    server.queue(bad, VALID_RECORDS)
    recovered = _one(_config(server), request)
    assert isinstance(recovered, EngineResult) and recovered.attempts == 2
    assert recovered.tokens_out and recovered.tokens_out > len(VALID_RECORDS) // 4

    server.queue(bad, bad)
    failed = _one(_config(server), request)
    assert isinstance(failed, EngineError)
    assert message in str(failed) and str(failed).endswith("after 2 attempts")
    assert (failed.attempts, failed.retryable) == (2, False)


def test_cut_off_output_is_retried_then_fails_visibly(fake_openai: Factory) -> None:
    server = fake_openai(responder=lambda _body: cut_off())
    result = _one(_config(server, max_invalid_attempts=2), EngineRequest(prompt="Transcribe."))
    assert isinstance(result, EngineError)
    assert str(result) == "output cut off: finish_reason 'length' after 2 attempts"
    assert (result.attempts, result.retryable) == (2, False)
    assert server.stats.requests == 2


def test_rate_limit_waits_as_told_up_to_the_cap(fake_openai: Factory) -> None:
    server = fake_openai()
    server.queue(rate_limited(retry_after="1"), "after the wait")
    started = time.perf_counter()
    result = _one(_config(server, backoff_max_s=5.0), EngineRequest(prompt="Transcribe."))
    waited = time.perf_counter() - started
    assert isinstance(result, EngineResult)
    assert (result.text, result.attempts) == ("after the wait", 2)
    assert waited >= 1.0

    server.queue(rate_limited(retry_after="30"), "capped")
    started = time.perf_counter()
    result = _one(_config(server, backoff_max_s=0.2), EngineRequest(prompt="Transcribe."))
    assert isinstance(result, EngineResult) and result.attempts == 2
    assert 0.2 <= time.perf_counter() - started < 5


def test_server_errors_are_retried(fake_openai: Factory) -> None:
    server = fake_openai()
    server.queue(server_error(500), server_error(503), "third time lucky")
    result = _one(_config(server), EngineRequest(prompt="Transcribe."))
    assert isinstance(result, EngineResult)
    assert (result.text, result.attempts) == ("third time lucky", 3)

    server.queue(*[server_error(502, "bad gateway")] * 3)
    failed = _one(_config(server, max_attempts=3), EngineRequest(prompt="Transcribe."))
    assert isinstance(failed, EngineError)
    assert "HTTP 502" in str(failed) and "bad gateway" in str(failed)
    assert (failed.attempts, failed.retryable) == (3, True)


def test_timeouts_are_retried_then_fail_with_the_attempts(fake_openai: Factory) -> None:
    server = fake_openai(responder=lambda _body: slow(3.0))
    config = _config(server, timeout_s=0.5, max_attempts=2)
    started = time.perf_counter()
    result = _one(config, EngineRequest(prompt="Transcribe."))
    assert isinstance(result, EngineError)
    assert "within 0.5 s" in str(result) and "gave up after 2 attempts" in str(result)
    assert (result.attempts, result.retryable) == (2, True)
    assert time.perf_counter() - started < 2.5
    assert server.stats.requests == 2


def test_a_wrong_key_fails_at_once_and_is_never_shown(
    fake_openai: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-wrong-0123456789abcdef"
    server = fake_openai(api_key="the-right-key")
    config = _config(server, api_key=secret, extra_headers={"X-Extra-Token": "header-secret"})
    engine = OpenAIEngine(config)
    caplog.set_level(logging.DEBUG)
    result = engine.run_batch([EngineRequest(prompt="Transcribe.")])[0]
    assert isinstance(result, EngineError)
    assert "refused the API key" in str(result) and "HTTP 401" in str(result)
    assert (result.attempts, result.retryable) == (1, False)
    assert server.stats.unauthorized == 1 and server.stats.requests == 1
    with pytest.raises(EngineNotAvailable, match="refused the API key"):
        list_models(config)
    shown = [str(result), repr(config), repr(engine), json.dumps(engine.describe()), caplog.text]
    for text in shown:
        assert secret not in text and "header-secret" not in text
    assert engine.describe()["model"] == "fake-vlm"


def test_no_more_requests_in_flight_than_allowed(fake_openai: Factory) -> None:
    server = fake_openai(latency_s=0.1, capacity=2)
    results = _run(_config(server, max_in_flight=4), [EngineRequest(prompt="p")] * 12)
    assert all(isinstance(r, EngineResult) for r in results)
    assert server.stats.max_in_flight == 4 and server.stats.max_serving == 2


def test_batches_of_several_threads_share_the_bound_on_requests_in_flight(
    fake_openai: Factory,
) -> None:
    # A threads pool runs several tasks of a worker at once: max_in_flight bounds the process,
    # and a batch that comes later queues behind the others instead of overrunning the server.
    server = fake_openai(latency_s=0.1)
    engine = OpenAIEngine(_config(server, max_in_flight=4))
    outcomes: list[list[EngineResult | EngineError]] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(engine.run_batch([EngineRequest("p")] * 6)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [sum(isinstance(r, EngineResult) for r in batch) for batch in outcomes] == [6, 6, 6]
    assert server.stats.max_in_flight == 4 and server.stats.requests == 18


def test_hundreds_of_requests_in_flight_at_once(fake_openai: Factory) -> None:
    server = fake_openai(latency_s=3.0)
    results = _run(_config(server, max_in_flight=300), [EngineRequest(prompt="p")] * 300)
    assert sum(isinstance(r, EngineResult) for r in results) == 300
    # 300 unless sending them took over 3 s (bodies go out a few at a time, ~1 ms each here)
    assert server.stats.max_in_flight >= 250


def test_unreachable_server_is_retried_then_fails(fake_openai: Factory) -> None:
    server = fake_openai()
    server.stop()
    result = _one(_config(server, max_attempts=2), EngineRequest(prompt="Transcribe."))
    assert isinstance(result, EngineError)
    assert "connection refused" in str(result) and result.attempts == 2 and result.retryable


def test_refused_requests_are_not_retried(fake_openai: Factory) -> None:
    server = fake_openai()
    server.queue(server_error(400, "response_format json_schema is not supported"))
    request = EngineRequest(prompt="Extract.", text="x", json_schema=SCHEMA)
    result = _one(_config(server), request)
    assert isinstance(result, EngineError)
    assert "not supported" in str(result) and "structured_output" in str(result)
    assert (result.attempts, result.retryable) == (1, False)


def test_a_server_error_about_the_response_format_is_not_retried(fake_openai: Factory) -> None:
    # llama-cpp-python's server answers response_format json_schema with a 500 naming the field:
    # asking again gets the same answer, so the user is told which setting to change at once.
    server = fake_openai()
    server.queue(
        server_error(500, "body.response_format.type: Input should be 'text' or 'json_object'")
    )
    request = EngineRequest(prompt="Extract.", text="x", json_schema=SCHEMA)
    result = _one(_config(server), request)
    assert isinstance(result, EngineError)
    assert "structured_output" in str(result) and "json_object+schema" in str(result)
    assert (result.attempts, result.retryable) == (1, False)
    assert len(server.received) == 1


def test_unreadable_page_image_fails_without_a_request(
    fake_openai: Factory, tmp_path: Path
) -> None:
    server = fake_openai()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    result = _one(_config(server), EngineRequest(prompt="Transcribe.", image_path=broken))
    assert isinstance(result, EngineError) and "broken.png" in str(result)
    assert not result.retryable and server.stats.requests == 0


def test_runs_from_worker_threads_and_inside_event_loops(fake_openai: Factory) -> None:
    server = fake_openai()
    engine = OpenAIEngine(_config(server))
    outcomes: list[Any] = []
    threads = [
        threading.Thread(target=lambda: outcomes.append(engine.run_batch([EngineRequest("p")])))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    async def inside_a_loop() -> list[EngineResult | EngineError]:
        return engine.run_batch([EngineRequest("p")])

    outcomes.append(asyncio.run(inside_a_loop()))
    assert len(outcomes) == 4
    assert all(isinstance(batch[0], EngineResult) for batch in outcomes)


def test_cancellation_propagates(fake_openai: Factory) -> None:
    server = fake_openai(responder=lambda _body: slow(5.0))
    engine = OpenAIEngine(_config(server))

    async def cancel_midway() -> None:
        task = asyncio.create_task(engine.arun_batch([EngineRequest("p")] * 3))
        await asyncio.sleep(0.3)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancel_midway())


def test_preflight_lists_and_checks_models(fake_openai: Factory) -> None:
    server = fake_openai(api_key="k-123456")
    assert list_models(_config(server)) == ["fake-vlm"]
    assert check_model(_config(server)) == ["fake-vlm"]
    with pytest.raises(EngineNotAvailable, match=r"'other-model' is not served .*served: fake-vlm"):
        check_model(_config(server, model="other-model"))
    with pytest.raises(EngineNotAvailable, match="wants an API key and none is configured"):
        list_models(_config(server, api_key=None))


def test_preflight_explains_a_wrong_base_url_and_a_stopped_server(fake_openai: Factory) -> None:
    server = fake_openai(allow_violations=True)
    with pytest.raises(EngineNotAvailable, match=r"HTTP 404 .*usually ends in /v1"):
        list_models(_config(server, base_url=server.base_url.removesuffix("/v1")))
    server.stop()
    with pytest.raises(EngineNotAvailable, match="connection refused"):
        check_model(_config(server))


def test_config_from_recorded_parameters_and_the_machine_environment() -> None:
    parameters = {"model": "qwen2.5-vl", "temperature": 0.2, "api_key": "leaked", "fields": ["x"]}
    environment = {
        "base_url": "http://user:pw@gpu-box:8000/v1/",
        "api_key": "sk-local",
        "model": "x",
    }
    config = openai_config(parameters, environment)
    assert (config.model, config.temperature, config.api_key) == ("qwen2.5-vl", 0.2, "sk-local")
    described = OpenAIEngine(config).describe()
    assert described["endpoint"] == "http://gpu-box:8000/v1"
    assert "sk-local" not in json.dumps(described) and "pw" not in json.dumps(described)
    with pytest.raises(EngineNotAvailable, match="structured_output 'xml'"):
        openai_config({"structured_output": "xml"}, {"base_url": "http://h/v1", "model": "m"})


def test_prompt_only_mode_puts_the_schema_in_the_text_part(
    fake_openai: Factory, tmp_path: Path
) -> None:
    server = fake_openai(responder=lambda _body: VALID_RECORDS)
    (page,) = _pages(tmp_path, 1)
    request = EngineRequest(prompt="Extract.", image_path=page, json_schema=SCHEMA)
    result = _one(_config(server, structured_output="prompt-only"), request)
    assert isinstance(result, EngineResult)
    prompt = texts(server.received[0])[0]
    assert prompt.startswith("Extract.\n\n" + SCHEMA_INSTRUCTION)


def test_the_fake_server_rejects_what_a_strict_endpoint_rejects(fake_openai: Factory) -> None:
    server = fake_openai(api_key="k-123456", allow_violations=True)
    good_image = "data:image/png;base64," + _png_base64()
    user = {"role": "user", "content": "hello"}
    bad_bodies = {
        "role": {"messages": [{"role": "robot", "content": "hi"}]},
        "not data URL": {"messages": [_image_message("https://example.org/page.png")]},
        "not an image": {"messages": [_image_message("data:image/png;base64,bm90IGFuIGltYWdl")]},
        "wrong type": {"messages": [_image_message(good_image.replace("png", "jpeg", 1))]},
        "schema name": {
            "messages": [user],
            "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
        },
        "bad schema": {
            "messages": [user],
            "response_format": {"type": "json_object", "schema": {"type": "records"}},
        },
    }
    headers = {"Authorization": "Bearer k-123456"}
    with httpx.Client(base_url=server.base_url, headers=headers) as client:
        for name, body in bad_bodies.items():
            response = client.post("/chat/completions", json={"model": "fake-vlm", **body})
            assert response.status_code == 400, name
            assert response.json()["error"]["message"], name
        assert len(server.violations) == len(bad_bodies)
        fine = {"model": "fake-vlm", "messages": [_image_message(good_image)]}
        assert client.post("/chat/completions", json=fine).status_code == 200
        unknown = client.post("/chat/completions", json={**fine, "model": "gpt-9"})
        assert unknown.status_code == 404
        assert httpx.post(f"{server.base_url}/chat/completions", json=fine).status_code == 401

    result = _one(_config(server, model="gpt-9"), EngineRequest(prompt="Transcribe."))
    assert isinstance(result, EngineError) and not result.retryable
    assert "HTTP 404" in str(result) and "check the model name 'gpt-9'" in str(result)


def _image_message(url: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}


def _png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("L", (4, 4), 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_an_invalid_request_schema_fails_without_a_request(fake_openai: Factory) -> None:
    server = fake_openai()
    request = EngineRequest(prompt="Extract.", text="x", json_schema={"type": "records"})
    result = _one(_config(server), request)
    assert isinstance(result, EngineError) and "JSON schema is invalid" in str(result)
    assert not result.retryable and server.stats.requests == 0


OCR_TEXT = "\n".join(
    [
        "Mtiller, Peter Joſeph, Bäcker, Hochſtraße 12.",
        "Schmidt, Anna, Näherin, Markt 3.",
        "Wolff, Carl, Schloſſer, Graben 7.",
        "Becker, Otto, Kaufmann, Thor 4.",
    ]
)
CORRECTED = OCR_TEXT.replace("Mtiller", "Müller")


def _correction(text: str = OCR_TEXT) -> EngineRequest:
    return EngineRequest(prompt="Correct the OCR text.", text=text)


def test_an_empty_or_short_correction_is_asked_again_then_fails(fake_openai: Factory) -> None:
    # An empty 200 answer once stored a `done` correction with no text: the OCR text silently
    # replaced by nothing. It is an unusable answer, asked again like a cut-off one.
    server = fake_openai()
    server.queue(empty_answer(), CORRECTED)
    recovered = _one(_config(server), _correction())
    assert isinstance(recovered, EngineResult)
    assert (recovered.text, recovered.attempts) == (CORRECTED, 2)

    server.queue(empty_answer(), short_answer(CORRECTED))
    failed = _one(_config(server), _correction())
    assert isinstance(failed, EngineError) and not failed.retryable
    assert str(failed).startswith("the answer has 23 letters and digits, under 50% of the 108")
    assert str(failed).endswith("after 2 attempts") and failed.attempts == 2

    server.queue(empty_answer(null=True), empty_answer())
    failed = _one(_config(server), _correction())
    assert isinstance(failed, EngineError) and failed.attempts == 2
    assert str(failed) == (
        "the answer is empty, but its input text has 108 letters and digits after 2 attempts"
    )
    assert server.stats.requests == 6


def test_what_a_correction_may_rightly_be(fake_openai: Factory, tmp_path: Path) -> None:
    server = fake_openai()
    accepted = [
        # Longer than its OCR text: the OCR missed lines (the pages correction helps most).
        (OCR_TEXT.splitlines()[0], CORRECTED),
        # Shorter by the noise it dropped: spaces and punctuation specks are not counted.
        (OCR_TEXT + "\n" + "\n".join([". , ' ; — ~ :"] * 20), CORRECTED),
        # 60 % of the letters: a correction that dropped invented lines, still plausible.
        (OCR_TEXT, CORRECTED[: int(len(CORRECTED) * 0.6)]),
        # Too little to judge (a page number, the noise OCR reads on a blank page).
        ("12 ii", ""),
    ]
    for source, answer in accepted:
        server.queue(answer)
        result = _one(_config(server), _correction(source))
        assert isinstance(result, EngineResult) and result.text == answer, source
    # An image alone may rightly get nothing back: a blank page.
    (page,) = _pages(tmp_path, 1)
    server.queue(empty_answer())
    blank = _one(_config(server), EngineRequest(prompt="Transcribe.", image_path=page))
    assert isinstance(blank, EngineResult) and blank.text == ""
    # No content at all (null) is never an answer.
    server.queue(empty_answer(null=True), empty_answer(null=True))
    failed = _one(_config(server), EngineRequest(prompt="Transcribe.", image_path=page))
    assert isinstance(failed, EngineError) and "no content" in str(failed)
    assert server.stats.requests == len(accepted) + 3


def _attempts_in_message(error: EngineError) -> int:
    found = re.findall(r"after (\d+) attempts?\b", str(error))
    assert len(found) == 1, str(error)
    return int(found[0])


def test_one_tally_of_requests_over_both_retry_layers(fake_openai: Factory) -> None:
    # Transport retries and unusable answers once had a limit each, one inside the other:
    # 8 requests reported as "gave up after 4 attempts", "after 5 attempts" with a limit of 2.
    server = fake_openai()
    extraction = EngineRequest(prompt="Extract.", text="Mueller, Baecker", json_schema=SCHEMA)
    config = _config(server, max_attempts=4, max_invalid_attempts=2)
    cases: list[tuple[list[Reply | str], str, bool]] = [
        # Three failures, then an unusable answer: the fourth request was the last one allowed.
        (
            [server_error(500)] * 3 + [invalid_json()],
            "output is not valid JSON",
            False,
        ),
        # An unusable answer, then the server fails until the tally is spent.
        ([invalid_json()] + [server_error(503)] * 3, "HTTP 503", True),
        # Two unusable answers end it, whatever came between.
        ([invalid_json(), server_error(500), invalid_json()], "output is not valid JSON", False),
    ]
    sent = 0
    for replies, reason, retryable in cases:
        server.queue(*replies)
        failed = _one(config, extraction)
        assert isinstance(failed, EngineError) and reason in str(failed)
        assert failed.attempts == len(replies) == server.stats.requests - sent
        assert _attempts_in_message(failed) == failed.attempts <= config.max_attempts
        assert failed.retryable == retryable
        sent = server.stats.requests
    assert str(failed).endswith("after 3 attempts: 2 answered unusably, 1 not answered")


@pytest.mark.parametrize(
    "fault",
    ["500", "429", "timeout", "cut off", "html with 200", "invalid json", "empty", "null"],
)
def test_every_fault_reports_the_requests_it_sent(fake_openai: Factory, fault: str) -> None:
    replies: dict[str, Callable[[], Reply]] = {
        "500": lambda: server_error(500),
        "429": lambda: rate_limited("0"),
        "timeout": lambda: slow(2.0),
        "cut off": cut_off,
        "html with 200": html_answer,
        "invalid json": invalid_json,
        "empty": empty_answer,
        "null": lambda: empty_answer(null=True),
    }
    server = fake_openai(responder=lambda _body: replies[fault]())
    config = _config(server, timeout_s=0.3, max_attempts=3, max_invalid_attempts=2)
    schema = SCHEMA if fault == "invalid json" else None
    request = EngineRequest(prompt="Correct.", text=OCR_TEXT, json_schema=schema)
    failed = _one(config, request)
    assert isinstance(failed, EngineError)
    assert failed.attempts == server.stats.requests == _attempts_in_message(failed)
    unanswered = fault in ("500", "429", "timeout")
    assert failed.attempts == (3 if unanswered else 2)
    assert failed.retryable == unanswered
