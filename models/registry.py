"""Engines by name, built from a run's recorded parameters, one instance per process."""

import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from models.base import Engine, EngineNotAvailable


def _tesseract(parameters: Mapping[str, Any]) -> Engine:
    from models.tesseract import TesseractConfig, TesseractEngine

    allowed = {"languages", "psm", "oem", "timeout_s", "binary"}
    return TesseractEngine(TesseractConfig(**{k: v for k, v in parameters.items() if k in allowed}))


def _rules(_parameters: Mapping[str, Any]) -> Engine:
    from models.rules_engine import RulesEngine

    return RulesEngine()


FACTORIES: dict[str, Callable[[Mapping[str, Any]], Engine]] = {
    "tesseract": _tesseract,
    "rules": _rules,
}


def create_engine(name: str, parameters: Mapping[str, Any]) -> Engine:
    """A new engine instance; unknown names are an error."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise EngineNotAvailable(f"unknown engine {name!r} (known: {', '.join(sorted(FACTORIES))})")
    return factory(parameters)


@lru_cache(maxsize=16)
def _cached(name: str, parameters_json: str) -> Engine:
    return create_engine(name, json.loads(parameters_json))


def get_engine(name: str, parameters: Mapping[str, Any]) -> Engine:
    """The process's engine for (name, parameters): models load once per worker process."""
    return _cached(name, json.dumps(dict(parameters), sort_keys=True))
