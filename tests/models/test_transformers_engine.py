"""The transformers engine against a real (tiny, random) Qwen2.5-VL model built here, on CPU."""

import sys
from pathlib import Path

import pytest
from pdf2image import convert_from_path

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.chat import IMAGE_PART, chat_messages, load_page_image
from models.transformers_engine import TransformersConfig, TransformersEngine, config_from
from tests.conftest import benchmark_file
from tests.helpers import PRINTED_LINES, render_page

PROMPT = "Transcribe the page."


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The top of a real benchmark page (rendered small) and a drawn directory page."""
    folder = tmp_path_factory.mktemp("pages")
    scan = convert_from_path(
        benchmark_file("pdfs", "type-1.pdf"), dpi=60, first_page=1, last_page=1
    )[0]
    crop = folder / "type-1-top.png"
    scan.crop((0, 0, scan.width, scan.height // 3)).save(crop)
    return [crop, render_page(folder / "drawn.png", PRINTED_LINES)]


def _requests(pages: list[Path]) -> list[EngineRequest]:
    return [
        EngineRequest(prompt=PROMPT, image_path=pages[0]),
        EngineRequest(prompt=PROMPT, system="Be exact.", image_path=pages[1], text="Foerster"),
        EngineRequest(prompt="List the surnames.", text="\n".join(PRINTED_LINES)),
    ]


def _engine(model: Path, **settings: object) -> TransformersEngine:
    """An engine built the way the registry builds it: recorded parameters + machine settings."""
    parameters = {"model": str(model), "max_new_tokens": 32, "image_max_side": 400}
    parameters.update({k: v for k, v in settings.items() if k != "batch_size"})
    environment = {"device": "cpu", "batch_size": settings.get("batch_size", 4)}
    return TransformersEngine(config_from(parameters, environment))


def _results(outcomes: list[EngineResult | EngineError]) -> list[EngineResult]:
    assert all(isinstance(o, EngineResult) for o in outcomes), outcomes
    return [o for o in outcomes if isinstance(o, EngineResult)]


def test_a_batch_with_images_and_text_only(tiny_model: Path, pages: list[Path]) -> None:
    results = _results(_engine(tiny_model).run_batch(_requests(pages)))

    assert len(results) == 3
    for result in results:
        assert result.model == str(tiny_model)
        assert result.tokens_in and result.tokens_in > 10
        assert result.tokens_out is not None and 1 <= result.tokens_out <= 32
        assert result.finish_reason in ("stop", "length")
        assert "<|im_end|>" not in result.text and "<|endoftext|>" not in result.text
        assert result.raw["batch_size"] == 3
    # The pages became vision tokens: an image request is longer than its prompt alone.
    text_only = _results(_engine(tiny_model).run_batch([EngineRequest(prompt=PROMPT)]))[0]
    assert results[0].tokens_in is not None and text_only.tokens_in is not None
    assert results[0].tokens_in > text_only.tokens_in + 16
    # Each request: its own preparation plus an even share of the batch's time.
    share = results[0].raw["batch_latency_s"] / 3
    assert all(share - 1e-3 <= r.latency_s < share + 1.0 for r in results)


def test_the_model_ends_answers_by_itself(tiny_model: Path, pages: list[Path]) -> None:
    results = _results(_engine(tiny_model, max_new_tokens=48).run_batch(_requests(pages)))

    stopped = [r for r in results if r.finish_reason == "stop"]
    assert stopped, [(r.finish_reason, r.tokens_out) for r in results]
    assert all(r.tokens_out is not None and r.tokens_out < 48 for r in stopped)


def test_a_tiny_token_limit_cuts_answers_off(tiny_model: Path, pages: list[Path]) -> None:
    results = _results(_engine(tiny_model, max_new_tokens=2).run_batch(_requests(pages)))

    assert [r.finish_reason for r in results] == ["length"] * 3
    assert [r.tokens_out for r in results] == [2, 2, 2]


@pytest.mark.parametrize("batch_size", [2, 3])
def test_batches_answer_as_one_by_one(tiny_model: Path, pages: list[Path], batch_size: int) -> None:
    requests = _requests(pages)
    alone = _results(_engine(tiny_model, batch_size=1).run_batch(requests))
    batched = _results(_engine(tiny_model, batch_size=batch_size).run_batch(requests))

    def answer(r: EngineResult) -> tuple[object, ...]:
        return (r.text, r.finish_reason, r.tokens_in, r.tokens_out)

    assert [answer(r) for r in batched] == [answer(r) for r in alone]
    assert len({r.text for r in alone}) == 3  # the answers depend on the input
    expected_sizes = [2, 2, 1] if batch_size == 2 else [3, 3, 3]
    assert [r.raw["batch_size"] for r in batched] == expected_sizes


def test_an_unreadable_image_fails_only_its_request(
    tiny_model: Path, pages: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    requests = [EngineRequest(prompt=PROMPT, image_path=broken), *_requests(pages)[:1]]

    outcomes = _engine(tiny_model, max_new_tokens=2).run_batch(requests)

    assert isinstance(outcomes[0], EngineError) and not outcomes[0].retryable
    assert "broken.png" in str(outcomes[0])
    assert isinstance(outcomes[1], EngineResult)


def test_sampling_runs(tiny_model: Path, pages: list[Path]) -> None:
    results = _results(
        _engine(tiny_model, temperature=0.7, max_new_tokens=3).run_batch(_requests(pages))
    )
    assert len(results) == 3


@pytest.mark.e2e  # imports torch and transformers (about 10 s)
def test_a_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    engine = TransformersEngine(TransformersConfig(model=str(tmp_path / "no-model"), device="cpu"))
    with pytest.raises(EngineNotAvailable, match="no-model not found"):
        engine.run_batch([EngineRequest(prompt=PROMPT)])


@pytest.mark.e2e  # imports torch and transformers (about 10 s)
def test_an_uncached_hub_model_is_not_downloaded() -> None:
    engine = TransformersEngine(
        TransformersConfig(model="histocr-test/no-such-model", device="cpu")
    )
    with pytest.raises(EngineNotAvailable, match="downloads are off"):
        engine.load()


@pytest.mark.e2e  # imports torch (about 5 s)
def test_without_transformers_the_engine_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    engine = TransformersEngine(TransformersConfig(model="Qwen/Qwen2.5-VL-3B-Instruct"))
    with pytest.raises(EngineNotAvailable, match=r"pip install 'histocr\[transformers\]'"):
        engine.run_batch([EngineRequest(prompt=PROMPT)])


def test_config_from_parameters_and_environment() -> None:
    config = config_from(
        {"model": "Qwen/Qwen2.5-VL-7B-Instruct", "max_tokens": 512, "temperature": 0.0},
        {"model_path": "/models/qwen", "device": "cuda", "batch_size": 8, "api_key": None},
    )
    assert (config.model, config.model_path, config.max_new_tokens) == (
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "/models/qwen",
        512,
    )
    assert (config.device, config.batch_size) == ("cuda", 8)
    description = TransformersEngine(config).describe()
    assert description["model"] == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert "/models/qwen" not in description.values()


def test_chat_messages_put_prompt_image_and_text_in_order() -> None:
    request = EngineRequest(prompt="Correct it.", system="Be exact.", text="Foerster")
    messages = chat_messages(request, image_part=IMAGE_PART)
    assert messages == [
        {"role": "system", "content": "Be exact."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Correct it."},
                {"type": "image"},
                {"type": "text", "text": "<text>\nFoerster\n</text>"},
            ],
        },
    ]
    text_only = chat_messages(EngineRequest(prompt="Extract.", text="A, B"))
    assert text_only == [{"role": "user", "content": "Extract.\n\n<text>\nA, B\n</text>"}]
    with pytest.raises(EngineError):
        chat_messages(EngineRequest())


def test_page_images_shrink_to_the_longest_side(pages: list[Path]) -> None:
    image = load_page_image(pages[1], 300)
    assert max(image.size) == 300 and image.mode == "RGB"
    assert load_page_image(pages[1], 10_000).size == render_size(pages[1])


def render_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size
