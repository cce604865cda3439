"""Fine-tuning the offline recogniser: line images, a real short training, cancellation, and
`histocr process --adapt-pages` scoring only the pages it did not train on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from rapidfuzz.distance import Levenshtein

from app.metrics.text import normalize_raw, score_text
from app.pipeline.adapt import document_samples
from models.base import EngineRequest, EngineResult
from models.ocr import SHIPPED_TESSDATA
from models.ocr.finetune import Tools, unpack_base, write_traineddata
from models.ocr.linecut import box_in_prepared, read_prepared_lines
from models.ocr.pageprep import prepare_page
from models.ocr.training import (
    FinetuneConfig,
    TrainingCancelled,
    finetune_model,
)
from models.ocr.transcription import regularise
from models.registry import create_engine
from tests.conftest import ROOT, benchmark_file
from tests.helpers import PRINTED_LINES, render_page

DEFAULTS = {"languages": "frak2021", "psm": 6, "oem": 1, "timeout_s": 120.0}

# Entries for a small training set, ASCII (the font bundled with Pillow has no umlauts).
MORE_LINES = [
    "Schulz, Karl, Gerber, Hauptstrasse 5.",
    "Becker, Maria Anna, Naeherin, Kirchgasse 9.",
    "Wagner, Johann, Fuhrmann, Neumarkt 14.",
    "Hoffmann, Peter, Schreiner, Bergstrasse 21.",
]
TRAINING_LINES = PRINTED_LINES + MORE_LINES


def render_line(path: Path, text: str) -> Path:
    """One printed line, as a line image cut from a page would be."""
    font = ImageFont.load_default(size=40)
    image = Image.new("L", (1300, 64), "white")
    ImageDraw.Draw(image).text((20, 8), text, fill="black", font=font)
    image.save(path, dpi=(300, 300))
    return path


def line_samples(folder: Path) -> list[tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    return [(render_line(folder / f"line-{i}.png", t), t) for i, t in enumerate(TRAINING_LINES)]


def read_lines(images: list[Path]) -> list[str]:
    """Tesseract's readings of line images (`--psm 13`, the mode training uses), in one run."""
    listing = images[0].parent / "lines.txt"
    listing.write_text("".join(f"{image}\n" for image in images), encoding="utf-8")
    out = subprocess.run(
        ["tesseract", str(listing), "stdout", "--tessdata-dir", str(SHIPPED_TESSDATA)]
        + ["-l", "frak2021", "--psm", "13"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
    )
    readings = [regularise(page.strip()) for page in out.stdout.split("\f")]
    return readings[: len(images)]


@pytest.mark.e2e  # Tesseract on a real page: 15-30 s
def test_training_lines_of_a_benchmark_page_hold_the_text_they_are_paired_with(tmp_path):
    pdf = benchmark_file("pdfs", "type-1.pdf")
    subprocess.run(
        ["pdftoppm", "-r", "300", "-gray", "-png", "-f", "1", "-l", "1", str(pdf)]
        + [str(tmp_path / "page")],
        check=True,
    )
    page = next(tmp_path.glob("page*.png"))
    reference = benchmark_file("ground_truth", "txt", "type-1.txt").read_text().split("\n\n")[0]
    samples = document_samples(
        images=[page],
        dpi=300,
        reference=reference,
        held_out_lines=[],
        parameters=DEFAULTS,
        prefix="type-1",
    )
    # Page 1 has 41 printed lines; the running head's and the page number's text differ
    # from the ground truth's, everything else is trained on.
    assert samples.lines_seen >= 38 and len(samples.samples) >= 35
    ((width, height),) = samples.page_sizes
    heights = sorted(sample.image.height for sample in samples.samples)
    tops = []
    for sample in samples.samples:
        assert sample.box is not None
        left, top, right, bottom = sample.box
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert sample.image.size == (right - left, bottom - top)
        # One printed line, not two or three.
        assert bottom - top < 1.6 * heights[len(heights) // 2]
        tops.append(top)
    assert tops == sorted(tops)
    # Each image reads as its own text, not its neighbour's (every third line is checked).
    texts = [regularise(sample.text) for sample in samples.samples]
    checked = list(range(1, len(samples.samples) - 1, 3))
    images = []
    for index in checked:
        images.append(tmp_path / f"{samples.samples[index].name}.png")
        samples.samples[index].image.save(images[-1], dpi=(300, 300))
    for index, reading in zip(checked, read_lines(images), strict=True):
        own = Levenshtein.normalized_distance(reading, texts[index])
        assert own < 0.2, (reading, texts[index])
        assert own < Levenshtein.normalized_distance(reading, texts[index - 1])
        assert own < Levenshtein.normalized_distance(reading, texts[index + 1])


def test_a_stored_box_maps_back_into_the_prepared_page(tmp_path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES)
    with Image.open(page) as opened:
        rotated = opened.rotate(1.5, fillcolor=255)  # a page photographed askew
    prepared = prepare_page(rotated)
    assert abs(prepared.angle) > 1
    printed = read_prepared_lines(prepared)
    assert len(printed) == len(PRINTED_LINES)
    for line in printed:
        stored = prepared.to_original(line.box)  # what the lines table keeps
        back = box_in_prepared(prepared, stored)
        assert all(abs(a - b) <= 3 for a, b in zip(back, line.box, strict=True)), (back, line.box)


def test_the_engine_reads_line_by_line_as_a_tuned_model_was_trained(tmp_path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES)
    engine = create_engine("tesseract", {**DEFAULTS, "reading": "lines"}, {})
    (read,) = engine.run_batch([EngineRequest(image_path=page, image_dpi=300)])
    assert isinstance(read, EngineResult), read
    assert engine.describe()["reading"] == "lines"
    assert read.lines is not None and len(read.lines) == len(PRINTED_LINES)
    assert score_text("\n".join(PRINTED_LINES), read.text).cer.rate < 0.1, read.text
    with Image.open(page) as opened:
        width, height = opened.size
    for line, printed in zip(read.lines, PRINTED_LINES, strict=True):
        assert line.bbox is not None
        left, top, right, bottom = line.bbox
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        assert Levenshtein.normalized_distance(line.text, printed) < 0.15, (line.text, printed)


def test_a_short_finetune_writes_a_model_tesseract_reads_with(tmp_path):
    samples = line_samples(tmp_path / "lines")
    models = tmp_path / "models"
    steps = []
    config = FinetuneConfig(
        model_name="tiny", max_iterations=20, chunk_iterations=10, patience=5, threads=2
    )
    result = finetune_model(
        samples, tmp_path / "work", models / "tiny.traineddata", config, progress=steps.append
    )
    assert [step.iteration for step in steps] == [10, 20]
    assert all(0 <= step.validation_cer <= 1 for step in steps)
    assert result.iterations_run == 20 and result.iterations in (0, 10, 20)
    assert (result.training_lines, result.validation_lines) == (6, 2)
    assert result.model_path == models / "tiny.traineddata" and result.model_path.is_file()
    assert result.seconds > 0 and result.cpu_seconds > 0
    assert "lstmtraining" in result.log_path.read_text()

    # Whichever checkpoint early stopping kept, a trained checkpoint makes a model too.
    log = tmp_path / "write.log"
    base = unpack_base(SHIPPED_TESSDATA / "frak2021.traineddata", tmp_path / "base", Tools(), log)
    write_traineddata(
        tmp_path / "work" / "kept" / "20.checkpoint",
        base,
        models / "tiny-20.traineddata",
        Tools(),
        log,
    )
    page = render_page(tmp_path / "page.png", PRINTED_LINES)
    for name in ("tiny", "tiny-20"):
        engine = create_engine(
            "tesseract", {**DEFAULTS, "languages": name}, {"tessdata_dir": str(models)}
        )
        (read,) = engine.run_batch([EngineRequest(image_path=page, image_dpi=300)])
        assert isinstance(read, EngineResult), read
        assert read.model == f"tesseract ({name})"
        assert score_text("\n".join(PRINTED_LINES), read.text).cer.rate < 0.1, read.text


def test_a_cancelled_training_leaves_the_previous_model_in_place(tmp_path):
    samples = line_samples(tmp_path / "lines")
    output = tmp_path / "models" / "current.traineddata"
    output.parent.mkdir()
    output.write_bytes(b"the model runs use now")
    steps = []
    config = FinetuneConfig(max_iterations=1000, chunk_iterations=10, threads=2)
    with pytest.raises(TrainingCancelled):
        finetune_model(
            samples,
            tmp_path / "work",
            output,
            config,
            progress=steps.append,
            cancelled=lambda: bool(steps),
        )
    assert [step.iteration for step in steps] == [10]  # stopped in the next chunk
    assert output.read_bytes() == b"the model runs use now"


# --- histocr process --adapt-pages ------------------------------------------------------------

PAGE_ONE = PRINTED_LINES + MORE_LINES[:2]
PAGE_TWO = MORE_LINES[2:]


def histocr(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.e2e  # the whole pipeline and a short training in a subprocess: 20-40 s
def test_adapt_pages_scores_only_the_pages_after_the_training_pages(tmp_path):
    first = render_page(tmp_path / "p1.png", PAGE_ONE)
    second = render_page(tmp_path / "p2.png", PAGE_TWO)
    pdf = tmp_path / "adressbuch.pdf"
    with Image.open(first) as one, Image.open(second) as two:
        one.save(pdf, save_all=True, append_images=[two], resolution=300)
    truth = tmp_path / "adressbuch.txt"
    truth.write_text("\n".join(PAGE_ONE) + "\n\n" + "\n".join(PAGE_TWO) + "\n", encoding="utf-8")
    out = tmp_path / "out"

    result = histocr(
        "process",
        pdf,
        "--ground-truth",
        truth,
        "--adapt-pages",
        "1",
        "--extract",
        "none",
        "--out",
        out,
        "--json",
        env={"HISTOCR_FINETUNE_MAX_ITERATIONS": "20", "HISTOCR_FINETUNE_CHUNK_ITERATIONS": "10"},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "done" and summary["pages"] == 2
    page_two = "\n".join(PAGE_TWO)
    # The figures are over page 2 alone: its ground truth, nothing of page 1's.
    assert summary["adaptation"]["scored"] == [
        {
            "document": "adressbuch.pdf",
            "pages": [2],
            "reference_characters": len(normalize_raw(page_two)),
        }
    ]
    assert summary["reference_characters"] == len(normalize_raw(page_two))
    adapted = (out / "adressbuch.adapted.txt").read_text(encoding="utf-8")
    expected = score_text(page_two, adapted).as_dict()
    for key in ("cer", "cer_normalized", "wer", "wer_normalized"):
        assert summary[key] == pytest.approx(expected[key]), key
        assert 0 <= summary["baseline"][key] <= 1, key
    assert "metrics" not in summary  # the run's own scores cover page 1 too
    assert summary["cer"] < 0.15 and summary["baseline"]["cer"] < 0.15
    # Trained on page 1's lines, and they are left in --out as pairs other tools read.
    assert summary["training_lines"] >= len(PAGE_ONE) - 1
    pairs = sorted((out / "adapt" / "lines").glob("*.gt.txt"))
    assert len(pairs) == summary["training_lines"]
    # (in the model's own letter forms where it read them right: ſ for s)
    assert {regularise(p.read_text(encoding="utf-8").strip()) for p in pairs} <= set(PAGE_ONE)
    assert summary["iterations"] in (0, 10, 20)
    assert Path(summary["adaptation"]["model"]).is_file()
    assert (out / "adapt" / "training.log").is_file()


def test_adapt_pages_needs_ground_truth_and_the_tesseract_engine(tmp_path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:1])
    missing = histocr("process", page, "--adapt-pages", "1", "--out", tmp_path / "out")
    assert missing.returncode == 2 and "--adapt-pages needs --ground-truth" in missing.stderr
    truth = tmp_path / "gt.txt"
    truth.write_text(PRINTED_LINES[0], encoding="utf-8")
    imported = histocr(
        "process",
        page,
        "--ground-truth",
        truth,
        "--adapt-pages",
        "1",
        "--ocr",
        "import",
        "--out",
        tmp_path / "out",
    )
    assert imported.returncode == 2 and "fine-tunes the tesseract engine" in imported.stderr
    assert "Traceback" not in missing.stderr + imported.stderr
