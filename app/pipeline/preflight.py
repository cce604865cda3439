"""Checks before a run starts: is everything its engines need there (e.g. does each endpoint
answer and serve the model)? Each engine says how in its spec.

An endpoint is asked only where this process's settings put it: a run names endpoints, and the
engine resolves the name from the environment given here (never from the run's parameters).
"""

import json

from app.config import Settings
from app.errors import EngineUnavailable
from app.pipeline.engines import engine_environment
from app.pipeline.run_config import RunConfig
from models.base import EngineNotAvailable
from models.registry import engine_spec


def check_engines(config: RunConfig, settings: Settings) -> None:
    """Run each stage engine's preflight once per distinct set of parameters."""
    checked: set[tuple[str, str]] = set()
    for stage in config.stages:
        spec = engine_spec(stage.engine)
        key = (stage.engine, json.dumps(stage.parameters, sort_keys=True))
        if spec.preflight is None or key in checked:
            continue
        checked.add(key)
        try:
            spec.preflight(stage.parameters, engine_environment(spec, settings))
        except EngineNotAvailable as exc:
            raise EngineUnavailable(f"{stage.stage} stage: {exc}") from exc
