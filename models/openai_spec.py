"""The `openai` engine's settings and spec: any OpenAI-compatible chat endpoint."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.engine_loop import ENGINE_LOOP
from models.images import cached_encode_image
from models.openai_client import IMAGE_FORMATS, STRUCTURED_OUTPUT_MODES, OpenAIConfig, check_model
from models.openai_engine import MESSAGE_FORMAT, SHARED_POOLS, OpenAIEngine
from models.openai_engine import openai_config as build_config
from models.spec import EngineSpec, Parameter


class OpenAISettings(BaseSettings):
    """The default OpenAI-compatible endpoint (vLLM server, Ollama, OpenAI, Gemini, …)."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_OPENAI_", extra="ignore")

    base_url: str = "http://127.0.0.1:8001/v1"
    model: str = ""
    api_key: SecretStr | None = None
    #: Requests in flight per worker process: high enough to keep a vLLM server's batch full.
    max_in_flight: int = Field(default=256, ge=1)
    timeout_s: float = Field(default=300.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)
    max_invalid_attempts: int = Field(default=2, ge=1)
    structured_output: Literal["json_schema", "json_object+schema", "prompt-only"] = "json_schema"
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=4096, ge=1)
    image_max_side: int = Field(default=1288, ge=64)
    image_format: Literal["jpeg", "png"] = "jpeg"
    #: Pages per task on the llm queue (several tasks of a worker run at once).
    batch_size: int = Field(default=64, ge=1)


def client_config(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> OpenAIConfig:
    """The client configuration of a run's parameters on this machine: the endpoint the run
    names, this machine's key and load settings."""
    endpoint = parameters.get("base_url") or environment.get("base_url")
    return build_config(parameters, {**environment, "base_url": endpoint})


def create_engine(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> OpenAIEngine:
    """An engine that sends each request to the endpoint as one chat completion."""
    return OpenAIEngine(client_config(parameters, environment))


def prepare_page(
    image: Path, parameters: Mapping[str, Any], environment: Mapping[str, Any]
) -> None:
    """Encode a new page as the configured endpoint wants it, once, ahead of any run."""
    if not parameters.get("model"):  # no endpoint configured: nothing to prepare for
        return
    cache = environment.get("image_cache_dir")
    cached_encode_image(
        image,
        max_side=int(parameters["image_max_side"]),
        fmt=str(parameters["image_format"]),
        cache_dir=Path(cache) if cache else None,
    )


def open_client_pool(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> None:
    """Open the pool for the configured endpoint before the first task needs it."""
    if not parameters.get("model"):
        return
    ENGINE_LOOP.run(SHARED_POOLS.get(client_config(parameters, environment)))


def check_endpoint(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> None:
    """Ask the endpoint for its models (GET /models): is it there, and does it serve the model?"""
    check_model(client_config(parameters, {**environment, "timeout_s": 10.0}))


SPEC = EngineSpec(
    name="openai",
    description="Any OpenAI-compatible chat endpoint with image input "
    "(vLLM server, Ollama, OpenAI, Gemini)",
    stages=("ocr", "correct", "extract"),
    queue="llm",
    create=create_engine,
    settings=OpenAISettings,
    batch_size=64,
    prompted=True,
    message_format=MESSAGE_FORMAT,
    needs_model=True,
    extract_inputs=("text", "image", "both"),
    parameters=(
        Parameter("model", str, "the model the endpoint serves", cli="--model"),
        Parameter(
            "base_url",
            str,
            "the endpoint, e.g. http://127.0.0.1:8001/v1",
            recorded=False,
            cli="--base-url",
        ),
        Parameter("temperature", float, "sampling temperature (0: greedy)", minimum=0, maximum=2),
        Parameter("max_tokens", int, "most tokens an answer may have", minimum=1),
        Parameter(
            "structured_output",
            str,
            "how extraction asks for JSON",
            choices=STRUCTURED_OUTPUT_MODES,
            cli="--structured-output",
        ),
        Parameter(
            "image_max_side",
            int,
            "longest side of the page image sent, in pixels",
            minimum=64,
            maximum=10000,
            cli="--image-max-side",
        ),
        Parameter("image_format", str, "how the page image is encoded", choices=IMAGE_FORMATS),
    ),
    on_page_stored=prepare_page,
    on_worker_ready=open_client_pool,
    preflight=check_endpoint,
)
