"""A run's pipeline configuration: validated once, then stored unchanged with the run."""

from collections.abc import Sequence
from typing import Any

from app.config import Settings
from app.errors import InvalidRequest
from app.pipeline.engines import CATALOGUE, batch_size, default_parameters, engines_for
from models.prompts import Prompt, latest_version, load_prompt

STAGE_ORDER = ("ocr", "correct", "extract")
CONFIG_VERSION = 1

_ALLOWED_PARAMETERS: dict[str, dict[str, type]] = {
    "tesseract": {"languages": str, "psm": int, "oem": int, "timeout_s": float},
    "rules": {},
    "import": {},
    "openai": {
        "base_url": str,
        "model": str,
        "temperature": float,
        "max_tokens": int,
        "structured_output": str,
        "image_max_side": int,
        "image_format": str,
        # The name of the environment variable that holds the key on the workers, never the key.
        "api_key_env": str,
    },
}
_LOCAL_MODEL_PARAMETERS: dict[str, type] = {
    "model": str,
    "max_new_tokens": int,
    "temperature": float,
    "image_max_side": int,
    "repetition_penalty": float,
}
_ALLOWED_PARAMETERS["transformers"] = _LOCAL_MODEL_PARAMETERS
_ALLOWED_PARAMETERS["vllm"] = _LOCAL_MODEL_PARAMETERS | {"seed": int}
STRUCTURED_OUTPUT_MODES = ("json_schema", "json_object+schema", "prompt-only")


def build_run_config(
    *,
    stages: Sequence[dict[str, Any]],
    schema_fields: Sequence[str],
    settings: Settings,
) -> dict[str, Any]:
    """Check the requested stages and record them with every default filled in."""
    if not stages:
        raise InvalidRequest("a run needs at least one stage")
    if stages[0].get("stage") != "ocr":
        raise InvalidRequest("the first stage must be ocr")
    seen: list[str] = []
    specs = []
    for requested in stages:
        stage = requested.get("stage")
        if stage not in STAGE_ORDER:
            raise InvalidRequest(f"unknown stage {stage!r} (stages: {', '.join(STAGE_ORDER)})")
        if stage in seen:
            raise InvalidRequest(f"stage {stage!r} appears twice")
        if seen and STAGE_ORDER.index(stage) < STAGE_ORDER.index(seen[-1]):
            raise InvalidRequest(f"stages must run in the order {' → '.join(STAGE_ORDER)}")
        seen.append(stage)
        specs.append(_stage_spec(stage, requested, schema_fields, settings, seen[:-1]))
    return {
        "version": CONFIG_VERSION,
        "render_dpi": settings.render_dpi,
        "schema_fields": list(schema_fields),
        "stages": specs,
    }


def _stage_spec(
    stage: str,
    requested: dict[str, Any],
    schema_fields: Sequence[str],
    settings: Settings,
    previous: list[str],
) -> dict[str, Any]:
    engine = requested.get("engine")
    info = CATALOGUE.get(str(engine))
    if info is None or stage not in info.stages:
        names = ", ".join(e.name for e in engines_for(stage)) or "none yet"
        raise InvalidRequest(f"engine {engine!r} cannot run stage {stage!r} (engines: {names})")
    parameters = default_parameters(info.name, settings)
    parameters.update(_checked_parameters(info.name, requested.get("parameters") or {}))
    _check_engine_parameters(info.name, parameters)
    prompt = _prompt(stage, requested.get("prompt_version")) if info.prompted else None
    return {
        "stage": stage,
        "engine": info.name,
        "parameters": parameters,
        "prompt_version": prompt.version if prompt else None,
        "prompt": prompt.text if prompt else None,
        "source": _source(stage, requested.get("source"), previous),
        "fields": list(schema_fields) if stage == "extract" else [],
        "inputs": _inputs(stage, info.name, requested.get("inputs")),
        "queue": info.queue,
        "batch_size": batch_size(info.name, settings),
    }


def _prompt(stage: str, version: str | None) -> Prompt:
    try:
        return load_prompt(stage, version or latest_version(stage))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def _source(stage: str, requested: str | None, previous: list[str]) -> str | None:
    """The text stage a correction or extraction reads (default: the latest one before it)."""
    if stage == "ocr":
        return None
    text_stages = [s for s in previous if s in ("ocr", "correct")]
    if requested is None:
        return text_stages[-1]
    if requested not in text_stages:
        raise InvalidRequest(
            f"stage {stage!r} cannot read {requested!r}: it runs after {', '.join(text_stages)}"
        )
    return requested


def _inputs(stage: str, engine: str, requested: str | None) -> str | None:
    """What extraction reads: the text (default), the page image, or both (mLLMs only)."""
    if stage != "extract":
        if requested is not None:
            raise InvalidRequest("only the extract stage takes inputs")
        return None
    inputs = requested or "text"
    if inputs not in ("text", "image", "both"):
        raise InvalidRequest(f"inputs must be text, image or both, not {inputs!r}")
    if inputs != "text" and not CATALOGUE[engine].prompted:
        raise InvalidRequest(f"the {engine} engine extracts from text only")
    return inputs


def _check_engine_parameters(engine: str, parameters: dict[str, Any]) -> None:
    if engine in ("openai", "transformers", "vllm") and not parameters.get("model"):
        raise InvalidRequest(
            f"the {engine} engine needs a model: set HISTOCR_{engine.upper()}_MODEL "
            "or the model parameter"
        )
    if engine != "openai":
        return
    if parameters.get("structured_output") not in STRUCTURED_OUTPUT_MODES:
        raise InvalidRequest(
            f"structured_output must be one of {', '.join(STRUCTURED_OUTPUT_MODES)}"
        )
    if parameters.get("image_format") not in ("jpeg", "png"):
        raise InvalidRequest("image_format must be jpeg or png")


def _checked_parameters(engine: str, given: dict[str, Any]) -> dict[str, Any]:
    allowed = _ALLOWED_PARAMETERS.get(engine, {})
    checked: dict[str, Any] = {}
    for key, value in given.items():
        kind = allowed.get(key)
        if kind is None:
            raise InvalidRequest(
                f"engine {engine!r} has no parameter {key!r} (parameters: {', '.join(allowed)})"
            )
        try:
            checked[key] = kind(value)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(f"parameter {key!r} must be {kind.__name__}") from exc
    return checked


def default_stages(
    *, ocr: str = "tesseract", correct: str | None = None, extract: str | None = "rules"
) -> list[dict[str, Any]]:
    """The default pipeline: Tesseract OCR, then the rules parser (optionally a correction)."""
    stages: list[dict[str, Any]] = [{"stage": "ocr", "engine": ocr}]
    if correct:
        stages.append({"stage": "correct", "engine": correct})
    if extract:
        stages.append({"stage": "extract", "engine": extract})
    return stages
