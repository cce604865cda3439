"""A run's pipeline configuration: validated once, then stored unchanged with the run."""

from collections.abc import Sequence
from typing import Any

from app.config import Settings
from app.errors import InvalidRequest
from app.pipeline.engines import CATALOGUE, default_parameters, engines_for

STAGE_ORDER = ("ocr", "correct", "extract")
CONFIG_VERSION = 1

_ALLOWED_PARAMETERS = {
    "tesseract": {"languages": str, "psm": int, "oem": int, "timeout_s": float},
    "rules": {},
    "import": {},
}


def build_run_config(
    *,
    stages: Sequence[dict[str, Any]],
    schema_fields: Sequence[str],
    settings: Settings,
) -> dict[str, Any]:
    """Check the requested stages and record them with every default filled in."""
    if not stages:
        raise InvalidRequest("a run needs at least one stage")
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
        specs.append(_stage_spec(stage, requested, schema_fields, settings))
    if specs[0]["stage"] != "ocr":
        raise InvalidRequest("the first stage must be ocr")
    return {
        "version": CONFIG_VERSION,
        "render_dpi": settings.render_dpi,
        "schema_fields": list(schema_fields),
        "stages": specs,
    }


def _stage_spec(
    stage: str, requested: dict[str, Any], schema_fields: Sequence[str], settings: Settings
) -> dict[str, Any]:
    engine = requested.get("engine")
    info = CATALOGUE.get(str(engine))
    if info is None or stage not in info.stages:
        names = ", ".join(e.name for e in engines_for(stage)) or "none yet"
        raise InvalidRequest(f"engine {engine!r} cannot run stage {stage!r} (engines: {names})")
    parameters = default_parameters(info.name, settings)
    parameters.update(_checked_parameters(info.name, requested.get("parameters") or {}))
    return {
        "stage": stage,
        "engine": info.name,
        "parameters": parameters,
        "prompt_version": None,
        "source": None,
        "fields": list(schema_fields) if stage == "extract" else [],
        "queue": info.queue,
        "batch_size": info.batch_size,
    }


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
    *, ocr: str = "tesseract", extract: str | None = "rules"
) -> list[dict[str, Any]]:
    """The default pipeline: Tesseract OCR, then the rules parser."""
    stages: list[dict[str, Any]] = [{"stage": "ocr", "engine": ocr}]
    if extract:
        stages.append({"stage": "extract", "engine": extract})
    return stages
