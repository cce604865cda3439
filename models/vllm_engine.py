"""In-process vLLM on a GPU worker (`gpu` queue, concurrency 1): one `generate` call per batch.

The model loads once per engine instance, on first use (the registry keeps one instance per
worker process and configuration). Prompts are the model's own chat template applied to the
same messages the `transformers` engine builds; page images travel as PIL images in
`multi_modal_data`. Requests with a JSON schema get guided decoding
(`StructuredOutputsParams(json=…)` in current vLLM, `GuidedDecodingParams(json=…)` before
v0.12); the stage still validates what comes back.

`latency_s` is the request's own preparation (page image, chat template) plus an even share
of the batch's `generate` time (as in the transformers engine); `tokens_in` counts the prompt
with the image's vision tokens, `tokens_out` the answer; `finish_reason` is vLLM's ("stop",
"length", or "abort").
"""

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.chat import (
    IMAGE_PART,
    LOCAL_MESSAGE_FORMAT,
    LOCAL_MODEL_PARAMETERS,
    LocalModelSettings,
    chat_messages,
    config_values,
    load_page_image,
    local_model_spec,
    model_source,
)
from models.spec import Parameter

INSTALL_HINT = "pip install 'histocr[gpu]' on a GPU machine"

#: Turns chat messages into the model's prompt text (its chat template, generation prompt on).
RenderPrompt = Callable[[list[dict[str, Any]]], str]


class VLLMSettings(LocalModelSettings):
    """The in-process `vllm` engine on this machine (GPU)."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_VLLM_", extra="ignore")

    batch_size: int = Field(default=256, ge=1)
    max_model_len: int = Field(default=16384, ge=512)
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    tensor_parallel_size: int = Field(default=1, ge=1)


@dataclass(frozen=True)
class VLLMConfig:
    """Which model, how vLLM holds it on the GPU, and how it generates."""

    #: Hugging Face hub id or folder; the name recorded with every result.
    model: str
    #: Machine-local folder to load the model from instead of `model` (not recorded).
    model_path: str | None = None
    max_tokens: int = 4096
    temperature: float = 0.0
    #: None keeps the model's own generation default.
    repetition_penalty: float | None = None
    seed: int = 0
    image_max_side: int = 1288
    dtype: str = "auto"
    #: Context length vLLM reserves per sequence (None: the model's own, often far too long).
    max_model_len: int | None = 16384
    gpu_memory_utilization: float = 0.9
    tensor_parallel_size: int = 1
    #: Pages per task; vLLM schedules them itself, so larger batches keep the GPU fuller.
    batch_size: int = 64
    allow_downloads: bool = False

    def __post_init__(self) -> None:
        if not self.model:
            raise EngineNotAvailable("the vllm engine needs a model (hub id or folder)")
        if self.max_tokens < 1:
            raise EngineNotAvailable("max_tokens must be at least 1")


@dataclass(frozen=True)
class PreparedRequest:
    """One request as vLLM takes it: the prompt (with image) and its sampling settings."""

    prompt: dict[str, Any]
    sampling: dict[str, Any]
    json_schema: Mapping[str, Any] | None


def prepare_request(
    request: EngineRequest, config: VLLMConfig, render: RenderPrompt
) -> PreparedRequest:
    """Translate a request: chat template applied, page image attached, sampling settings."""
    image = None
    if request.image_path is not None:
        image = load_page_image(Path(request.image_path), config.image_max_side)
    messages = chat_messages(request, image_part=IMAGE_PART if image is not None else None)
    prompt: dict[str, Any] = {"prompt": render(messages)}
    if image is not None:
        prompt["multi_modal_data"] = {"image": image}
    sampling: dict[str, Any] = {
        "temperature": config.temperature,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
    }
    if config.repetition_penalty is not None:
        sampling["repetition_penalty"] = config.repetition_penalty
    return PreparedRequest(prompt=prompt, sampling=sampling, json_schema=request.json_schema)


def structured_output(schema: Mapping[str, Any], sampling_module: ModuleType) -> dict[str, Any]:
    """The SamplingParams keyword for guided JSON, in this vLLM's dialect."""
    current = getattr(sampling_module, "StructuredOutputsParams", None)
    if current is not None:  # vLLM ≥ 0.10.2; the only one from 0.12 on
        return {"structured_outputs": current(json=dict(schema))}
    older = getattr(sampling_module, "GuidedDecodingParams", None)
    if older is not None:
        return {"guided_decoding": older(json=dict(schema))}
    raise EngineNotAvailable("this vLLM offers no guided decoding; upgrade vLLM")


def sampling_params(prepared: PreparedRequest, sampling_module: ModuleType) -> Any:
    """vLLM's SamplingParams for a prepared request (guided JSON when it has a schema)."""
    extra = {}
    if prepared.json_schema is not None:
        extra = structured_output(prepared.json_schema, sampling_module)
    return sampling_module.SamplingParams(**prepared.sampling, **extra)


def result_from_output(output: Any, *, model: str, latency_s: float, raw: Any) -> EngineResult:
    """An EngineResult from one of vLLM's RequestOutputs."""
    completion = output.outputs[0]
    return EngineResult(
        text=completion.text,
        model=model,
        latency_s=latency_s,
        finish_reason=completion.finish_reason or "abort",
        tokens_in=len(output.prompt_token_ids or []),
        tokens_out=len(completion.token_ids),
        raw=raw,
    )


@dataclass
class _Loaded:
    llm: Any
    render: RenderPrompt
    sampling_module: ModuleType


class VLLMEngine:
    """Batched generation with `vllm.LLM` in this process."""

    name = "vllm"

    def __init__(self, config: VLLMConfig) -> None:
        self.config = config
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @classmethod
    def with_llm(
        cls, config: VLLMConfig, llm: Any, render: RenderPrompt, sampling_module: ModuleType
    ) -> "VLLMEngine":
        """An engine around an `LLM` already built (tests, notebooks, benchmarks)."""
        engine = cls(config)
        engine._loaded = _Loaded(llm=llm, render=render, sampling_module=sampling_module)
        return engine

    def describe(self) -> dict[str, Any]:
        """The model and the parameters that decide the output."""
        return {
            "model": self.config.model,
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.temperature,
            "repetition_penalty": self.config.repetition_penalty,
            "seed": self.config.seed,
            "image_max_side": self.config.image_max_side,
            "dtype": self.config.dtype,
            "message_format": LOCAL_MESSAGE_FORMAT,
        }

    def load(self) -> None:
        """Load the model now (a worker may warm up before its first batch)."""
        self._model()

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """All requests in one `generate` call; one outcome per request, in order."""
        loaded = self._model()
        outcomes: list[EngineResult | EngineError | None] = [None] * len(requests)
        ready: list[tuple[int, PreparedRequest, float]] = []
        for index, request in enumerate(requests):
            started = time.perf_counter()
            try:
                prepared = prepare_request(request, self.config, loaded.render)
            except EngineError as exc:
                outcomes[index] = exc
                continue
            ready.append((index, prepared, time.perf_counter() - started))
        if ready:
            generated = self._generate(loaded, [prepared for _, prepared, _ in ready])
            for (index, _, seconds), outcome in zip(ready, generated, strict=True):
                if isinstance(outcome, EngineResult):
                    outcome = replace(outcome, latency_s=outcome.latency_s + seconds)
                outcomes[index] = outcome
        return [outcome for outcome in outcomes if outcome is not None]

    def _generate(
        self, loaded: _Loaded, prepared: list[PreparedRequest]
    ) -> list[EngineResult | EngineError]:
        """One call for the batch; if vLLM rejects it, each request alone, to find the bad one."""
        try:
            return self._generate_once(loaded, prepared)
        except EngineError:
            raise
        except Exception as exc:  # e.g. one prompt longer than max_model_len rejects the batch
            if len(prepared) == 1:
                return [EngineError(f"vLLM failed: {type(exc).__name__}: {exc}")]
        outcomes: list[EngineResult | EngineError] = []
        for single in prepared:
            outcomes.extend(self._generate(loaded, [single]))
        return outcomes

    def _generate_once(
        self, loaded: _Loaded, prepared: list[PreparedRequest]
    ) -> list[EngineResult | EngineError]:
        started = time.perf_counter()
        params = [sampling_params(p, loaded.sampling_module) for p in prepared]
        outputs = loaded.llm.generate(
            [p.prompt for p in prepared], sampling_params=params, use_tqdm=False
        )
        latency = time.perf_counter() - started
        raw = {"batch_size": len(prepared), "batch_latency_s": round(latency, 4)}
        return [
            result_from_output(
                output, model=self.config.model, latency_s=latency / len(prepared), raw=raw
            )
            for output in outputs
        ]

    def _model(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = _load(self.config)
            return self._loaded


def _load(config: VLLMConfig) -> _Loaded:
    try:
        import vllm
        from vllm import sampling_params as sampling_module
    except ImportError as exc:
        raise EngineNotAvailable(f"the vllm engine needs vLLM ({exc}): {INSTALL_HINT}") from exc
    source = _local_source(config)
    try:
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(source, local_files_only=True)
        llm = vllm.LLM(
            model=source,
            dtype=config.dtype,
            max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization,
            tensor_parallel_size=config.tensor_parallel_size,
            limit_mm_per_prompt={"image": 1},
            seed=config.seed,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise EngineNotAvailable(f"vLLM cannot load model {config.model!r}: {exc}") from exc

    def render(messages: list[dict[str, Any]]) -> str:
        return str(
            processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )

    return _Loaded(llm=llm, render=render, sampling_module=sampling_module)


def _local_source(config: VLLMConfig) -> str:
    """A folder here; a hub id is looked up in the local cache unless downloads are on."""
    source = model_source(config.model, config.model_path)
    if config.allow_downloads or Path(source).is_dir():
        return source
    from huggingface_hub import snapshot_download

    try:
        return str(snapshot_download(source, local_files_only=True))
    except Exception as exc:  # huggingface_hub raises several kinds for "not cached"
        raise EngineNotAvailable(
            f"model {source!r} is not on this machine (downloads are off): "
            f"set model_path to its folder or download it once ({exc})"
        ) from exc


def config_from(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> VLLMConfig:
    """A config from a run's recorded parameters and this machine's environment."""
    values = config_values(VLLMConfig, parameters, environment)
    if "max_tokens" not in values and "max_new_tokens" in parameters:
        values["max_tokens"] = parameters["max_new_tokens"]
    return VLLMConfig(**values)


def create_engine(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> VLLMEngine:
    """The engine for a run's parameters on this machine (model folder, GPU memory)."""
    return VLLMEngine(config_from(parameters, environment))


SPEC = local_model_spec(
    name="vllm",
    description="A vision-language model in-process with vLLM on a GPU worker",
    create=create_engine,
    settings=VLLMSettings,
    batch_size=256,
    parameters=(*LOCAL_MODEL_PARAMETERS, Parameter("seed", int, "sampling seed", minimum=0)),
)
