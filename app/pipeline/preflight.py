"""Checks before a run starts: is every endpoint it needs there, and does it serve the model?"""

from typing import Any

from app.config import Settings
from app.errors import EngineUnavailable
from app.pipeline.engines import engine_environment

# Light (an HTTP client and a config class; no model is ever loaded in the web process), and
# imported with the app rather than by the first run's request, which would wait ~0.2 s for it.
from models.base import EngineNotAvailable
from models.openai_engine import check_model, openai_config


def check_endpoints(config: dict[str, Any], settings: Settings) -> None:
    """Ask each OpenAI-compatible endpoint of the run for its models (GET /models)."""
    checked: set[tuple[str, str]] = set()
    for spec in config["stages"]:
        if spec["engine"] != "openai":
            continue
        parameters = spec["parameters"]
        environment = engine_environment("openai", parameters, settings)
        target = (str(environment["base_url"]), str(parameters.get("model")))
        if target in checked:
            continue
        checked.add(target)
        try:
            check_model(openai_config(parameters, environment | {"timeout_s": 10.0}))
        except EngineNotAvailable as exc:
            raise EngineUnavailable(f"{spec['stage']} stage: {exc}") from exc
