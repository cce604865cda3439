"""The `openai` engine's settings and spec: any OpenAI-compatible chat endpoint.

Endpoints are this machine's configuration, never a run's: the default one
(`HISTOCR_OPENAI_*`) and the named ones an administrator adds (`HISTOCR_ENDPOINTS__<NAME>__…`).
A run chooses one by name; each process (web or worker) resolves the name to a URL and a key
from its own settings, so a request can make no process send a key anywhere else.
"""

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.base import EngineNotAvailable
from models.engine_loop import ENGINE_LOOP
from models.images import cached_encode_image
from models.openai_client import IMAGE_FORMATS, STRUCTURED_OUTPUT_MODES, OpenAIConfig, check_model
from models.openai_engine import MESSAGE_FORMAT, SHARED_POOLS, OpenAIEngine
from models.openai_engine import openai_config as build_config
from models.spec import EngineSpec, Parameter

#: The name of the endpoint `HISTOCR_OPENAI_*` configures.
DEFAULT_ENDPOINT = "default"
#: Endpoint names as they appear in variable names and run configurations (lower case:
#: environment variable names are matched without case).
_ENDPOINT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
#: What a named endpoint's settings replace in the default endpoint's: where it is, its key
#: and how hard to push it (everything else, e.g. the image settings, is the run's).
_ENDPOINT_LOCAL = ("base_url", "api_key", "max_in_flight", "timeout_s", "max_attempts")
#: The preflight's patience: a run's start waits on it.
PREFLIGHT_TIMEOUT_S = 10.0


def _http_url(url: str) -> str:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    return url


class EndpointSettings(BaseModel):
    """One more endpoint an administrator configures: `HISTOCR_ENDPOINTS__<NAME>__BASE_URL`,
    `…__API_KEY`, `…__MODEL` (its default model) and, unset = as the default endpoint,
    `…__MAX_IN_FLIGHT`, `…__TIMEOUT_S`, `…__MAX_ATTEMPTS`."""

    # A refused setting's error must not print the key given beside it.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    base_url: str
    api_key: SecretStr | None = None
    model: str = ""
    max_in_flight: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_attempts: int | None = Field(default=None, ge=1)

    _check_url = field_validator("base_url")(_http_url)


class OpenAISettings(BaseSettings):
    """The default OpenAI-compatible endpoint (vLLM server, Ollama, OpenAI, Gemini, …) and the
    named endpoints runs may choose instead."""

    model_config = SettingsConfigDict(
        env_prefix="HISTOCR_OPENAI_",
        env_file=".env",  # as the main Settings: the README promises a .env file for all
        extra="ignore",
        env_nested_delimiter="__",
        populate_by_name=True,
        hide_input_in_errors=True,  # an endpoint refused for its name carries its key
    )

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
    #: The named endpoints, from HISTOCR_ENDPOINTS__<NAME>__<SETTING> (not HISTOCR_OPENAI_…).
    endpoints: dict[str, EndpointSettings] = Field(
        default_factory=dict, validation_alias="HISTOCR_ENDPOINTS"
    )

    @field_validator("endpoints")
    @classmethod
    def _endpoint_names(cls, endpoints: dict[str, EndpointSettings]) -> dict[str, EndpointSettings]:
        """Names a run can give and a variable can carry; `default` is HISTOCR_OPENAI_*'s."""
        for name in endpoints:
            if name == DEFAULT_ENDPOINT:
                raise ValueError(
                    "the endpoint 'default' is HISTOCR_OPENAI_*; name the others differently"
                )
            if not _ENDPOINT_NAME.match(name):
                raise ValueError(
                    f"endpoint name {name!r}: use up to 40 lower-case letters, digits, - and _"
                )
        return endpoints

    def endpoint_choices(self) -> dict[str, dict[str, Any]]:
        """The endpoints a run may choose, by name, each with the model it defaults to."""
        choices = {DEFAULT_ENDPOINT: {"model": self.model or None}}
        for name in sorted(self.endpoints):
            choices[name] = {"model": self.endpoints[name].model or None}
        return choices


def endpoint_environment(
    parameters: Mapping[str, Any], environment: Mapping[str, Any]
) -> dict[str, Any]:
    """This machine's environment for the endpoint a run names: that endpoint's URL, key and
    load settings (EngineNotAvailable when this machine has no endpoint of that name)."""
    name = parameters.get("endpoint") or DEFAULT_ENDPOINT
    named: Mapping[str, Any] = environment.get("endpoints") or {}
    shared = {key: value for key, value in environment.items() if key != "endpoints"}
    if name == DEFAULT_ENDPOINT:
        return shared
    if name not in named:
        configured = ", ".join([DEFAULT_ENDPOINT, *sorted(named)])
        raise EngineNotAvailable(
            f"endpoint {name!r} is not configured on this machine (endpoints: {configured}; "
            f"set HISTOCR_ENDPOINTS__{str(name).upper()}__BASE_URL)"
        )
    own = {key: named[name].get(key) for key in _ENDPOINT_LOCAL}
    # The default endpoint's key must never travel to another endpoint, even one without a key.
    return {**shared, "api_key": None, **{k: v for k, v in own.items() if v is not None}}


def client_config(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> OpenAIConfig:
    """The client configuration of a run's parameters on this machine: the endpoint the run
    names (resolved from this machine's settings), its key and load settings."""
    return build_config(parameters, endpoint_environment(parameters, environment))


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
    """Ask the endpoint for its models (GET /models): is it there, and does it serve the model?

    The answer goes to whoever started the run: it names the endpoint, never its key or the
    credentials its URL may carry.
    """
    name = parameters.get("endpoint") or DEFAULT_ENDPOINT
    config = replace(client_config(parameters, environment), timeout_s=PREFLIGHT_TIMEOUT_S)
    try:
        check_model(config)
    except EngineNotAvailable as exc:
        # Not chained: the original message may carry the URL's credentials into a log.
        message = without_credentials(str(exc), config)
        raise EngineNotAvailable(f"endpoint {name!r}: {message}") from None


def without_credentials(text: str, config: OpenAIConfig) -> str:
    """`text` with the endpoint's URL shown without user info, and its secrets blotted out."""
    text = text.replace(config.base_url, config.endpoint)
    password = urlsplit(config.base_url).password
    if password:
        text = text.replace(password, "***")
    return config.redact(text)


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
            "endpoint",
            str,
            "the endpoint, by the name the administrator configured it under",
            default=DEFAULT_ENDPOINT,
            recorded=False,
            cli="--endpoint",
            choices_from="endpoint_choices",
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
