"""What the service knows about each engine without loading it: stages, queue, batch size."""

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
    return {}


def batch_size(engine: str, settings: Settings) -> int:
    """Pages per task: one for Tesseract, many for engines that batch or run concurrently."""
    if engine == "openai":
        return settings.openai.batch_size
    return CATALOGUE[engine].batch_size
