"""The engines on this installation: their specs joined with this machine's settings."""

from typing import Any

from pydantic import SecretStr

from app.config import Settings
from models.registry import engine_spec, engine_specs
from models.spec import EngineSpec


def _spec(engine: EngineSpec | str) -> EngineSpec:
    return engine if isinstance(engine, EngineSpec) else engine_spec(engine)


def default_parameters(engine: EngineSpec | str, settings: Settings) -> dict[str, Any]:
    """The parameters a run records for an engine when the request names none.

    A parameter's default is the engine settings' value of the same name (HISTOCR_<ENGINE>_…),
    else the spec's own default.
    """
    spec = _spec(engine)
    own = settings.engine_settings(spec.name)
    return {p.name: getattr(own, p.name, p.default) for p in spec.parameters}


def engine_environment(engine: EngineSpec | str, settings: Settings) -> dict[str, Any]:
    """This machine's settings for an engine (paths, limits, keys): never recorded with a run."""
    spec = _spec(engine)
    own = settings.engine_settings(spec.name)
    environment: dict[str, Any] = {"image_cache_dir": str(settings.image_cache_dir)}
    if own is None:
        return environment
    run_parameters = {p.name for p in spec.parameters}
    for name, value in own:
        if name in run_parameters:
            continue
        environment[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return environment


def batch_size(engine: EngineSpec | str, settings: Settings) -> int:
    """Pages per task: one for Tesseract, many for engines that batch or run concurrently."""
    spec = _spec(engine)
    own = settings.engine_settings(spec.name)
    return int(getattr(own, "batch_size", spec.batch_size))


def engines_public(settings: Settings) -> list[dict[str, Any]]:
    """Every engine as the API and the UI list it: stages, queue, parameters and defaults."""
    listed = []
    for spec in engine_specs().values():
        defaults = default_parameters(spec, settings)
        listed.append(
            {
                "name": spec.name,
                "description": spec.description,
                "stages": list(spec.stages),
                "queue": spec.queue,
                "prompted": spec.prompted,
                "extract_inputs": list(spec.extract_inputs),
                "needs_model": spec.needs_model,
                "parameters": [p.public(defaults[p.name]) for p in spec.parameters],
            }
        )
    return listed
