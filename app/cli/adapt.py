"""`histocr process --adapt-pages N`: fine-tune the recogniser on each document's first N pages,
read the pages after them with the tuned model, and score only those pages.

After the ordinary (untuned) run: the ground truth of each document is aligned to its pages
(app/pipeline/adapt.py), the usable printed lines of pages 1..N become training lines, one
model is fine-tuned from the run's model on the lines of all documents (models/ocr/training.py),
and the tesseract engine, with the run's parameters and the tuned model, reads pages N+1.. .
Both readings of those pages are scored against the same slice of the ground truth, which no
training line came from. The tuned model, its training lines (`*.png` + `*.gt.txt`) and the
training log are left in `--out`/adapt/.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy.orm import Session

from app.db.tables import Page, Run
from app.metrics.text import TextScores
from app.pipeline.adapt import DocumentSamples, document_samples, score_held_out
from app.pipeline.evaluation import page_texts
from app.services.page_truth import document_ground_truth
from models.base import EngineRequest, EngineResult
from models.ocr.linecut import LineImage, write_pairs
from models.ocr.training import (
    FinetuneResult,
    FinetuneSettings,
    TrainingFailed,
    TrainingProgress,
    finetune_model,
)
from models.registry import create_engine
from models.tesseract import TesseractSettings

F = TypeVar("F", bound=Callable[..., Any])

#: The tuned model's name (`-l histocr-adapted`), written to --out/adapt/.
MODEL_NAME = "histocr-adapted"
_SCORE_KEYS = ("cer", "cer_normalized", "wer", "wer_normalized")


def adapt_option(command: F) -> F:
    """The --adapt-pages option."""
    return click.option(
        "--adapt-pages",
        type=click.IntRange(min=1),
        default=None,
        metavar="N",
        help="Fine-tune the OCR model on the ground truth of each document's first N pages, "
        "read the remaining pages with it, and report the scores of those pages only "
        "(the untuned model's as `baseline`). Needs --ground-truth for every file.",
    )(command)


def check_adapt_options(
    adapt_pages: int | None,
    *,
    files: Sequence[Path],
    ocr: str,
    correct: str | None,
    gt_texts: Sequence[Path],
    gt_csvs: Sequence[Path],
    parameters: dict[str, Any],
) -> None:
    """UsageError where --adapt-pages cannot apply to what else was asked."""
    if adapt_pages is None:
        return
    if ocr != "tesseract":
        raise click.UsageError(f"--adapt-pages fine-tunes the tesseract engine, not --ocr {ocr}")
    if correct:
        raise click.UsageError(
            "--adapt-pages scores the OCR of the pages after N; it does not go with --correct"
        )
    if len(gt_texts) != len(files):
        raise click.UsageError("--adapt-pages needs --ground-truth once per file")
    if gt_csvs:
        raise click.UsageError(
            "--adapt-pages scores text on the pages after N only; record scores would cover "
            "every page, so leave out --ground-truth-csv"
        )
    if "+" in str(parameters.get("languages", "")):
        raise click.UsageError("--adapt-pages fine-tunes one model; give --languages one model")


@dataclass(frozen=True)
class _Document:
    """One document's part: where its pages are, its training lines, what it scores."""

    filename: str
    held_out: list[Page]
    images: list[Path]
    samples: DocumentSamples
    baseline: list[str]


def adapt_and_score(
    session: Session,
    storage: Any,
    run: Run,
    *,
    adapt_pages: int,
    out_dir: Path,
    jobs: int,
    summary: dict[str, Any],
) -> dict[str, Any]:
    """Train on pages 1..N, read the later pages with the tuned model, and replace the
    summary's scores by those of the later pages (the untuned ones as `baseline`)."""
    # The run's reading, and the model folder this machine configured (not a run parameter).
    tessdata_dir = TesseractSettings().tessdata_dir
    parameters = {**run.config.stage("ocr").parameters, "tessdata_dir": tessdata_dir}
    documents = [
        _prepare(session, storage, run, document, adapt_pages, parameters)
        for document in run.documents
    ]
    if not any(document.held_out for document in documents):
        raise click.ClickException(
            f"no document has pages after the first {adapt_pages}: nothing is left to score"
        )
    samples = [sample for document in documents for sample in document.samples.samples]
    folder = out_dir / "adapt"
    result = _train(samples, folder, jobs, str(parameters["languages"]), tessdata_dir)
    tuned = _read_held_out(documents, parameters, folder, jobs)
    tuned_total, baseline_total = TextScores(), TextScores()
    scored = []
    for document, texts in zip(documents, tuned, strict=True):
        if not document.held_out:
            continue
        scores = score_held_out(document.samples.aligned, adapt_pages, texts, document.baseline)
        tuned_total += scores.tuned
        baseline_total += scores.baseline
        stem = Path(document.filename).stem
        (out_dir / f"{stem}.adapted.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
        scored.append(
            {
                "document": document.filename,
                "pages": [page.number for page in document.held_out],
                "reference_characters": scores.tuned.cer.reference_length,
            }
        )
    return _summary(summary, adapt_pages, tuned_total, baseline_total, scored, documents, result)


def _prepare(
    session: Session,
    storage: Any,
    run: Run,
    document: Any,
    adapt_pages: int,
    parameters: dict[str, Any],
) -> _Document:
    pages = sorted(document.pages, key=lambda page: page.number)
    texts = page_texts(session, run, "ocr", document_id=document.id)
    if any(texts.get(page.id) is None for page in pages):
        raise click.ClickException(f"{document.filename}: OCR failed on a page; nothing adapted")
    truth = document_ground_truth(session, run, document.id)
    if truth is None:
        raise click.ClickException(f"{document.filename}: no ground truth to train on")
    training, held_out = pages[:adapt_pages], pages[adapt_pages:]
    samples = document_samples(
        images=[storage.path(page.image_key) for page in training],
        dpi=training[0].dpi or 300,
        reference=truth.content,
        held_out_lines=[(texts[page.id] or "").split("\n") for page in held_out],
        parameters=parameters,
        prefix=Path(document.filename).stem,
    )
    return _Document(
        filename=document.filename,
        held_out=held_out,
        images=[storage.path(page.image_key) for page in held_out],
        samples=samples,
        baseline=[texts[page.id] or "" for page in held_out],
    )


def _train(
    samples: Sequence[LineImage],
    folder: Path,
    jobs: int,
    base_model: str,
    tessdata_dir: str | None,
) -> FinetuneResult:
    """Fine-tune on the samples; the model, the lines and the log end up in `folder`."""
    if not samples:
        raise click.ClickException(
            "no usable training line on the first pages (is the ground truth the text of "
            "these documents?)"
        )
    lines = write_pairs(samples, folder / "lines")
    texts = {sample.name: sample.text for sample in samples}

    def report(step: TrainingProgress) -> None:
        click.echo(
            f"  adapt: iteration {step.iteration}/{step.max_iterations}, validation CER "
            f"{step.validation_cer:.2%} (best {step.best_validation_cer:.2%})",
            err=True,
        )

    config = FinetuneSettings().config(
        model_name=MODEL_NAME,
        base_model=base_model,
        tessdata_dir=tessdata_dir,
        threads=max(1, jobs),
    )
    click.echo(f"  adapt: training on {len(samples)} line(s)", err=True)
    with tempfile.TemporaryDirectory(prefix="histocr-adapt-") as work:
        try:
            result = finetune_model(
                [(path, texts[path.stem]) for path in lines],
                Path(work),
                folder / f"{MODEL_NAME}.traineddata",
                config,
                progress=report,
            )
        except TrainingFailed as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            if (Path(work) / "training.log").is_file():
                shutil.copyfile(Path(work) / "training.log", folder / "training.log")
    return result


def _read_held_out(
    documents: Sequence[_Document], parameters: dict[str, Any], folder: Path, jobs: int
) -> list[list[str]]:
    """Each document's pages after N read with the tuned model (`jobs` pages at a time)."""
    engine = create_engine(
        "tesseract",
        {**parameters, "languages": MODEL_NAME},
        {"tessdata_dir": str(folder)},
    )
    dpis = {page.id: page.dpi for document in documents for page in document.held_out}

    def read(job: tuple[Page, Path]) -> str:
        page, image = job
        (result,) = engine.run_batch([EngineRequest(image_path=image, image_dpi=dpis[page.id])])
        if not isinstance(result, EngineResult):
            raise click.ClickException(f"the tuned model failed on page {page.number}: {result}")
        return result.text

    readings = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for document in documents:
            jobs_of = zip(document.held_out, document.images, strict=True)
            readings.append(list(pool.map(read, jobs_of)))
    return readings


def _summary(
    summary: dict[str, Any],
    adapt_pages: int,
    tuned: TextScores,
    baseline: TextScores,
    scored: list[dict[str, Any]],
    documents: Sequence[_Document],
    result: FinetuneResult,
) -> dict[str, Any]:
    """The summary with the held-out pages' scores; the run's own, which cover the training
    pages too, are left out so they cannot be mistaken for them."""
    for key in ("metrics", "records", "fields", *_SCORE_KEYS):
        summary.pop(key, None)
    tuned_figures = tuned.as_dict()
    summary.update({key: tuned_figures[key] for key in _SCORE_KEYS})
    summary["reference_characters"] = tuned.cer.reference_length
    summary["baseline"] = {key: baseline.as_dict()[key] for key in _SCORE_KEYS}
    summary["training_lines"] = result.training_lines + result.validation_lines
    summary["iterations"] = result.iterations
    summary["training_seconds"] = result.seconds
    summary["adaptation"] = {
        "pages_trained": adapt_pages,
        "scored": scored,
        "lines_seen": sum(d.samples.lines_seen for d in documents),
        "lines_usable": sum(d.samples.lines_usable for d in documents),
        "training_lines": result.training_lines,
        "validation_lines": result.validation_lines,
        "skipped_lines": result.skipped_lines,
        "iterations": result.iterations,
        "iterations_run": result.iterations_run,
        "learning_rate": result.learning_rate,
        "training_cer": result.training_cer,
        "validation_cer": result.validation_cer,
        "base_validation_cer": result.base_validation_cer,
        "seconds": result.seconds,
        "cpu_seconds": result.cpu_seconds,
        "model": str(result.model_path),
    }
    summary["outputs"] = [*summary.get("outputs", []), str(result.model_path)]
    return summary


def print_adaptation(summary: dict[str, Any]) -> None:
    """The human-readable lines about the adaptation (after the usual summary)."""
    adaptation = summary.get("adaptation")
    if not adaptation:
        return
    pages = sum(len(entry["pages"]) for entry in adaptation["scored"])
    baseline = summary["baseline"]
    click.echo(
        f"adapted on the first {adaptation['pages_trained']} page(s): "
        f"{summary['training_lines']} line(s), {summary['iterations']} iteration(s), "
        f"{summary['training_seconds']:.0f} s; scored on {pages} later page(s): "
        f"CER {summary['cer']:.2%} (normalized {summary['cer_normalized']:.2%}), untuned "
        f"{baseline['cer']:.2%} (normalized {baseline['cer_normalized']:.2%})"
    )
