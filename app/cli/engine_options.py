"""`histocr process`'s engine options, derived from the engines' specs."""

from typing import Any

import click

from models.registry import engine_specs
from models.spec import Parameter


def parameters_of(engine: str) -> tuple[Parameter, ...]:
    """The parameters an engine takes (none for an unknown engine: the run refuses it)."""
    spec = engine_specs().get(engine)
    return spec.parameters if spec else ()


def command_line_parameters() -> dict[str, Parameter]:
    """The engine parameters `histocr process` takes as options, by option name (from the
    engines' specs: a parameter of several engines is one option)."""
    options: dict[str, Parameter] = {}
    for spec in engine_specs().values():
        for parameter in spec.parameters:
            if parameter.cli and parameter.cli not in options:
                options[parameter.cli] = parameter
    return options


def engines_for(stage: str) -> str:
    """The engines that can run a stage, for help texts."""
    return ", ".join(s.name for s in engine_specs().values() if stage in s.stages)


def engine_options(command: Any) -> Any:
    """Add one click option per command-line engine parameter."""
    for flag, parameter in sorted(command_line_parameters().items(), reverse=True):
        engines = [s.name for s in engine_specs().values() if s.parameter(parameter.name)]
        kind: Any = click.Choice(parameter.choices) if parameter.choices else parameter.kind
        # Configured values (endpoint names) are checked against this machine's settings.
        default = (
            f"default {parameter.default}"
            if parameter.choices_from
            else f"default HISTOCR_{engines[0].upper()}_{parameter.name.upper()}"
        )
        command = click.option(
            flag,
            f"param_{parameter.name}",
            type=kind,
            default=None,
            help=f"{parameter.description[:1].upper()}{parameter.description[1:]} "
            f"({', '.join(engines)}; {default}).",
        )(command)
    return command


def check_options_apply(parameters: dict[str, Any], engines: list[str | None]) -> None:
    """An engine option that no engine of the run takes is a mistake, not something to skip."""
    taken = {p.name for engine in engines if engine for p in parameters_of(engine)}
    unused = sorted(set(parameters) - taken)
    if unused:
        flags = {p.name: flag for flag, p in command_line_parameters().items()}
        raise click.UsageError(
            f"{', '.join(flags[name] for name in unused)}: no engine of this run takes it "
            f"(engines: {', '.join(e for e in engines if e)})"
        )
