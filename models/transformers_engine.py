"""A local Hugging Face vision-language model (Qwen2-VL / Qwen2.5-VL / olmOCR style), CPU or GPU.

The model and processor load once per engine instance, on first use (the registry keeps one
instance per worker process and configuration). Requests run in batches of `batch_size` with
left padding; greedy decoding when the temperature is 0.

What each result records:
- `tokens_in`: the prompt's tokens after the processor expanded the image into vision tokens;
  `tokens_out`: the new tokens up to and including the end-of-sequence token.
- `latency_s`: the request's own preparation (reading and resizing its page, the chat
  template) plus an even share of its batch's wall time (processor, generation, decoding), so
  that the latencies of a run add up to the time the engine was busy; `raw` carries the
  batch's size and whole wall time.
- `finish_reason`: "stop" when the model ended the answer itself, "length" when it ran into
  `max_new_tokens`.
Structured output: plain transformers has no guided decoding, so a request's JSON schema is not
enforced here; the engine returns the text and the stage validates it (as for every engine).
"""

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_settings import SettingsConfigDict

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.chat import (
    IMAGE_PART,
    LOCAL_MESSAGE_FORMAT,
    LocalModelSettings,
    chat_messages,
    config_values,
    load_page_image,
    local_model_spec,
    model_source,
)

INSTALL_HINT = "pip install 'histocr[transformers]'"
DTYPES = ("auto", "float32", "bfloat16", "float16")


class TransformersSettings(LocalModelSettings):
    """The `transformers` engine on this machine (CPU or GPU)."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_TRANSFORMERS_", extra="ignore")

    device: str = "auto"


@dataclass(frozen=True)
class TransformersConfig:
    """Which model, where it runs, and how it generates."""

    #: Hugging Face hub id or folder; the name recorded with every result.
    model: str
    #: Machine-local folder to load the model from instead of `model` (not recorded).
    model_path: str | None = None
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", "cuda:1", …
    dtype: str = "auto"  # "auto": bfloat16 on a GPU, float32 on the CPU
    max_new_tokens: int = 4096
    #: Forces at least this many new tokens (benchmarks only; 0 in production).
    min_new_tokens: int = 0
    temperature: float = 0.0  # 0 means greedy decoding
    #: None keeps the model's own generation default.
    repetition_penalty: float | None = None
    image_max_side: int = 1288
    batch_size: int = 4
    #: Whether a hub id may be downloaded; off by default, so loading never leaves the machine.
    allow_downloads: bool = False
    attn_implementation: str | None = None  # e.g. "sdpa", "flash_attention_2"

    def __post_init__(self) -> None:
        if not self.model:
            raise EngineNotAvailable("the transformers engine needs a model (hub id or folder)")
        if self.dtype not in DTYPES:
            raise EngineNotAvailable(f"unknown dtype {self.dtype!r} (known: {', '.join(DTYPES)})")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise EngineNotAvailable("batch_size and max_new_tokens must be at least 1")


@dataclass(frozen=True)
class _Prepared:
    """One request ready for the processor: its place in the batch, prompt text and image."""

    index: int
    text: str
    image: Any
    seconds: float


@dataclass
class _Loaded:
    """The model, its processor and the generation settings, once loaded."""

    model: Any
    processor: Any
    device: str
    eos_ids: frozenset[int]
    generation: dict[str, Any]


class TransformersEngine:
    """Batched generation with `AutoModelForImageTextToText` and the model's chat template."""

    name = "transformers"

    def __init__(self, config: TransformersConfig) -> None:
        self.config = config
        self._loaded: _Loaded | None = None
        self._lock = threading.Lock()

    @classmethod
    def with_model(
        cls, config: TransformersConfig, model: Any, processor: Any
    ) -> "TransformersEngine":
        """An engine around a model already in memory (benchmarks of random models)."""
        engine = cls(config)
        engine._loaded = _prepare(config, model, processor, str(model.device))
        return engine

    def describe(self) -> dict[str, Any]:
        """The model and the parameters that decide the output."""
        return {
            "model": self.config.model,
            "max_new_tokens": self.config.max_new_tokens,
            "temperature": self.config.temperature,
            "repetition_penalty": self.config.repetition_penalty,
            "image_max_side": self.config.image_max_side,
            "dtype": self.config.dtype,
            "message_format": LOCAL_MESSAGE_FORMAT,
        }

    def load(self) -> None:
        """Load the model now (a worker may warm up before its first batch)."""
        self._model()

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """Generate for every request, `batch_size` at a time; one outcome per request, in order."""
        loaded = self._model()
        outcomes: list[EngineResult | EngineError] = []
        for start in range(0, len(requests), self.config.batch_size):
            chunk = requests[start : start + self.config.batch_size]
            outcomes.extend(self._run_chunk(loaded, chunk))
        return outcomes

    def _model(self) -> _Loaded:
        with self._lock:
            if self._loaded is None:
                self._loaded = _load(self.config)
            return self._loaded

    def _run_chunk(
        self, loaded: _Loaded, requests: Sequence[EngineRequest]
    ) -> list[EngineResult | EngineError]:
        """Prepare each request (a bad image fails only its own request), then generate."""
        outcomes: list[EngineResult | EngineError | None] = [None] * len(requests)
        prepared: list[_Prepared] = []
        for index, request in enumerate(requests):
            try:
                prepared.append(self._prepare(loaded, index, request))
            except EngineError as exc:
                outcomes[index] = exc
        for indices, results in self._generate_split(loaded, prepared):
            for index, result in zip(indices, results, strict=True):
                outcomes[index] = result
        return [outcome for outcome in outcomes if outcome is not None]

    def _prepare(self, loaded: _Loaded, index: int, request: EngineRequest) -> _Prepared:
        started = time.perf_counter()
        image = None
        if request.image_path is not None:
            image = load_page_image(Path(request.image_path), self.config.image_max_side)
        messages = chat_messages(request, image_part=IMAGE_PART if image is not None else None)
        text = loaded.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        return _Prepared(index, text, image, time.perf_counter() - started)

    def _generate_split(
        self, loaded: _Loaded, prepared: list[_Prepared]
    ) -> Iterator[tuple[list[int], list[EngineResult | EngineError]]]:
        """Generate; when the GPU runs out of memory, halve the batch and try again."""
        if not prepared:
            return
        indices = [p.index for p in prepared]
        try:
            results = self._generate(loaded, prepared)
        except Exception as exc:  # a failed batch fails its requests, visibly and retryably
            out_of_memory = _is_out_of_memory(exc)
            if out_of_memory:
                _free_cuda_cache()
            if out_of_memory and len(prepared) > 1:
                half = len(prepared) // 2
                yield from self._generate_split(loaded, prepared[:half])
                yield from self._generate_split(loaded, prepared[half:])
                return
            error = EngineError(f"generation failed: {type(exc).__name__}: {exc}")
            results = [error] * len(prepared)
        yield indices, results

    def _generate(
        self, loaded: _Loaded, prepared: list[_Prepared]
    ) -> list[EngineResult | EngineError]:
        import torch

        started = time.perf_counter()
        texts = [p.text for p in prepared]
        images = [p.image for p in prepared if p.image is not None]
        inputs = loaded.processor(
            text=texts, images=images or None, padding=True, return_tensors="pt"
        ).to(loaded.device)
        with torch.inference_mode():
            output = loaded.model.generate(**inputs, **loaded.generation)
        prompt_length = inputs["input_ids"].shape[1]
        tokens_in = inputs["attention_mask"].sum(dim=1).tolist()
        new_tokens = output[:, prompt_length:].tolist()
        decoded = [_cut_at_eos(row, loaded.eos_ids) for row in new_tokens]
        answers = loaded.processor.batch_decode(
            [tokens for tokens, _ in decoded], skip_special_tokens=True
        )
        batch_latency = time.perf_counter() - started
        raw = {"batch_size": len(prepared), "batch_latency_s": round(batch_latency, 4)}
        return [
            EngineResult(
                text=answer,
                model=self.config.model,
                latency_s=request.seconds + batch_latency / len(prepared),
                finish_reason="stop" if stopped else "length",
                tokens_in=int(count_in),
                tokens_out=len(tokens) + (1 if stopped else 0),
                raw=raw,
            )
            for request, answer, (tokens, stopped), count_in in zip(
                prepared, answers, decoded, tokens_in, strict=True
            )
        ]


def _cut_at_eos(tokens: list[int], eos_ids: frozenset[int]) -> tuple[list[int], bool]:
    """The answer's tokens before the first end-of-sequence token, and whether there was one."""
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[:position], True
    return tokens, False


def _load(config: TransformersConfig) -> _Loaded:
    """Import, resolve device and dtype, load processor and model; clear errors for each step."""
    try:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:
        raise EngineNotAvailable(
            f"the transformers engine needs torch and transformers ({exc}): {INSTALL_HINT}"
        ) from exc
    device = _device(config.device, torch)
    source = model_source(config.model, config.model_path)
    options: dict[str, Any] = {"local_files_only": not config.allow_downloads}
    try:
        processor = AutoProcessor.from_pretrained(source, **options)
        model: Any = AutoModelForImageTextToText.from_pretrained(
            source,
            dtype=_dtype(config.dtype, device, torch),
            attn_implementation=config.attn_implementation,
            **options,
        )
    except (OSError, ValueError) as exc:
        downloads = "" if config.allow_downloads else " (downloads are off: load from a folder)"
        raise EngineNotAvailable(
            f"cannot load model {config.model!r} from {source!r}{downloads}: {exc}"
        ) from exc
    # Loaded on the CPU, then moved: device_map would need `accelerate` for no gain here.
    model.to(device).eval()
    return _prepare(config, model, processor, device)


def _prepare(config: TransformersConfig, model: Any, processor: Any, device: str) -> _Loaded:
    """Left padding for batched generation, the end-of-sequence ids and the generate() kwargs."""
    tokenizer = processor.tokenizer
    tokenizer.padding_side = "left"
    defaults = model.generation_config
    eos = defaults.eos_token_id if defaults.eos_token_id is not None else tokenizer.eos_token_id
    eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos_ids)
    generation: dict[str, Any] = {"max_new_tokens": config.max_new_tokens, "pad_token_id": pad}
    if config.temperature > 0:
        generation.update(do_sample=True, temperature=config.temperature)
    else:
        # Greedy: also clear the model's sampling defaults so generate() does not warn about them.
        generation.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if config.min_new_tokens:
        generation["min_new_tokens"] = min(config.min_new_tokens, config.max_new_tokens)
    if config.repetition_penalty is not None:
        generation["repetition_penalty"] = config.repetition_penalty
    return _Loaded(model, processor, device, eos_ids, generation)


def _device(requested: str, torch: Any) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise EngineNotAvailable(f"device {requested!r} requested but torch sees no CUDA GPU")
    return requested


def _dtype(name: str, device: str, torch: Any) -> Any:
    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, name)


def _is_out_of_memory(exc: Exception) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def _free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def config_from(
    parameters: Mapping[str, Any], environment: Mapping[str, Any]
) -> TransformersConfig:
    """A config from a run's recorded parameters and this machine's environment."""
    values = config_values(TransformersConfig, parameters, environment)
    if "max_new_tokens" not in values and "max_tokens" in parameters:
        values["max_new_tokens"] = parameters["max_tokens"]  # the openai engine's name for it
    return TransformersConfig(**values)


def create_engine(
    parameters: Mapping[str, Any], environment: Mapping[str, Any]
) -> TransformersEngine:
    """The engine for a run's parameters on this machine (model folder, device)."""
    return TransformersEngine(config_from(parameters, environment))


SPEC = local_model_spec(
    name="transformers",
    description="A local Hugging Face vision-language model (Qwen2-VL family), CPU or GPU",
    create=create_engine,
    settings=TransformersSettings,
    batch_size=8,
)
