"""A run's pipeline configuration: one typed, frozen object, validated once when the run is
created, stored as its JSON, and read through this type everywhere (never by string keys)."""

from collections.abc import Sequence
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.errors import InvalidRequest
from app.pipeline.engines import batch_size, run_parameters
from models.prompts import Prompt, latest_version, load_prompt
from models.registry import engine_specs
from models.spec import STAGES, EngineSpec
from models.stages.schema import RecordField, record_fields

StageName = Literal["ocr", "correct", "extract"]
TextStageName = Literal["ocr", "correct"]
ExtractInputs = Literal["text", "image", "both"]

#: The stages that produce a transcription, in pipeline order.
TEXT_STAGES: tuple[TextStageName, ...] = ("ocr", "correct")
CONFIG_VERSION = 2


class StageRequest(BaseModel):
    """One stage of a requested pipeline, as the API, the UI and the CLI ask for it."""

    stage: str = Field(description="ocr, correct or extract")
    engine: str = Field(description="an engine that can serve the stage (GET /api/v1/engines)")
    parameters: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(
        default=None, description="for correct/extract: the text stage to read (default: latest)"
    )
    prompt_version: str | None = Field(default=None, description="default: the newest")
    inputs: str | None = Field(
        default=None, description="extract only: text (default), image or both (mLLM engines)"
    )


class StageConfig(BaseModel):
    """One stage as the run recorded it, with every default filled in."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    stage: StageName
    engine: str
    #: The engine's parameters (defaults filled in); those marked recorded decide the output.
    parameters: dict[str, Any] = Field(default_factory=dict)
    prompt_version: str | None = None
    #: The prompt text itself, so the run stays reproducible when prompt files change.
    prompt: str | None = None
    #: How the engine lays out its messages (mLLMs), recorded like a prompt version.
    message_format: str | None = None
    #: The text stage a correction or extraction reads.
    source: TextStageName | None = None
    #: The record fields extraction asks for.
    fields: tuple[str, ...] = ()
    #: The same fields with their meaning (description, example, required): what an mLLM is
    #: shown. Empty in runs recorded before projects defined them.
    field_definitions: tuple[RecordField, ...] = ()
    #: What extraction reads: the source text, the page image, or both.
    inputs: ExtractInputs | None = None
    queue: str = "cpu"
    #: Pages per task.
    batch_size: int = Field(default=1, ge=1)


class RunConfig(BaseModel):
    """The whole pipeline of a run; never changes once the run exists."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = CONFIG_VERSION
    #: The record fields' names, in column order (what the CSV and the scores use).
    schema_fields: tuple[str, ...] = ()
    #: The project's schema version the run used (None: recorded before schemas had versions).
    schema_version: int | None = None
    #: That schema in full: each field's name, description, example and whether it is required.
    schema_definitions: tuple[RecordField, ...] = ()
    stages: tuple[StageConfig, ...]

    @property
    def record_schema(self) -> tuple[RecordField, ...]:
        """The run's fields with their meaning (from the names alone for older runs)."""
        return self.schema_definitions or record_fields(self.schema_fields)

    def stage(self, name: str) -> StageConfig:
        """The stage called `name` (KeyError when the run does not have it)."""
        for stage in self.stages:
            if stage.stage == name:
                return stage
        raise KeyError(name)

    def has_stage(self, name: str) -> bool:
        """Whether the run has the stage."""
        return any(stage.stage == name for stage in self.stages)

    @property
    def stage_names(self) -> tuple[str, ...]:
        """The run's stages in order."""
        return tuple(stage.stage for stage in self.stages)

    @property
    def text_stages(self) -> tuple[str, ...]:
        """The run's stages that produce a transcription, in order."""
        return tuple(stage.stage for stage in self.stages if stage.stage in TEXT_STAGES)

    @property
    def final_text_stage(self) -> str:
        """The last stage that produces a transcription (a run always starts with OCR)."""
        return self.text_stages[-1]

    @property
    def extracts(self) -> bool:
        """Whether the run extracts records."""
        return self.has_stage("extract")


def default_stages(
    *, ocr: str = "tesseract", correct: str | None = None, extract: str | None = "crf"
) -> list[StageRequest]:
    """The default pipeline: Tesseract OCR, then the CRF extractor (optionally a correction)."""
    stages = [StageRequest(stage="ocr", engine=ocr)]
    if correct:
        stages.append(StageRequest(stage="correct", engine=correct))
    if extract:
        stages.append(StageRequest(stage="extract", engine=extract))
    return stages


def build_run_config(
    *,
    stages: Sequence[StageRequest],
    schema_fields: Sequence[str | RecordField],
    settings: Settings,
    schema_version: int | None = None,
) -> RunConfig:
    """Check the requested stages and record them with every default filled in, and the record
    schema the run extracts: its names, and where the fields come with their meaning (a
    project's schema, `RecordField`s) those definitions and the project's schema version."""
    definitions = record_fields(schema_fields)
    # Names alone record names alone (the meaning of each is then derived where it is needed).
    recorded = definitions if any(isinstance(f, RecordField) for f in schema_fields) else ()
    if not stages:
        raise InvalidRequest("a run needs at least one stage")
    if stages[0].stage != "ocr":
        raise InvalidRequest("the first stage must be ocr")
    built: list[StageConfig] = []
    for requested in stages:
        if requested.stage not in STAGES:
            raise InvalidRequest(f"unknown stage {requested.stage!r} (stages: {', '.join(STAGES)})")
        names = [s.stage for s in built]
        if requested.stage in names:
            raise InvalidRequest(f"stage {requested.stage!r} appears twice")
        if names and STAGES.index(requested.stage) < STAGES.index(names[-1]):
            raise InvalidRequest(f"stages must run in the order {' → '.join(STAGES)}")
        built.append(_stage_config(requested, definitions, recorded, settings, names))
    return RunConfig(
        schema_fields=tuple(field.name for field in definitions),
        schema_version=schema_version,
        schema_definitions=recorded,
        stages=tuple(built),
    )


def _stage_config(
    requested: StageRequest,
    definitions: tuple[RecordField, ...],
    recorded: tuple[RecordField, ...],
    settings: Settings,
    previous: Sequence[str],
) -> StageConfig:
    spec = engine_specs().get(requested.engine)
    if spec is None or requested.stage not in spec.stages:
        names = ", ".join(s.name for s in engine_specs().values() if requested.stage in s.stages)
        raise InvalidRequest(
            f"engine {requested.engine!r} cannot run stage {requested.stage!r} "
            f"(engines: {names or 'none yet'})"
        )
    prompt = _prompt(requested.stage, requested.prompt_version) if spec.prompted else None
    return StageConfig(
        stage=cast(StageName, requested.stage),  # checked against STAGES by the caller
        engine=spec.name,
        parameters=run_parameters(spec, requested.parameters, settings),
        prompt_version=prompt.version if prompt else None,
        prompt=prompt.text if prompt else None,
        message_format=spec.message_format,
        source=cast(TextStageName | None, _source(requested.stage, requested.source, previous)),
        fields=tuple(f.name for f in definitions) if requested.stage == "extract" else (),
        field_definitions=recorded if requested.stage == "extract" else (),
        inputs=cast(ExtractInputs | None, _inputs(requested.stage, spec, requested.inputs)),
        queue=spec.queue,
        batch_size=batch_size(spec, settings),
    )


def _prompt(stage: str, version: str | None) -> Prompt:
    try:
        return load_prompt(stage, version or latest_version(stage))
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from exc


def _source(stage: str, requested: str | None, previous: Sequence[str]) -> str | None:
    """The text stage a correction or extraction reads (default: the latest one before it)."""
    if stage == "ocr":
        if requested is not None:
            raise InvalidRequest("the ocr stage reads the page, not another stage")
        return None
    text_stages = [s for s in previous if s in TEXT_STAGES]
    if requested is None:
        return text_stages[-1]
    if requested not in text_stages:
        raise InvalidRequest(
            f"stage {stage!r} cannot read {requested!r}: it runs after {', '.join(text_stages)}"
        )
    return requested


def _inputs(stage: str, spec: EngineSpec, requested: str | None) -> str | None:
    """What extraction reads: the text (default), the page image, or both (mLLMs only)."""
    if stage != "extract":
        if requested is not None:
            raise InvalidRequest("only the extract stage takes inputs")
        return None
    inputs = requested or "text"
    if inputs not in ("text", "image", "both"):
        raise InvalidRequest(f"inputs must be text, image or both, not {inputs!r}")
    if inputs not in spec.extract_inputs:
        raise InvalidRequest(f"the {spec.name} engine extracts from text only")
    return inputs
