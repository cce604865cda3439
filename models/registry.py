"""Engines by name, one instance per process and configuration.

An engine is built from two things: the parameters a run recorded (they decide the output and
are stored with every result) and the machine's environment (binary paths, endpoints, API keys:
they differ per worker, and secrets among them must never be stored).
"""

import json
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from models.base import Engine, EngineNotAvailable

Factory = Callable[[Mapping[str, Any], Mapping[str, Any]], Engine]


def _tesseract(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> Engine:
    from models.tesseract import TesseractConfig, TesseractEngine

    allowed = {"languages", "psm", "oem", "timeout_s"}
    config = {k: v for k, v in parameters.items() if k in allowed}
    if environment.get("binary"):
        config["binary"] = environment["binary"]
    return TesseractEngine(TesseractConfig(**config))


def _rules(_parameters: Mapping[str, Any], _environment: Mapping[str, Any]) -> Engine:
    from models.rules_engine import RulesEngine

    return RulesEngine()


def _imported(_parameters: Mapping[str, Any], _environment: Mapping[str, Any]) -> Engine:
    from models.imported import ImportedTextEngine

    return ImportedTextEngine()


def _openai(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> Engine:
    from models.openai_engine import OpenAIEngine, openai_config

    return OpenAIEngine(openai_config(parameters, environment))


def _transformers(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> Engine:
    from models.transformers_engine import TransformersEngine, config_from

    return TransformersEngine(config_from(parameters, environment))


def _vllm(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> Engine:
    from models.vllm_engine import VLLMEngine, config_from

    return VLLMEngine(config_from(parameters, environment))


FACTORIES: dict[str, Factory] = {
    "transformers": _transformers,
    "vllm": _vllm,
    "openai": _openai,
    "tesseract": _tesseract,
    "rules": _rules,
    "import": _imported,
}


def create_engine(
    name: str, parameters: Mapping[str, Any], environment: Mapping[str, Any] | None = None
) -> Engine:
    """A new engine instance; unknown names are an error."""
    factory = FACTORIES.get(name)
    if factory is None:
        raise EngineNotAvailable(f"unknown engine {name!r} (known: {', '.join(sorted(FACTORIES))})")
    return factory(parameters, environment or {})


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
