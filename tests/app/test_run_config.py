"""A run's configuration: defaults from settings and engine specs, refusals, storage, old runs;
and the parameter check every engine's parameters go through."""

import math
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import JSON, insert, select, text, type_coerce

from app.config import Settings
from app.db.session import session_scope
from app.db.tables import Run
from app.errors import InvalidRequest
from app.pipeline.run_config import (
    RunConfig,
    StageConfig,
    StageRequest,
    build_run_config,
    default_stages,
)
from models.openai_engine import MESSAGE_FORMAT
from models.openai_spec import OpenAISettings
from models.prompts import latest_version, load_prompt
from models.spec import Parameter, ParameterInvalid
from models.tesseract import TesseractSettings
from tests.factories import add_project

FIELDS = ("surname", "occupation")


def build(*stages: dict[str, Any], settings: Settings | None = None) -> RunConfig:
    return build_run_config(
        stages=[StageRequest(**stage) for stage in stages],
        schema_fields=FIELDS,
        settings=settings or Settings(),
    )


def with_model(**openai: Any) -> Settings:
    return Settings(openai=OpenAISettings(model="vlm-7b", **openai))


# --- defaults -----------------------------------------------------------------------------


def test_the_default_pipeline_records_every_default() -> None:
    config = build_run_config(stages=default_stages(), schema_fields=FIELDS, settings=Settings())

    assert config.version == 2
    assert config.schema_fields == FIELDS
    assert config.stages == (
        StageConfig(
            stage="ocr",
            engine="tesseract",
            parameters={
                "languages": "frak2021",
                "psm": 6,
                "oem": 1,
                "timeout_s": 300.0,
                "orientation": False,
                "crop": True,
                "deskew": True,
                "contrast": "normalise",
                "upscale_below_pitch": 48,
                "transcription": "normalised",
                "reading": "page",
                "recognizer": "default",  # resolved when a run is created
            },
            queue="cpu",
            batch_size=1,
        ),
        StageConfig(
            stage="extract",
            engine="crf",
            parameters={"model": "prior"},
            source="ocr",
            fields=FIELDS,
            inputs="text",
            queue="cpu",
            batch_size=8,
        ),
    )


def test_defaults_come_from_this_machines_engine_settings() -> None:
    settings = Settings(tesseract=TesseractSettings(languages="deu", psm=4))

    (ocr,) = build({"stage": "ocr", "engine": "tesseract"}, settings=settings).stages

    assert ocr.parameters["languages"] == "deu" and ocr.parameters["psm"] == 4
    assert ocr.parameters["oem"] == 1 and ocr.parameters["timeout_s"] == 300.0


def test_an_mllm_stage_records_its_prompt_message_format_queue_and_batch() -> None:
    settings = with_model(batch_size=5, api_key=SecretStr("sk-do-not-store"))

    config = build(
        {"stage": "ocr", "engine": "openai"},
        {"stage": "correct", "engine": "openai", "parameters": {"temperature": "0.5"}},
        {"stage": "extract", "engine": "openai", "source": "ocr", "inputs": "both"},
        settings=settings,
    )

    ocr, correct, extract = config.stages
    assert ocr.parameters == {
        "model": "vlm-7b",
        "endpoint": "default",
        "temperature": 0.0,
        "max_tokens": 4096,
        "structured_output": "json_schema",
        "image_max_side": 1288,
        "image_format": "jpeg",
    }
    assert correct.parameters["temperature"] == 0.5
    for stage in config.stages:
        prompt = load_prompt(stage.stage, latest_version(stage.stage))
        assert (stage.prompt_version, stage.prompt) == (prompt.version, prompt.text)
        assert stage.message_format == MESSAGE_FORMAT
        assert (stage.queue, stage.batch_size) == ("llm", 5)
    assert (correct.source, extract.source, extract.inputs) == ("ocr", "ocr", "both")
    assert "sk-do-not-store" not in config.model_dump_json(), "a secret must never be recorded"


def test_a_parameter_without_a_value_is_left_out() -> None:
    settings = Settings()
    settings.transformers.model = "tiny-vlm"

    (ocr,) = build({"stage": "ocr", "engine": "transformers"}, settings=settings).stages

    assert ocr.parameters["model"] == "tiny-vlm"
    assert "repetition_penalty" not in ocr.parameters  # no default: the model's own applies
    assert (ocr.queue, ocr.message_format) == ("gpu", "qwen2-vl-chat-v1")


@pytest.mark.parametrize(
    ("names", "text_stages", "final", "extracts"),
    [
        (["ocr"], ("ocr",), "ocr", False),
        (["ocr", "extract"], ("ocr",), "ocr", True),
        (["ocr", "correct"], ("ocr", "correct"), "correct", False),
        (["ocr", "correct", "extract"], ("ocr", "correct"), "correct", True),
    ],
)
def test_text_stages_final_text_stage_and_extracts(
    names: list[str], text_stages: tuple[str, ...], final: str, extracts: bool
) -> None:
    engines = {"ocr": "tesseract", "correct": "openai", "extract": "rules"}
    config = build(*({"stage": n, "engine": engines[n]} for n in names), settings=with_model())

    assert config.stage_names == tuple(names)
    assert config.text_stages == text_stages
    assert config.final_text_stage == final
    assert config.extracts is extracts
    assert config.has_stage("extract") is extracts
    if extracts:  # by default, extraction reads the last transcription
        assert config.stage("extract").source == final
    with pytest.raises(KeyError):
        RunConfig(stages=()).stage("ocr")


# --- refusals -----------------------------------------------------------------------------

OCR = {"stage": "ocr", "engine": "tesseract"}


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([], "a run needs at least one stage"),
        ([{"stage": "extract", "engine": "rules"}], "the first stage must be ocr"),
        ([OCR, {"stage": "translate", "engine": "rules"}], "unknown stage 'translate'"),
        ([OCR, OCR], "stage 'ocr' appears twice"),
        (
            [
                OCR,
                {"stage": "extract", "engine": "rules"},
                {"stage": "correct", "engine": "openai"},
            ],
            "stages must run in the order ocr → correct → extract",
        ),
        ([{"stage": "ocr", "engine": "abbyy"}], "engine 'abbyy' cannot run stage 'ocr'"),
        ([{"stage": "ocr", "engine": "rules"}], "(engines: tesseract, import, openai,"),
        ([{**OCR, "parameters": {"dpi": 300}}], "engine 'tesseract' has no parameter 'dpi'"),
        ([{**OCR, "parameters": {"psm": 14}}], "parameter 'psm' must be at most 13"),
        ([{**OCR, "parameters": {"psm": "four"}}], "parameter 'psm' must be int"),
        ([{**OCR, "parameters": {"psm": True}}], "parameter 'psm' must be int"),
        ([{"stage": "ocr", "engine": "openai"}], "set HISTOCR_OPENAI_MODEL"),
        ([{**OCR, "source": "ocr"}], "the ocr stage reads the page"),
        ([OCR, {"stage": "extract", "engine": "rules", "source": "correct"}], "cannot read"),
        ([{**OCR, "inputs": "text"}], "only the extract stage takes inputs"),
        ([OCR, {"stage": "extract", "engine": "rules", "inputs": "image"}], "from text only"),
        ([OCR, {"stage": "extract", "engine": "rules", "inputs": "audio"}], "not 'audio'"),
    ],
)
def test_a_bad_pipeline_is_refused_with_a_clear_message(
    stages: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        build(*stages)
    assert message in str(refused.value)


def test_an_unknown_prompt_version_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="no prompt 'ocr' version 'v99'"):
        build({"stage": "ocr", "engine": "openai", "prompt_version": "v99"}, settings=with_model())


def test_openai_parameter_limits_are_those_of_the_spec() -> None:
    for parameters, message in [
        ({"temperature": 2.5}, "'temperature' must be at most 2"),
        ({"image_max_side": 10}, "'image_max_side' must be at least 64"),
        ({"image_format": "gif"}, "'image_format' must be one of jpeg, png"),
        ({"max_tokens": float("nan")}, "'max_tokens' must be int"),
    ]:
        with pytest.raises(InvalidRequest) as refused:
            build(
                {"stage": "ocr", "engine": "openai", "parameters": parameters},
                settings=with_model(),
            )
        assert message in str(refused.value), parameters


# --- storage ------------------------------------------------------------------------------


def test_the_stored_config_reads_back_as_the_same_run_config(sqlite_settings: Settings) -> None:
    config = build(
        OCR,
        {"stage": "correct", "engine": "openai", "parameters": {"max_tokens": "512"}},
        {"stage": "extract", "engine": "rules"},
        settings=with_model(),
    )
    url = sqlite_settings.resolved_database_url
    with session_scope(url) as session:
        run = Run(project_id=add_project(session).id, config=config)
        session.add(run)
        session.flush()
        run_id = run.id

    with session_scope(url) as session:
        stored = session.scalar(select(Run.config).where(Run.id == run_id))
        raw = session.execute(text("SELECT config FROM runs WHERE id = :id"), {"id": run_id})
        raw_json = raw.scalar_one()

    assert isinstance(stored, RunConfig)
    assert stored == config
    assert stored.stage("correct").parameters["max_tokens"] == 512
    assert '"version": 2' in raw_json and '"message_format": "openai-chat-v1"' in raw_json


#: A configuration as runs stored it before the typed RunConfig (version 1).
VERSION_1 = {
    "version": 1,
    "render_dpi": 300,
    "schema_fields": ["surname", "occupation"],
    "stages": [
        {
            "stage": "ocr",
            "engine": "tesseract",
            "parameters": {"languages": "Fraktur+deu", "psm": 4, "oem": 1, "timeout_s": 300.0},
            "prompt_version": None,
            "prompt": None,
            "source": None,
            "fields": [],
            "inputs": None,
            "queue": "cpu",
            "batch_size": 1,
        },
        {
            "stage": "correct",
            "engine": "openai",
            "parameters": {"model": "gpt-4o", "temperature": 0.0},
            "prompt_version": "v1",
            "prompt": "Correct the OCR errors.",
            "source": "ocr",
            "fields": [],
            "inputs": None,
            "queue": "llm",
            "batch_size": 64,
        },
        {
            "stage": "extract",
            "engine": "rules",
            "parameters": {},
            "prompt_version": None,
            "prompt": None,
            "source": "correct",
            "fields": ["surname", "occupation"],
            "inputs": "text",
            "queue": "cpu",
            "batch_size": 8,
        },
    ],
}


def test_a_version_1_config_still_reads(sqlite_settings: Settings) -> None:
    url = sqlite_settings.resolved_database_url
    with session_scope(url) as session:
        project_id = add_project(session).id
        # Plain JSON, past the column type that would write a current RunConfig.
        old_config = type_coerce(VERSION_1, JSON)
        session.execute(insert(Run.__table__).values(project_id=project_id, config=old_config))

    with session_scope(url) as session:
        config = session.scalars(select(Run)).one().config

    assert config.version == 1
    assert config.schema_fields == ("surname", "occupation")
    assert config.stage_names == ("ocr", "correct", "extract")
    correct = config.stage("correct")
    assert (correct.engine, correct.queue, correct.batch_size) == ("openai", "llm", 64)
    assert correct.parameters == {"model": "gpt-4o", "temperature": 0.0}
    assert (correct.prompt_version, correct.prompt) == ("v1", "Correct the OCR errors.")
    assert correct.message_format is None
    assert config.stage("extract").source == "correct"
    assert config.final_text_stage == "correct" and config.extracts


# --- Parameter.check ----------------------------------------------------------------------

COUNT = Parameter("count", int, "a count", minimum=1, maximum=10)
RATE = Parameter("rate", float, "a rate", minimum=0, maximum=2)
FORMAT = Parameter("format", str, "a format", choices=("jpeg", "png"))
FLAG = Parameter("flag", bool, "a switch")
ANY_FLOAT = Parameter("any", float, "no limits")


@pytest.mark.parametrize(
    ("parameter", "given", "expected"),
    [
        (COUNT, 3, 3),
        (COUNT, "3", 3),
        (COUNT, 3.0, 3),
        (COUNT, 1, 1),
        (COUNT, 10, 10),
        (RATE, "0.5", 0.5),
        (RATE, 1, 1.0),
        (RATE, 0, 0.0),
        (FORMAT, "png", "png"),
        (FLAG, False, False),
        (FLAG, True, True),
        (COUNT, None, None),
        (ANY_FLOAT, -1e9, -1e9),
    ],
)
def test_check_accepts_and_converts(parameter: Parameter, given: Any, expected: Any) -> None:
    checked = parameter.check(given)
    assert checked == expected
    assert type(checked) is type(expected)


@pytest.mark.parametrize(
    ("parameter", "given", "message"),
    [
        (COUNT, True, "must be int (integer)"),  # a bool is an int to Python, not to a run
        (RATE, False, "must be float (number)"),
        (COUNT, 3.5, "must be int"),
        (COUNT, "3.5", "must be int"),
        (COUNT, "three", "must be int"),
        (COUNT, [3], "must be int"),
        (COUNT, {"n": 3}, "must be int"),
        (COUNT, float("inf"), "must be int"),
        (COUNT, 0, "must be at least 1"),
        (COUNT, "11", "must be at most 10"),
        (RATE, math.nan, "must be float"),
        (RATE, "nan", "must be float"),
        (RATE, 2.01, "must be at most 2"),
        (RATE, -0.1, "must be at least 0"),
        (FORMAT, "gif", "must be one of jpeg, png"),
        (FORMAT, True, "must be str"),
        (FORMAT, ["png"], "must be str"),
        (FLAG, "true", "must be bool (boolean)"),
        (FLAG, 1, "must be bool"),
        pytest.param(
            ANY_FLOAT,
            "inf",
            "must be float",
        ),
    ],
)
def test_check_refuses_with_the_parameter_name(
    parameter: Parameter, given: Any, message: str
) -> None:
    with pytest.raises(ParameterInvalid) as refused:
        parameter.check(given)
    assert str(refused.value).startswith(f"parameter {parameter.name!r} must")
    assert message in str(refused.value)
