"""Training lines from the first pages of a document, and scores on the pages after them.

The document's ground truth is cut into the OCR's pages and lines (app/pipeline/line_truth.py);
the usable lines of the training pages are cut out of the prepared page images
(models/ocr/linecut.py) and paired with their text; the pages after them are scored against
their own slice of the ground truth only. Used by `histocr process --adapt-pages` and
bench/finetune.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image

from app.metrics.text import TextScores, join_pages, score_text
from app.pipeline.line_truth import AlignedDocument, LineTruth, align_truth
from models.ocr.linecut import (
    LineImage,
    PrintedLine,
    cut_box,
    cut_line,
    median_height,
    read_prepared_lines,
)
from models.ocr.pageprep import PreparedPage, PrepOptions, prepare_page
from models.ocr.tessdata import search_path, tessdata_for
from models.ocr.tesseract_tsv import TesseractCall
from models.ocr.truthforms import in_reading_forms

__all__ = [
    "AlignedDocument",
    "DocumentSamples",
    "HeldOutScores",
    "LineTruth",
    "align_truth",
    "document_samples",
    "page_reading",
    "score_held_out",
    "training_samples",
]


def training_samples(
    prepared: PreparedPage,
    printed: Sequence[PrintedLine],
    truths: Sequence[LineTruth],
    prefix: str,
) -> list[LineImage]:
    """Line images of the page's usable lines, each paired with its ground truth.

    A line whose OCR missed a few characters at an edge is cut wider by that many of its
    characters' average width, so the image holds what the text says. The text keeps the
    reading's letter forms where it agrees with them (`in_reading_forms`).
    """
    height = median_height(line.box for line in printed)
    samples = []
    for index, (line, truth) in enumerate(zip(printed, truths, strict=True)):
        if not truth.usable:
            continue
        left, top, right, bottom = line.box
        width = (right - left) / max(1, len(truth.ocr))
        box = (
            max(0, round(left - width * truth.missing_before)),
            top,
            min(prepared.image.width, round(right + width * truth.missing_after)),
            bottom,
        )
        samples.append(
            LineImage(
                name=f"{prefix}-{index:03d}",
                image=cut_line(prepared.image, box, height),
                box=cut_box(box, height, prepared.image.size),
                text=in_reading_forms(truth.text, line.diplomatic or line.text),
            )
        )
    return samples


@dataclass(frozen=True)
class HeldOutScores:
    """Scores of the tuned and the untuned model on the pages after the training pages."""

    tuned: TextScores
    baseline: TextScores
    reference: str


def score_held_out(
    aligned: AlignedDocument,
    first_page: int,
    tuned_pages: Sequence[str],
    baseline_pages: Sequence[str],
) -> HeldOutScores:
    """Score both readings of pages `first_page`.. (0-based) against their ground truth only."""
    reference = aligned.text_from(first_page)
    return HeldOutScores(
        tuned=score_text(reference, join_pages(tuned_pages)),
        baseline=score_text(reference, join_pages(baseline_pages)),
        reference=reference,
    )


@dataclass(frozen=True)
class DocumentSamples:
    """A document's training lines from its first pages, and its ground truth cut to pages."""

    samples: list[LineImage]
    aligned: AlignedDocument
    #: Printed lines on the training pages, and how many of them were usable.
    lines_seen: int
    lines_usable: int
    #: The size of each training page as prepared for Tesseract (the samples' boxes are in
    #: its pixels).
    page_sizes: list[tuple[int, int]] = field(default_factory=list)


def page_reading(parameters: Mapping[str, Any]) -> tuple[PrepOptions, TesseractCall]:
    """The page preparation and Tesseract call a run's tesseract parameters stand for."""
    return (
        PrepOptions(
            crop=bool(parameters.get("crop", True)),
            deskew=bool(parameters.get("deskew", True)),
            contrast=str(parameters.get("contrast", "normalise")),
            target_line_pitch=int(parameters.get("upscale_below_pitch", 48)),
        ),
        TesseractCall(
            languages=str(parameters.get("languages", "frak2021")),
            psm=int(parameters.get("psm", 6)),
            oem=int(parameters.get("oem", 1)),
            tessdata_dir=tessdata_for(
                str(parameters.get("languages", "frak2021")),
                search_path(parameters.get("tessdata_dir"), "tesseract"),
            ),
        ),
    )


def document_samples(
    *,
    images: Sequence[Path],
    dpi: int,
    reference: str,
    held_out_lines: Sequence[Sequence[str]],
    parameters: Mapping[str, Any],
    prefix: str,
) -> DocumentSamples:
    """Training lines from the pages `images` (the first pages of a document) and the
    document's ground truth cut to those pages and the held-out pages after them (given as
    the lines an untuned run read there)."""
    prep, call = page_reading(parameters)
    call = replace(call, dpi=dpi)
    prepared_pages = []
    for image_path in images:
        with Image.open(image_path) as image:
            prepared = prepare_page(image, prep)
        prepared_pages.append((prepared, read_prepared_lines(prepared, call)))
    pages = [[line.text for line in printed] for _, printed in prepared_pages]
    aligned = align_truth(reference, [*pages, *held_out_lines])
    samples: list[LineImage] = []
    for number, (prepared, printed) in enumerate(prepared_pages, start=1):
        samples += training_samples(
            prepared, printed, aligned.lines[number - 1], f"{prefix}-p{number}"
        )
    seen = sum(len(printed) for _, printed in prepared_pages)
    usable = sum(t.usable for truths in aligned.lines[: len(images)] for t in truths)
    sizes = [prepared.image.size for prepared, _ in prepared_pages]
    return DocumentSamples(samples, aligned, seen, usable, sizes)
