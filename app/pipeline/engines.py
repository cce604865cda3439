"""The engines on this installation: their specs joined with this machine's settings."""

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings

from app.config import Settings
from app.errors import InvalidRequest
from models.registry import engine_spec, engine_specs
from models.spec import ConfiguredChoices, EngineSpec, Parameter, ParameterInvalid


def _spec(engine: EngineSpec | str) -> EngineSpec:
    return engine if isinstance(engine, EngineSpec) else engine_spec(engine)


def configured_choices(spec: EngineSpec, settings: Settings) -> dict[str, ConfiguredChoices]:
    """The values this installation allows for each parameter that has them in its settings
    (e.g. the endpoints an administrator configured), each with the defaults it implies."""
    own = settings.engine_settings(spec.name)
    found: dict[str, ConfiguredChoices] = {}
    for parameter in spec.parameters:
        if parameter.choices_from:
            found[parameter.name] = getattr(own, parameter.choices_from)() if own else {}
    return found


def installed_parameters(spec: EngineSpec, settings: Settings) -> tuple[Parameter, ...]:
    """The engine's parameters with this installation's configured choices filled in."""
    choices = configured_choices(spec, settings)
    return tuple(
        replace(p, choices=tuple(choices[p.name])) if p.name in choices else p
        for p in spec.parameters
    )


def default_parameters(engine: EngineSpec | str, settings: Settings) -> dict[str, Any]:
    """The parameters a run records for an engine when the request names none.

    A parameter's default is the engine settings' value of the same name (HISTOCR_<ENGINE>_…),
    else the spec's own default.
    """
    spec = _spec(engine)
    own = settings.engine_settings(spec.name)
    return {p.name: getattr(own, p.name, p.default) for p in spec.parameters}


def run_parameters(spec: EngineSpec, given: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A run's parameters for an engine: this installation's defaults, overridden by what the
    run gives, each checked (InvalidRequest, a 422, for anything the engine does not take)."""
    values = default_parameters(spec, settings)
    parameters = {p.name: p for p in installed_parameters(spec, settings)}
    for name, value in given.items():
        if name not in parameters:
            raise InvalidRequest(_unknown_parameter(spec, name, parameters))
        try:
            values[name] = parameters[name].check(value)
        except ParameterInvalid as exc:
            raise InvalidRequest(str(exc)) from exc
    # A configured choice brings its own defaults (the chosen endpoint's model), unless given.
    for name, choices in configured_choices(spec, settings).items():
        implied = choices.get(str(values.get(name)), {})
        values.update({k: v for k, v in implied.items() if k not in given})
    if spec.needs_model and not values.get("model"):
        endpoint = values.get("endpoint")
        where = (
            f"HISTOCR_ENDPOINTS__{str(endpoint).upper()}__MODEL"
            if endpoint and parameters["endpoint"].default != endpoint
            else f"HISTOCR_{spec.name.upper()}_MODEL"
        )
        raise InvalidRequest(
            f"the {spec.name} engine needs a model: set {where} or the model parameter"
        )
    return {name: value for name, value in values.items() if value is not None}


def _unknown_parameter(spec: EngineSpec, name: str, parameters: dict[str, Parameter]) -> str:
    """Which parameters there are; where a parameter replaces a setting a run may not make
    (an endpoint's URL or key), the values it may take instead."""
    known = ", ".join(parameters) or "none"
    message = f"engine {spec.name!r} has no parameter {name!r} (parameters: {known})"
    for parameter in parameters.values():
        if parameter.choices_from and parameter.choices is not None:
            message += (
                f"; a run chooses the {parameter.name} by name, one of "
                f"{', '.join(str(c) for c in parameter.choices)}"
            )
    return message


def _plain(value: Any) -> Any:
    """A settings value as JSON-ready data, secrets revealed (the environment is never stored)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: _plain(item) for name, item in value}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def engine_environment(engine: EngineSpec | str, settings: Settings) -> dict[str, Any]:
    """This machine's settings for an engine (paths, limits, endpoints and their keys): never
    recorded with a run."""
    spec = _spec(engine)
    own: BaseSettings | None = settings.engine_settings(spec.name)
    environment: dict[str, Any] = {"image_cache_dir": str(settings.image_cache_dir)}
    if own is None:
        return environment
    run_parameters = {p.name for p in spec.parameters}
    for name, value in own:
        if name not in run_parameters:
            environment[name] = _plain(value)
    return environment


def batch_size(engine: EngineSpec | str, settings: Settings) -> int:
    """Pages per task: one for Tesseract, many for engines that batch or run concurrently."""
    spec = _spec(engine)
    own = settings.engine_settings(spec.name)
    return int(getattr(own, "batch_size", spec.batch_size))


def engines_public(settings: Settings) -> list[dict[str, Any]]:
    """Every engine as the API and the UI list it: stages, queue, parameters and defaults.

    A parameter whose values are configured (an endpoint) lists their names and the defaults
    each implies (its model), never the settings behind them (URLs, keys).
    """
    listed = []
    for spec in engine_specs().values():
        defaults = default_parameters(spec, settings)
        configured = configured_choices(spec, settings)
        parameters = []
        for parameter in installed_parameters(spec, settings):
            public = parameter.public(defaults[parameter.name])
            if parameter.name in configured:
                public["choice_defaults"] = {
                    choice: dict(implied) for choice, implied in configured[parameter.name].items()
                }
            parameters.append(public)
        listed.append(
            {
                "name": spec.name,
                "description": spec.description,
                "stages": list(spec.stages),
                "queue": spec.queue,
                "prompted": spec.prompted,
                "extract_inputs": list(spec.extract_inputs),
                "needs_model": spec.needs_model,
                "parameters": parameters,
            }
        )
    return listed
