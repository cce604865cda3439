"""Fine-tuning the offline recogniser on a document's first page, scored on the pages after it.

For each benchmark document: the untuned engine (the shipped frak2021, the default pipeline)
reads all pages; the ground truth is aligned to page 1's printed lines and the later pages'
lines (app/pipeline/adapt.py); page 1's usable lines train a model (models/ocr/training.py,
from frak2021); the tuned and the untuned model read pages 2–3, each both ways the engine can
read (`reading`: page, or lines cut out and read one by one); every reading of pages 2–3 is
scored against their slice of the ground truth only. Prints per document and micro-averaged
normalized/raw CER, lines, iterations and training time (wall and CPU). `--curve` trains one
model on the page-1 lines of all five documents together, on subsets of 50, 100, 200 and all
of them, and scores pages 2–3 of all five. Prints figures; asserts nothing. Readings are
cached by model content (--cache).

    nice -n 10 .venv/bin/python -m bench.finetune                  # the table
    nice -n 10 .venv/bin/python -m bench.finetune --only type-1    # one document
    nice -n 10 .venv/bin/python -m bench.finetune --curve          # the curve
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.metrics.text import TextScores
from app.pipeline.adapt import document_samples, score_held_out
from bench.offline_ocr import BENCHMARK, render_pages
from models.base import EngineRequest, EngineResult
from models.ocr.linecut import LineImage, write_pairs
from models.ocr.training import FinetuneConfig, FinetuneResult, finetune_model
from models.registry import create_engine

#: The run's tesseract parameters (the defaults) the bench reads with.
PARAMETERS: dict[str, Any] = {"languages": "frak2021", "psm": 6, "oem": 1, "timeout_s": 300.0}
TRAIN_PAGES = 1
CURVE_SIZES = (50, 100, 200)


@dataclass(frozen=True)
class Reading:
    """A page's text and its lines as the engine returned them."""

    text: str
    lines: list[str]


def read_pages(
    pages: Sequence[Path], parameters: dict[str, Any], environment: dict[str, Any], cache: Path
) -> list[Reading]:
    """Each page read by the tesseract engine (two pages side by side), cached by model and
    reading."""
    engine = create_engine("tesseract", parameters, environment)
    key = parameters["languages"]
    if environment.get("tessdata_dir"):
        # A trained model is cached by its content: the same name is trained again and again.
        model = Path(environment["tessdata_dir"]) / f"{key}.traineddata"
        key += "-" + hashlib.sha256(model.read_bytes()).hexdigest()[:12]
    key += "-" + parameters.get("reading", "page")

    def read(page: Path) -> Reading:
        entry = cache / "readings" / key / f"{page.stem}.json"
        if entry.exists():
            stored = json.loads(entry.read_text())
            return Reading(stored["text"], stored["lines"])
        (result,) = engine.run_batch([EngineRequest(image_path=page, image_dpi=300)])
        if not isinstance(result, EngineResult):
            raise SystemExit(f"{page.name}: {result}")
        reading = Reading(result.text, [line.text for line in result.lines or ()])
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(json.dumps({"text": reading.text, "lines": reading.lines}))
        return reading

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(read, pages))


def read_with(model: str | None, pages: Sequence[Path], reading: str, cache: Path) -> list[str]:
    """The texts of `pages` read with a trained model (None: the shipped one) one way."""
    if model is None:
        return [r.text for r in read_pages(pages, {**PARAMETERS, "reading": reading}, {}, cache)]
    parameters = {**PARAMETERS, "languages": model, "reading": reading}
    environment = {"tessdata_dir": str(cache / "models")}
    return [r.text for r in read_pages(pages, parameters, environment, cache)]


def reference_of(document: str) -> str:
    """The document's ground-truth text."""
    return (BENCHMARK / "ground_truth" / "txt" / f"{document}.txt").read_text(encoding="utf-8")


def train(
    samples: Sequence[LineImage], name: str, cache: Path, config: FinetuneConfig
) -> FinetuneResult:
    """Write the samples as pairs and fine-tune a model named `name` on them (the working
    folder is removed afterwards; its log is kept in the cache's logs/)."""
    work = Path(tempfile.mkdtemp(prefix=f"histocr-ft-{name}-", dir=cache))
    try:
        pairs = write_pairs(samples, work / "lines")
        texts = {sample.name: sample.text for sample in samples}
        result = finetune_model(
            [(path, texts[path.stem]) for path in pairs],
            work / "training",
            cache / "models" / f"{name}.traineddata",
            replace(config, model_name=name),
            progress=lambda step: print(
                f"    iteration {step.iteration}: train {_pct(step.training_cer)}, "
                f"validation {_pct(step.validation_cer)} (lowest "
                f"{_pct(step.best_validation_cer)}; keeping {step.best_iteration})",
                flush=True,
            ),
        )
        (cache / "logs").mkdir(exist_ok=True)
        shutil.copyfile(result.log_path, cache / "logs" / f"{name}.log")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.2f} %"


READINGS = ("page", "lines")


@dataclass
class DocumentOutcome:
    """One document: scores on its held-out pages (untuned and tuned, by reading) and how its
    model was trained."""

    document: str
    untuned: dict[str, TextScores]
    tuned: dict[str, TextScores]
    result: FinetuneResult


def prepare(document: str, pages: list[Path], cache: Path) -> tuple[Any, list[Reading]]:
    """The document's training samples and its untuned (page-reading) readings."""
    baseline = read_pages(pages, PARAMETERS, {}, cache)
    samples = document_samples(
        images=pages[:TRAIN_PAGES],
        dpi=300,
        reference=reference_of(document),
        held_out_lines=[reading.lines for reading in baseline[TRAIN_PAGES:]],
        parameters=PARAMETERS,
        prefix=document,
    )
    return samples, baseline


def held_out_scores(aligned: Any, texts: Sequence[str]) -> TextScores:
    """Pages 2–3 read one way, against their slice of the ground truth."""
    return score_held_out(aligned, TRAIN_PAGES, texts, texts).tuned


def run_document(
    document: str, pages: list[Path], cache: Path, config: FinetuneConfig
) -> DocumentOutcome:
    """Train on page 1 of one document and score pages 2–3 tuned and untuned, both readings."""
    samples, _ = prepare(document, pages, cache)
    print(
        f"  {document}: {len(samples.samples)} training lines "
        f"({samples.lines_usable} usable of {samples.lines_seen} printed lines)",
        flush=True,
    )
    name = f"{document}-tuned"
    result = train(samples.samples, name, cache, config)
    later = pages[TRAIN_PAGES:]
    untuned = {
        r: held_out_scores(samples.aligned, read_with(None, later, r, cache)) for r in READINGS
    }
    tuned = {
        r: held_out_scores(samples.aligned, read_with(name, later, r, cache)) for r in READINGS
    }
    return DocumentOutcome(document, untuned, tuned, result)


def _cells(scores: TextScores) -> str:
    return f"{scores.cer_normalized.rate * 100:.2f} / {scores.cer.rate * 100:.2f}"


def print_table(outcomes: Sequence[DocumentOutcome]) -> None:
    """The per-document table and the micro-averages."""
    print(
        "| document | lines train/val | iterations kept (run) | validation CER base → tuned | "
        "training s (CPU s) | page reading: untuned → tuned | line reading: untuned → tuned |"
    )
    print("|---|---|---|---|---|---|---|")
    totals = {(kind, r): TextScores() for kind in ("untuned", "tuned") for r in READINGS}
    for outcome in outcomes:
        result = outcome.result
        cells = []
        for r in READINGS:
            cells.append(f"{_cells(outcome.untuned[r])} → {_cells(outcome.tuned[r])}")
            totals["untuned", r] += outcome.untuned[r]
            totals["tuned", r] += outcome.tuned[r]
        print(
            f"| {outcome.document} | {result.training_lines}/{result.validation_lines} | "
            f"{result.iterations} ({result.iterations_run}) | "
            f"{_pct(result.base_validation_cer)} → {_pct(result.validation_cer)} | "
            f"{result.seconds:.0f} ({result.cpu_seconds:.0f}) | " + " | ".join(cells) + " |"
        )
    micro = [f"**{_cells(totals['untuned', r])} → {_cells(totals['tuned', r])}**" for r in READINGS]
    print("| micro | | | | | " + " | ".join(micro) + " |", flush=True)


def run_curve(
    pages: dict[str, list[Path]], cache: Path, config: FinetuneConfig, reading: str
) -> None:
    """One model on page 1 of all documents, trained on growing subsets of its lines."""
    prepared = {document: prepare(document, pages[document], cache)[0] for document in pages}
    pool = [sample for samples in prepared.values() for sample in samples.samples]
    random.Random(13).shuffle(pool)
    sizes = [size for size in CURVE_SIZES if size < len(pool)] + [len(pool)]
    print(f"pooled page-1 lines of {len(prepared)} documents: {len(pool)}; reading {reading}")
    print("| training lines | iterations kept (run) | training s (CPU s) | pages 2–3 norm / raw |")
    print("|---|---|---|---|")

    def score(model: str | None) -> TextScores:
        return sum(
            (
                held_out_scores(
                    samples.aligned, read_with(model, pages[d][TRAIN_PAGES:], reading, cache)
                )
                for d, samples in prepared.items()
            ),
            TextScores(),
        )

    print(f"| 0 (untuned) | – | – | {_cells(score(None))} |", flush=True)
    for size in sizes:
        name = f"pooled-{size}"
        result = train(pool[:size], name, cache, config)
        print(
            f"| {size} | {result.iterations} ({result.iterations_run}) | "
            f"{result.seconds:.0f} ({result.cpu_seconds:.0f}) | {_cells(score(name))} |",
            flush=True,
        )


def main() -> None:
    """Print the table (or the curve)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only documents whose name contains this")
    parser.add_argument("--curve", action="store_true", help="the training-lines curve")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "histocr-bench")
    parser.add_argument("--learning-rate", type=float, default=FinetuneConfig.learning_rate)
    parser.add_argument("--max-iterations", type=int, default=FinetuneConfig.max_iterations)
    parser.add_argument("--chunk", type=int, default=FinetuneConfig.chunk_iterations)
    parser.add_argument("--patience", type=int, default=FinetuneConfig.patience)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--reading", choices=READINGS, default="lines", help="how the curve's models read"
    )
    args = parser.parse_args()
    config = FinetuneConfig(
        learning_rate=args.learning_rate,
        max_iterations=args.max_iterations,
        chunk_iterations=args.chunk,
        patience=args.patience,
        threads=args.threads,
    )
    pages = render_pages(args.cache)
    if args.only:
        pages = {d: p for d, p in pages.items() if args.only in d}
    print(
        f"fine-tune on page 1, score pages 2–3; lr {config.learning_rate}, at most "
        f"{config.max_iterations} iterations in chunks of {config.chunk_iterations}, patience "
        f"{config.patience}, {config.threads} threads; CER % normalized / raw",
        flush=True,
    )
    started = time.perf_counter()
    if args.curve:
        run_curve(pages, args.cache, config, args.reading)
    else:
        print_table([run_document(d, pages[d], args.cache, config) for d in pages])
    print(f"{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
