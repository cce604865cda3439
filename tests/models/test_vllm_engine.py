"""The vllm engine without vLLM: its clear error, and the request → vLLM input translation.

vLLM needs a GPU and is not installed where the suite runs; what can be checked here is the
pure translation (chat template, image, sampling and guided-JSON settings), the result mapping
and the batching against a stand-in `LLM` that records its calls.
"""

import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import jinja2
import pytest
from PIL import Image

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.vllm_engine import (
    PreparedRequest,
    VLLMConfig,
    VLLMEngine,
    config_from,
    prepare_request,
    result_from_output,
    sampling_params,
    structured_output,
)
from tests.helpers import PRINTED_LINES, render_page
from tests.tiny_vlm import QWEN2_VL_CHAT_TEMPLATE

VISION = "<|vision_start|><|image_pad|><|vision_end|>"
SCHEMA = {"type": "object", "properties": {"records": {"type": "array"}}, "required": ["records"]}


def render(messages: list[dict[str, Any]]) -> str:
    """Qwen2-VL's real chat template, as the model's processor applies it."""
    template = jinja2.Environment().from_string(QWEN2_VL_CHAT_TEMPLATE)
    return template.render(messages=messages, add_generation_prompt=True)


def _module(**classes: Any) -> ModuleType:
    """A stand-in for `vllm.sampling_params` holding the given classes."""
    module = ModuleType("fake_sampling_params")
    module.SamplingParams = Recorder  # type: ignore[attr-defined]
    for name, cls in classes.items():
        setattr(module, name, cls)
    return module


class Recorder:
    """Records the keyword arguments it was built with (SamplingParams, *Params)."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.kwargs == self.kwargs  # type: ignore[attr-defined]


class StructuredOutputsParams(Recorder):
    """vLLM ≥ 0.10.2's name."""


class GuidedDecodingParams(Recorder):
    """vLLM < 0.12's name."""


@pytest.fixture
def page(tmp_path: Path) -> Path:
    return render_page(tmp_path / "page.png", PRINTED_LINES)


def test_without_vllm_the_engine_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    engine = VLLMEngine(VLLMConfig(model="Qwen/Qwen2.5-VL-7B-Instruct"))
    assert engine.name == "vllm"
    with pytest.raises(EngineNotAvailable, match=r"pip install 'histocr\[gpu\]' on a GPU machine"):
        engine.run_batch([EngineRequest(prompt="Transcribe.")])


def test_an_image_request_becomes_a_templated_prompt_with_the_image(page: Path) -> None:
    config = VLLMConfig(model="m", image_max_side=500, max_tokens=2048, temperature=0.0)
    request = EngineRequest(prompt="Correct it.", system="Be exact.", image_path=page, text="Fo")

    prepared = prepare_request(request, config, render)

    assert prepared.prompt["prompt"] == (
        "<|im_start|>system\nBe exact.<|im_end|>\n"
        f"<|im_start|>user\nCorrect it.{VISION}<text>\nFo\n</text><|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    image = prepared.prompt["multi_modal_data"]["image"]
    assert isinstance(image, Image.Image) and max(image.size) == 500 and image.mode == "RGB"
    assert prepared.sampling == {"temperature": 0.0, "max_tokens": 2048, "seed": 0}
    assert prepared.json_schema is None


def test_a_text_request_has_no_image_and_asks_for_json() -> None:
    request = EngineRequest(prompt="Extract.", text="Foerster, Johann", json_schema=SCHEMA)

    prepared = prepare_request(request, VLLMConfig(model="m"), render)

    assert "multi_modal_data" not in prepared.prompt
    assert VISION not in prepared.prompt["prompt"]
    assert "You are a helpful assistant." in prepared.prompt["prompt"]  # the template's default
    assert "Extract.\n\n<text>\nFoerster, Johann\n</text><|im_end|>" in prepared.prompt["prompt"]
    assert prepared.json_schema == SCHEMA


def test_guided_json_in_both_vllm_dialects() -> None:
    current = structured_output(SCHEMA, _module(StructuredOutputsParams=StructuredOutputsParams))
    assert current == {"structured_outputs": StructuredOutputsParams(json=SCHEMA)}
    # When both exist (vLLM 0.10.2 – 0.11) the current name wins.
    both = _module(StructuredOutputsParams=StructuredOutputsParams, GuidedDecodingParams=Recorder)
    assert "structured_outputs" in structured_output(SCHEMA, both)
    older = structured_output(SCHEMA, _module(GuidedDecodingParams=GuidedDecodingParams))
    assert older == {"guided_decoding": GuidedDecodingParams(json=SCHEMA)}
    with pytest.raises(EngineNotAvailable, match="no guided decoding"):
        structured_output(SCHEMA, _module())


def test_sampling_params_carry_the_schema_only_when_asked() -> None:
    module = _module(StructuredOutputsParams=StructuredOutputsParams)
    plain = PreparedRequest({"prompt": "p"}, {"temperature": 0.0, "max_tokens": 5}, None)
    guided = PreparedRequest({"prompt": "p"}, {"temperature": 0.0, "max_tokens": 5}, SCHEMA)

    assert sampling_params(plain, module).kwargs == {"temperature": 0.0, "max_tokens": 5}
    assert sampling_params(guided, module).kwargs == {
        "temperature": 0.0,
        "max_tokens": 5,
        "structured_outputs": StructuredOutputsParams(json=SCHEMA),
    }


def _output(text: str, finish: str | None, prompt_tokens: int, tokens: int) -> SimpleNamespace:
    completion = SimpleNamespace(text=text, finish_reason=finish, token_ids=list(range(tokens)))
    return SimpleNamespace(prompt_token_ids=list(range(prompt_tokens)), outputs=[completion])


def test_results_keep_vllms_finish_reason_and_token_counts() -> None:
    result = result_from_output(
        _output("Text", "length", 900, 64), model="m", latency_s=1.5, raw={}
    )
    assert (result.text, result.finish_reason, result.tokens_in, result.tokens_out) == (
        "Text",
        "length",
        900,
        64,
    )
    aborted = result_from_output(_output("", None, 1, 0), model="m", latency_s=0, raw={})
    assert aborted.finish_reason == "abort"


class FakeLLM:
    """Stands in for `vllm.LLM`: records each generate call; rejects prompts containing "BAD"."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[dict[str, Any]], list[Any]]] = []

    def generate(
        self, prompts: list[dict[str, Any]], *, sampling_params: Any, use_tqdm: bool
    ) -> list[SimpleNamespace]:
        self.calls.append((prompts, sampling_params))
        if any("BAD" in p["prompt"] for p in prompts):
            raise ValueError("prompt is longer than max_model_len")
        return [_output(f"answer {i}", "stop", 10 + i, 3) for i, _ in enumerate(prompts)]


def test_a_batch_is_one_generate_call_in_order(page: Path, tmp_path: Path) -> None:
    llm = FakeLLM()
    module = _module(StructuredOutputsParams=StructuredOutputsParams)
    engine = VLLMEngine.with_llm(VLLMConfig(model="qwen"), llm, render, module)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"no image")
    requests = [
        EngineRequest(prompt="OCR.", image_path=page),
        EngineRequest(prompt="OCR.", image_path=broken),
        EngineRequest(prompt="Extract.", text="A, B", json_schema=SCHEMA),
    ]

    outcomes = engine.run_batch(requests)

    assert len(llm.calls) == 1
    prompts, params = llm.calls[0]
    assert len(prompts) == 2 and "multi_modal_data" in prompts[0]
    assert "structured_outputs" in params[1].kwargs and "structured_outputs" not in params[0].kwargs
    assert isinstance(outcomes[0], EngineResult) and outcomes[0].text == "answer 0"
    assert isinstance(outcomes[1], EngineError) and not outcomes[1].retryable
    assert isinstance(outcomes[2], EngineResult) and outcomes[2].text == "answer 1"
    assert outcomes[2].model == "qwen" and outcomes[2].raw["batch_size"] == 2


def test_a_rejected_batch_is_retried_one_by_one(page: Path) -> None:
    llm = FakeLLM()
    engine = VLLMEngine.with_llm(VLLMConfig(model="qwen"), llm, render, _module())
    requests = [EngineRequest(prompt="OCR.", image_path=page), EngineRequest(prompt="BAD")]

    outcomes = engine.run_batch(requests)

    assert len(llm.calls) == 3  # the batch, then each alone
    assert isinstance(outcomes[0], EngineResult)
    assert isinstance(outcomes[1], EngineError) and "max_model_len" in str(outcomes[1])


def test_config_from_parameters_and_environment() -> None:
    config = config_from(
        {"model": "allenai/olmOCR-7B-0725", "max_new_tokens": 8000, "temperature": 0.1},
        {"model_path": "/models/olmocr", "max_model_len": 16384, "batch_size": 128},
    )
    assert (config.model, config.model_path, config.max_tokens) == (
        "allenai/olmOCR-7B-0725",
        "/models/olmocr",
        8000,
    )
    assert (config.max_model_len, config.batch_size) == (16384, 128)
    assert VLLMEngine(config).describe()["model"] == "allenai/olmOCR-7B-0725"
