"""What an engine declares about itself, once: the API, the CLI, the UI and a run's record
are all derived from its `EngineSpec`.

An engine module defines its settings class (this machine's configuration, from `HISTOCR_*`
variables), a `SPEC`, and is named in `models.registry.ENGINE_MODULES`; nothing else changes.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from models.base import Engine

#: Builds an engine from a run's parameters and this machine's environment (never recorded).
EngineFactory = Callable[[Mapping[str, Any], Mapping[str, Any]], Engine]
#: Called with the run parameters' defaults and the environment: after ingest stored a page
#: image (prepare it, e.g. encode it as an endpoint wants it), or when a worker starts.
PageHook = Callable[[Path, Mapping[str, Any], Mapping[str, Any]], None]
WorkerHook = Callable[[Mapping[str, Any], Mapping[str, Any]], None]
#: Checks, before a run starts, that what the run needs is there; raises EngineNotAvailable.
Preflight = Callable[[Mapping[str, Any], Mapping[str, Any]], None]
#: What a `choices_from` method returns: each allowed value, with the defaults it implies.
ConfiguredChoices = Mapping[str, Mapping[str, Any]]

STAGES = ("ocr", "correct", "extract")
KINDS: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


class ParameterInvalid(ValueError):
    """A value a run gave for a parameter that the parameter does not accept."""


@dataclass(frozen=True)
class Parameter:
    """One parameter a run may set for an engine.

    Its default is the engine settings' attribute of the same name when there is one (so an
    administrator sets it with `HISTOCR_<ENGINE>_<NAME>`), else `default`.
    """

    name: str
    kind: type
    description: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    #: Decides the output: compared between runs and recorded with every result. False for
    #: where or how a run is served (an endpoint), which the run keeps but results do not.
    recorded: bool = True
    #: The option of `histocr process` that sets it (None: not on the command line).
    cli: str | None = None
    #: A method of the engine's settings that gives the values this installation allows, each
    #: with the defaults it implies for other parameters (the endpoints an administrator
    #: configured, each with its default model). Checked like `choices`, listed by the API.
    choices_from: str | None = None

    def check(self, value: Any) -> Any:
        """The value converted to the parameter's type; ParameterInvalid when it does not fit.

        Numbers may come as numeric strings (HTML forms send strings); booleans, lists and
        objects are never taken for numbers or text.
        """
        if value is None:
            return None
        expected = f"parameter {self.name!r} must be {self.kind.__name__} ({KINDS[self.kind]})"
        if isinstance(value, list | dict) or (self.kind is not bool and isinstance(value, bool)):
            raise ParameterInvalid(expected)
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ParameterInvalid(expected)
            return value
        try:
            converted = self.kind(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ParameterInvalid(expected) from exc
        if self.kind is int and isinstance(value, float) and converted != value:
            raise ParameterInvalid(expected)
        if self.kind is float and not math.isfinite(converted):  # JSON has no NaN or infinity
            raise ParameterInvalid(expected)
        self._check_range(converted)
        return converted

    def _check_range(self, value: Any) -> None:
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(str(c) for c in self.choices)
            raise ParameterInvalid(f"parameter {self.name!r} must be one of {allowed}")
        if self.minimum is not None and value < self.minimum:
            raise ParameterInvalid(f"parameter {self.name!r} must be at least {self.minimum:g}")
        if self.maximum is not None and value > self.maximum:
            raise ParameterInvalid(f"parameter {self.name!r} must be at most {self.maximum:g}")

    def public(self, default: Any) -> dict[str, Any]:
        """The parameter as the API lists it (with this installation's default)."""
        return {
            "name": self.name,
            "type": KINDS[self.kind],
            "description": self.description,
            "default": default,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices) if self.choices is not None else None,
            "recorded": self.recorded,
        }


@dataclass(frozen=True)
class EngineSpec:
    """Everything the service knows about an engine without loading it."""

    name: str
    description: str
    stages: tuple[str, ...]
    #: The Celery queue its tasks go to: cpu, llm (HTTP to a model server) or gpu.
    queue: str
    create: EngineFactory
    parameters: tuple[Parameter, ...] = ()
    #: This machine's settings for the engine (env prefix HISTOCR_<NAME>_), if it has any.
    settings: type[BaseSettings] | None = None
    #: Pages per task unless the settings have a `batch_size`.
    batch_size: int = 1
    #: Follows the stage's prompt (an mLLM): the run records the prompt and message format.
    prompted: bool = False
    #: How prompts and images are laid out in messages: recorded like a prompt version.
    message_format: str | None = None
    #: Runs need a non-empty `model` parameter.
    needs_model: bool = False
    #: What extraction may read: the text, the page image, or both.
    extract_inputs: tuple[str, ...] = ("text",)
    on_page_stored: PageHook | None = None
    on_worker_ready: WorkerHook | None = None
    preflight: Preflight | None = None

    def __post_init__(self) -> None:
        unknown = set(self.stages) - set(STAGES)
        if unknown:
            raise ValueError(f"engine {self.name!r}: unknown stage(s) {sorted(unknown)}")
        names = [p.name for p in self.parameters]
        if len(names) != len(set(names)):
            raise ValueError(f"engine {self.name!r}: a parameter is declared twice")

    def parameter(self, name: str) -> Parameter | None:
        """The parameter called `name`, if the engine has one."""
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def recorded_parameters(self) -> tuple[str, ...]:
        """The names of the parameters that decide the output."""
        return tuple(p.name for p in self.parameters if p.recorded)
