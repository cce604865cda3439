"""The `openai` engine against a real OpenAI-compatible server not written by us: llama.cpp.

llama-cpp-python[server] serves Gemma 3 270M (a tiny base model) on 127.0.0.1, text only.
The tests assert the protocol and the shape of the answers, never their content. llama.cpp's
dialect differs from OpenAI/vLLM: it refuses `response_format` type `json_schema` and takes
`{"type": "json_object", "schema": ...}` instead, hence `structured_output="json_object+schema"`.

Needs `scripts/install-llama-server.sh .venv` (see tests/llama_server.py).
"""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.openai_engine import OpenAIEngine, build_messages, check_model, openai_config
from models.stages.runner import records_json_schema
from tests.llama_server import LlamaServer, llama_servers

SCHEMA = records_json_schema(["surname", "occupation"])
DIRECTORY = (
    "Foerster, Christian, Fabrikmeister, Grosskoelnstrasse A 391.\n"
    "Mueller, Peter Joseph, Baecker, Hochstrasse 12."
)
# With this one-line example the tiny model closes the array after a few records (greedy
# decoding); asked without it, it goes on listing made-up records until max_tokens.
EXTRACTION = EngineRequest(
    prompt=(
        "Extract each line of the text as a record. Example: the text "
        '"Schmitz, Anna, Kauffrau, Marktstrasse 7." gives '
        '{"records": [{"surname": "Schmitz", "occupation": "Kauffrau"}]}'
    ),
    text=DIRECTORY,
    json_schema=SCHEMA,
)


@pytest.fixture(scope="session")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """The real server, started once (loading the model takes a second or two)."""
    yield from llama_servers(tmp_path_factory)


def _engine(server: LlamaServer, **parameters: Any) -> OpenAIEngine:
    """The engine as a run builds it: recorded parameters plus the machine's environment."""
    environment = {
        "base_url": server.base_url,
        "model": server.model,
        "timeout_s": 60.0,
        "backoff_base_s": 0.05,
        "backoff_max_s": 0.2,
    }
    recorded = {"temperature": 0.0, "max_tokens": 200, **parameters}
    return OpenAIEngine(openai_config(recorded, environment))


def _one(engine: OpenAIEngine, request: EngineRequest) -> EngineResult | EngineError:
    (result,) = engine.run_batch([request])
    return result


def test_check_model_sees_the_served_model(llama: LlamaServer) -> None:
    engine = _engine(llama)
    assert llama.model in check_model(engine.config)
    engine.check()
    with pytest.raises(EngineNotAvailable, match=r"'gpt-4o' is not served .*gemma-3-270m"):
        check_model(openai_config({"model": "gpt-4o"}, {"base_url": llama.base_url}))


def test_extraction_with_json_object_and_schema_returns_schema_valid_json(
    llama: LlamaServer,
) -> None:
    # One attempt: decoding is greedy, so asking again would give the same answer.
    engine = _engine(llama, structured_output="json_object+schema", max_invalid_attempts=1)
    result = _one(engine, EXTRACTION)
    assert isinstance(result, EngineResult), f"{result} (server log:\n{llama.log_tail()})"
    jsonschema.validate(json.loads(result.text), SCHEMA)
    assert result.finish_reason == "stop" and result.attempts == 1
    assert result.raw["choices"][0]["finish_reason"] == "stop"
    assert result.tokens_in and result.tokens_in > 20
    assert result.tokens_out and 0 < result.tokens_out <= 200
    assert result.tokens_in == result.raw["usage"]["prompt_tokens"]
    assert result.latency_s > 0


def test_extraction_with_json_schema_mode_fails_clearly(llama: LlamaServer) -> None:
    """llama.cpp answers HTTP 500 to `json_schema`: a refusal, not a busy server."""
    engine = _engine(llama, structured_output="json_schema")
    result = _one(engine, EXTRACTION)
    assert isinstance(result, EngineError)
    message = str(result)
    assert "HTTP 500" in message and "response_format" in message
    assert "structured_output" in message and "json_object+schema" in message
    assert (result.retryable, result.attempts) == (False, 1)


def test_plain_text_request_returns_text_and_a_cut_off_answer_fails_visibly(
    llama: LlamaServer,
) -> None:
    """No response_format: the server answers with text. This base model never ends its turn
    (it repeats the prompt until max_tokens), so the answer comes back with finish_reason
    "length", and the engine must not pass a cut-off text off as done."""
    engine = _engine(llama, max_tokens=24, max_invalid_attempts=2)
    request = EngineRequest(prompt="Name the capital of France in one word.")
    body = {
        "model": llama.model,
        "messages": build_messages(request, None),
        "max_tokens": 24,
        "temperature": 0.0,
    }
    reply = httpx.post(f"{llama.base_url}/chat/completions", json=body, timeout=60).json()
    (choice,) = reply["choices"]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] == "length" and reply["usage"]["completion_tokens"] == 24

    result = _one(engine, request)
    assert isinstance(result, EngineError)
    assert str(result) == "output cut off: finish_reason 'length' after 2 attempts"
    assert (result.retryable, result.attempts) == (False, 2)
