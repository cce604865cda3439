"""What the service knows about each engine without loading it: stages, queue, batch size."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.config import Settings


@dataclass(frozen=True)
class EngineInfo:
    """Static facts about an engine, used to validate and route runs."""

    name: str
    stages: tuple[str, ...]
    queue: str
    batch_size: int
    description: str
    #: Whether the engine follows the stage's prompt (mLLMs), so the run records it.
    prompted: bool = False


CATALOGUE: dict[str, EngineInfo] = {
    "tesseract": EngineInfo(
        name="tesseract",
        stages=("ocr",),
        queue="cpu",
        batch_size=1,
        description="Tesseract OCR, offline (Fraktur + German models)",
    ),
    "import": EngineInfo(
        name="import",
        stages=("ocr",),
        queue="cpu",
        batch_size=16,
        description="Imported text: the transcription of an uploaded .txt document",
    ),
    "openai": EngineInfo(
        name="openai",
        stages=("ocr", "correct", "extract"),
        queue="llm",
        batch_size=64,
        description="Any OpenAI-compatible chat endpoint with image input "
        "(vLLM server, Ollama, OpenAI, Gemini)",
        prompted=True,
    ),
    "transformers": EngineInfo(
        name="transformers",
        stages=("ocr", "correct", "extract"),
        queue="gpu",
        batch_size=8,
        description="A local Hugging Face vision-language model (Qwen2-VL family), CPU or GPU",
        prompted=True,
    ),
    "vllm": EngineInfo(
        name="vllm",
        stages=("ocr", "correct", "extract"),
        queue="gpu",
        batch_size=256,
        description="A vision-language model in-process with vLLM on a GPU worker",
        prompted=True,
    ),
    "rules": EngineInfo(
        name="rules",
        stages=("extract",),
        queue="cpu",
        batch_size=8,
        description="Offline rules parser for comma-separated directory lines",
    ),
}


def engines_for(stage: str) -> list[EngineInfo]:
    """The engines that can serve `stage`."""
    return [info for info in CATALOGUE.values() if stage in info.stages]


def default_parameters(engine: str, settings: Settings) -> dict[str, Any]:
    """The parameters a run records for an engine when the request names none."""
    if engine == "tesseract":
        return {
            "languages": settings.tesseract.languages,
            "psm": settings.tesseract.psm,
            "oem": settings.tesseract.oem,
            "timeout_s": settings.tesseract.timeout_s,
        }
    if engine == "openai":
        openai = settings.openai
        return {
            "base_url": openai.base_url,
            "model": openai.model,
            "temperature": openai.temperature,
            "max_tokens": openai.max_tokens,
            "structured_output": openai.structured_output,
            "image_max_side": openai.image_max_side,
            "image_format": openai.image_format,
        }
    if engine in ("transformers", "vllm"):
        local = settings.transformers if engine == "transformers" else settings.vllm
        return {
            "model": local.model,
            "max_new_tokens": local.max_new_tokens,
            "temperature": local.temperature,
            "image_max_side": local.image_max_side,
        }
    return {}


def batch_size(engine: str, settings: Settings) -> int:
    """Pages per task: one for Tesseract, many for engines that batch or run concurrently."""
    if engine == "openai":
        return settings.openai.batch_size
    if engine == "transformers":
        return settings.transformers.batch_size
    if engine == "vllm":
        return settings.vllm.batch_size
    return CATALOGUE[engine].batch_size


def engine_environment(
    engine: str, parameters: Mapping[str, Any], settings: Settings
) -> dict[str, Any]:
    """This machine's settings for an engine (paths, limits, keys): never recorded with a run."""
    if engine == "tesseract":
        return {"binary": settings.tesseract.binary}
    if engine == "openai":
        openai = settings.openai
        key_variable = parameters.get("api_key_env")
        key = os.environ.get(key_variable) if key_variable else None
        if key is None and openai.api_key is not None:
            key = openai.api_key.get_secret_value()
        return {
            # The run records which endpoint it used; the key stays on this machine.
            "base_url": parameters.get("base_url") or openai.base_url,
            "api_key": key,
            "max_in_flight": openai.max_in_flight,
            "timeout_s": openai.timeout_s,
            "max_attempts": openai.max_attempts,
            "max_invalid_attempts": openai.max_invalid_attempts,
            "image_cache_dir": str(settings.image_cache_dir),
        }
    if engine in ("transformers", "vllm"):
        local = settings.transformers if engine == "transformers" else settings.vllm
        return local.model_dump(
            exclude={"model", "max_new_tokens", "temperature", "image_max_side"}
        )
    return {}
