"""The learnt offline extractor as an engine: directory text in, records JSON out.

Answers in the shape the rules engine and the mLLMs use (``{"records": [...]}``), plus a
``provenance`` list beside it, one object per record, that names for each filled field
what produced it (``"crf"``, ``"rule:house-heading"``, ``"rule:ditto"``, ...). The records
themselves stay within the schema, so the stage's validation is the same for every engine.

A run chooses the model: ``prior`` (shipped, trained on the benchmark) or one trained on a
project's verified records (``app/pipeline/crf_training.py`` writes it into
``HISTOCR_CRF_MODEL_DIR`` as ``NAME.json``; the installation lists what is there).
"""

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from models.base import (
    LINE_KEY,
    PROVENANCE_KEY,
    EngineError,
    EngineNotAvailable,
    EngineRequest,
    EngineResult,
)
from models.crf import PRIOR_PATH, CrfExtractor, prior_extractor
from models.rules import DEFAULT_FIELDS
from models.spec import EngineSpec, Parameter

#: The shipped model's name among a run's choices.
PRIOR = "prior"
#: What a trained model may be called: its file is ``NAME.json`` in the model folder.
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


class CrfSettings(BaseSettings):
    """Where this installation keeps the CRF models trained on projects' verified records."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_CRF_", extra="ignore")

    model: str = PRIOR
    #: A string, not a Path: the engine's environment travels as JSON.
    model_dir: str = "var/crf-models"

    def model_choices(self) -> dict[str, dict[str, Any]]:
        """The models a run may choose: the prior, and every trained model in the folder."""
        found = Path(self.model_dir).glob("*.json")
        trained = sorted(p.stem for p in found if MODEL_NAME.match(p.stem))
        return {name: {} for name in [PRIOR, *trained]}


def model_path(name: str, model_dir: str | Path) -> Path:
    """The file of a trained model (ValueError for a name that is no model's)."""
    if not MODEL_NAME.match(name) or name == PRIOR:
        raise ValueError(f"{name!r} is not the name of a trained CRF model")
    return Path(model_dir) / f"{name}.json"


@cache
def _digest(path: Path, modified: float) -> str:
    """A model file's content digest (keyed by its time too: a retrained file is re-read)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@cache
def _trained(path: Path, modified: float) -> CrfExtractor:
    return CrfExtractor.load(path)


def model_name(name: str, path: Path) -> str:
    """The model's name with a digest of its file, so runs record which one ran."""
    return f"crf-{name}-{_digest(path, path.stat().st_mtime)}"


class CrfEngine:
    """Labels the tokens of each directory entry with a CRF; headings and ditto marks fill in
    what the entry does not print."""

    name = "crf"

    def __init__(self, model: str = PRIOR, model_dir: str | Path | None = None) -> None:
        self.model = model
        self.path = PRIOR_PATH if model == PRIOR else model_path(model, model_dir or ".")

    def describe(self) -> dict[str, Any]:
        """The model file decides the output."""
        return {"model": model_name(self.model, self.path)}

    def extractor(self) -> CrfExtractor:
        """The chosen model, loaded once per process (and again when its file changes)."""
        if self.model == PRIOR:
            return prior_extractor()
        return _trained(self.path, self.path.stat().st_mtime)

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """Parse each request's text."""
        return [self._parse(request) for request in requests]

    def _parse(self, request: EngineRequest) -> EngineResult | EngineError:
        if request.text is None:
            return EngineError("the CRF extractor needs a text", retryable=False)
        fields = tuple(request.parameters.get("fields") or DEFAULT_FIELDS)
        started = time.perf_counter()
        records = self.extractor().parse(request.text, fields=fields)
        answer = {
            "records": [{**record.fields, LINE_KEY: record.line_number} for record in records],
            PROVENANCE_KEY: [dict(record.provenance) for record in records],
        }
        return EngineResult(
            text=json.dumps(answer, ensure_ascii=False),
            model=model_name(self.model, self.path),
            latency_s=time.perf_counter() - started,
        )


def create_engine(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> CrfEngine:
    """The chosen model; EngineNotAvailable where this machine does not have its file."""
    name = str(parameters.get("model") or PRIOR)
    engine = CrfEngine(name, environment.get("model_dir") or CrfSettings().model_dir)
    if not engine.path.is_file():
        raise EngineNotAvailable(
            f"the CRF model {name!r} is not in {engine.path.parent} (HISTOCR_CRF_MODEL_DIR)"
        )
    return engine


def check_model(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> None:
    """Before a run starts: the model it names is on this machine."""
    create_engine(parameters, environment)


SPEC = EngineSpec(
    name="crf",
    description=(
        "Offline learnt extractor: a CRF over the tokens of each entry, trained on verified "
        "records (ships with a model trained on the benchmark); records say which field "
        "came from the model and which from a heading or ditto rule"
    ),
    stages=("extract",),
    queue="cpu",
    batch_size=8,
    create=create_engine,
    settings=CrfSettings,
    parameters=(
        Parameter(
            "model",
            str,
            "the CRF model: prior (shipped), or one trained on a project's verified records",
            default=PRIOR,
            choices_from="model_choices",
        ),
    ),
    preflight=check_model,
)
