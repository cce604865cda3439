"""Engines by name: their specs, and one engine instance per process and configuration.

An engine is built from two things: the parameters a run recorded (they decide the output and
are stored with every result) and the machine's environment (binary paths, endpoints, API keys:
they differ per worker, and secrets among them must never be stored).
"""

import importlib
import json
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from models.base import Engine, EngineNotAvailable
from models.spec import EngineSpec

#: The modules that declare an engine (`SPEC`); adding an engine = one module, named here.
ENGINE_MODULES = (
    "models.tesseract",
    "models.imported",
    "models.openai_spec",
    "models.transformers_engine",
    "models.vllm_engine",
    "models.rules_engine",
    "models.crf_engine",
)


@cache
def engine_specs() -> dict[str, EngineSpec]:
    """Every engine's spec by name, in the order above (engines load nothing heavy at import)."""
    specs: dict[str, EngineSpec] = {}
    for module in ENGINE_MODULES:
        spec: EngineSpec = importlib.import_module(module).SPEC
        specs[spec.name] = spec
    return specs


def engine_spec(name: str) -> EngineSpec:
    """The spec of the engine called `name`; EngineNotAvailable for an unknown name."""
    spec = engine_specs().get(name)
    if spec is None:
        known = ", ".join(engine_specs())
        raise EngineNotAvailable(f"unknown engine {name!r} (known: {known})")
    return spec


def create_engine(
    name: str, parameters: Mapping[str, Any], environment: Mapping[str, Any] | None = None
) -> Engine:
    """A new engine instance; unknown names are an error."""
    return engine_spec(name).create(parameters, environment or {})


@lru_cache(maxsize=16)
def _cached(name: str, parameters_json: str, environment_json: str) -> Engine:
    return create_engine(name, json.loads(parameters_json), json.loads(environment_json))


def get_engine(
    name: str, parameters: Mapping[str, Any], environment: Mapping[str, Any] | None = None
) -> Engine:
    """The process's engine for this configuration: models load once per worker process."""
    return _cached(
        name,
        json.dumps(dict(parameters), sort_keys=True),
        json.dumps(dict(environment or {}), sort_keys=True),
    )
