"""Which recogniser a run reads with, recorded when it starts and handed to Tesseract by the
worker.

A run's tesseract stage has the parameter `recognizer`: `default` (the project's default
version, `app.services.recognizers.default_version`, else the shipped model), `base` (the
model named by `languages`, as it is) or a version number. When the run is created the choice
is resolved and recorded in its configuration, which never changes: `recognizer` becomes the
version number (or `base`) and `recognizer_sha256` the model file's hash, so a run names the
exact model it read with even after newer versions exist. The worker copies that file, found
by its hash, into a model folder under the data directory and runs Tesseract with it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.recognizers import RecognizerModel, TrainingStatus
from app.db.tables import Run
from app.errors import InvalidRequest
from app.pipeline.run_config import RunConfig
from app.services.recognizers import default_version
from app.storage import LocalStorage
from models.base import EngineError

PARAMETER = "recognizer"
SHA256 = "recognizer_sha256"
DEFAULT, BASE = "default", "base"


def model_folder(settings: Settings) -> Path:
    """Where workers keep the project models runs read with (a cache: safe to delete)."""
    return (settings.data_dir / "cache" / "tessdata").resolve()


def resolve_recognizer(session: Session, project_id: int, config: RunConfig) -> RunConfig:
    """The run's configuration with its recogniser choice resolved (see the module docstring);
    InvalidRequest (422) for a version that does not exist, is not done, or was trained from
    another model than the run's `languages`."""
    if not config.has_stage("ocr") or config.stage("ocr").engine != "tesseract":
        return config
    ocr = config.stage("ocr")
    wanted = str(ocr.parameters.get(PARAMETER) or DEFAULT).strip().lower()
    languages = str(ocr.parameters.get("languages", ""))
    model: RecognizerModel | None = None
    if wanted == DEFAULT:
        model = default_version(session, project_id)
        if model is not None and model.base_model != languages:
            model = None  # the run reads with other models: they are not replaced
    elif wanted != BASE:
        model = _chosen_version(session, project_id, wanted, languages)
    parameters = {**ocr.parameters, PARAMETER: str(model.number) if model else BASE}
    parameters.pop(SHA256, None)
    if model is not None:
        parameters[SHA256] = model.model_sha256
    stages = tuple(
        stage.model_copy(update={"parameters": parameters}) if stage.stage == "ocr" else stage
        for stage in config.stages
    )
    return config.model_copy(update={"stages": stages})


def _chosen_version(
    session: Session, project_id: int, wanted: str, languages: str
) -> RecognizerModel:
    if not wanted.isdigit():
        raise InvalidRequest(
            f"parameter 'recognizer' must be default, base or a version number, not {wanted!r}"
        )
    model = session.scalar(
        select(RecognizerModel).where(
            RecognizerModel.project_id == project_id, RecognizerModel.number == int(wanted)
        )
    )
    if model is None or model.status != TrainingStatus.DONE or model.model_key is None:
        state = "does not exist" if model is None else f"is {model.status}"
        raise InvalidRequest(f"recogniser version {wanted} {state}: choose a done version")
    if model.base_model != languages:
        raise InvalidRequest(
            f"recogniser version {wanted} was trained from {model.base_model}; the run reads "
            f"with {languages!r}: set languages to {model.base_model}"
        )
    return model


def uses_project_model(engine: str, parameters: Mapping[str, Any]) -> bool:
    """Whether a stage reads with one of the project's versions."""
    return engine == "tesseract" and str(parameters.get(PARAMETER, "")).isdigit()


def project_model_inputs(
    *,
    session: Session,
    storage: LocalStorage,
    folder: Path,
    run_id: int,
    parameters: Mapping[str, Any],
    environment: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The engine's parameters and environment with the run's project model in place of its
    `languages`: the file (checked against the hash the run recorded) copied into `folder`
    once. EngineError (not retried) when the version's file is gone."""
    number = int(str(parameters[PARAMETER]))
    recorded = parameters.get(SHA256)
    project_id = session.scalar(select(Run.project_id).where(Run.id == run_id))
    model = session.scalar(
        select(RecognizerModel).where(
            RecognizerModel.project_id == project_id, RecognizerModel.number == number
        )
    )
    if model is None or model.model_key is None or not storage.exists(model.model_key):
        raise EngineError(f"recogniser version {number} is gone: start a new run", retryable=False)
    if recorded and model.model_sha256 != recorded:
        raise EngineError(
            f"recogniser version {number} is not the model the run recorded", retryable=False
        )
    sha256 = model.model_sha256 or ""
    name = f"histocr-{sha256[:16]}"
    _materialise(storage.path(model.model_key), folder / f"{name}.traineddata")
    return (
        {**parameters, "languages": name},
        {**environment, "tessdata_dir": str(folder)},
    )


def _materialise(source: Path, target: Path) -> None:
    """Copy the model file into the model folder, atomically (two workers may race)."""
    if target.is_file():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".model-")
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
