"""A training set's line images: each planned line cut from its page, prepared again exactly as
the run that read it prepared it (deskewed, cropped, rescaled, contrast flattened), so the
recogniser trains on what it sees when it reads. Written as the `name.png` + `name.gt.txt`
pairs that tesstrain, kraken and Calamari read, with a manifest of where each came from;
zipped for the file store and the export.

A stored line's box is the union of its words' boxes: one swash capital that reaches into the
line above makes it half again as tall (on the benchmark's type-1 a third of the boxes are 1.3
to 1.8 times the page's median line), and cut at that box an image holds parts of two printed
lines under one text. So the page's printed lines are read again (`read_prepared_lines`: the
same reading, wrapped entries not joined, each with the band of its typical word, as
`models.ocr.linecut` cuts training lines); each planned line takes the vertical band of the
printed line its box overlaps that reads most like it, keeping its own left and right edges.
A wrapped entry the engine joined into one line (two printed lines read more like it than any
one) becomes two samples, its text cut between them; a line no printed line reads like is left
out.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image
from rapidfuzz.distance import Levenshtein

from app.pipeline.adapt import align_truth, page_reading
from app.services.recognizer_data import PlannedLine, PlannedPage, Source, TrainingPlan
from app.storage import LocalStorage
from models.ocr.layout import Box
from models.ocr.linecut import (
    LineImage,
    PrintedLine,
    box_in_prepared,
    cut_line,
    median_height,
    read_prepared_lines,
    write_pairs,
)
from models.ocr.orientation import Orientation
from models.ocr.pageprep import prepare_page
from models.ocr.training import TrainingCancelled
from models.ocr.transcription import regularise

#: The file in the exported zip that says where each line image came from.
MANIFEST = "manifest.csv"
#: How alike (1 - normalised edit distance) a printed line's reading and a planned line's must
#: be for the printed line's band to be the planned line's.
MIN_SIMILARITY = 0.6


@dataclass(frozen=True)
class CutLine:
    """A line image written to the training folder."""

    image: Path
    text: str
    source: Source
    page_id: int


def cut_training_set(
    plan: TrainingPlan,
    storage: LocalStorage,
    folder: Path,
    cancelled: Callable[[], bool] | None = None,
) -> list[CutLine]:
    """Cut every planned line that a printed line confirms (see the module docstring) and write
    the `*.png` + `*.gt.txt` pairs and the manifest into `folder`; returns them in page order.
    TrainingCancelled when `cancelled()` turns true (checked between pages)."""
    folder.mkdir(parents=True, exist_ok=True)
    cut: list[CutLine] = []
    manifest: list[tuple[str, ...]] = [
        ("name", "source", "document_id", "page", "run_id", "line", "text")
    ]
    for page in plan.pages:
        if cancelled is not None and cancelled():
            raise TrainingCancelled("training cancelled")
        if not page.lines or not page.image_key:
            continue
        samples = _cut_page(page, storage)
        written = write_pairs([sample for sample, _ in samples], folder)
        for path, (sample, line) in zip(written, samples, strict=True):
            cut.append(CutLine(path, sample.text, line.source, page.page_id))
            row = (page.document_id, page.number, page.run_id, line.position + 1)
            manifest.append((sample.name, line.source, *map(str, row), sample.text))
    with (folder / MANIFEST).open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(manifest)
    return cut


def _cut_page(page: PlannedPage, storage: LocalStorage) -> list[tuple[LineImage, PlannedLine]]:
    """The page prepared as its run prepared it, each confirmed line cut at its band."""
    prep, call = page_reading(page.parameters)
    with Image.open(storage.path(page.image_key)) as stored:
        upright = Orientation(page.rotate, 0.0).upright(stored)
        prepared = prepare_page(upright, prep)
    printed = read_prepared_lines(prepared, replace(call, dpi=page.dpi or 300))
    # A box on the stored image, turned with the page: the reverse quarter turn's mapping.
    back = Orientation((360 - page.rotate) % 360, 0.0)
    segments = [
        segments_of(
            box_in_prepared(prepared, back.to_stored(line.box, upright.size)), line, printed
        )
        for line in page.lines
    ]
    height = median_height(printed_line.box for printed_line in printed)
    samples = []
    for line, parts in zip(page.lines, segments, strict=True):
        suffixes = ["a", "b"] if len(parts) == 2 else [""] * len(parts)  # a joined entry: two
        for suffix, part in zip(suffixes, parts, strict=True):
            box = part.box
            width = (box[2] - box[0]) / max(1, part.ocr_length)
            widened = (
                max(0, round(box[0] - width * part.missing_before)),
                box[1],
                min(prepared.image.width, round(box[2] + width * part.missing_after)),
                box[3],
            )
            name = f"d{page.document_id}-p{page.number:03d}-l{line.position + 1:03d}{suffix}"
            image = cut_line(prepared.image, widened, height)
            samples.append((LineImage(name=name, image=image, text=part.text), line))
    return samples


@dataclass(frozen=True)
class Segment:
    """One printed line's share of a planned line: where to cut and its text."""

    box: Box
    text: str
    missing_before: int
    missing_after: int
    ocr_length: int


def segments_of(box: Box, line: PlannedLine, printed: Sequence[PrintedLine]) -> list[Segment]:
    """Where the planned line is printed: the printed line inside its box (in the prepared
    image) that reads most like it, with that line's vertical band and the planned box's left
    and right edges; or, where two printed lines one after the other read more like it than any
    one (a wrapped entry the engine joined), each of the two with its share of the text (the
    text aligned to their readings, each share kept where it is usable, as ground truth is:
    `LineTruth.usable`). Nothing where no printed line reads like it."""
    reading = " ".join(regularise(line.reading).split())
    inside = sorted(
        (
            candidate
            for candidate in printed
            if box[1] <= (candidate.box[1] + candidate.box[3]) / 2 <= box[3]
            and candidate.box[0] < box[2]
            and candidate.box[2] > box[0]
        ),
        key=lambda candidate: candidate.box[1],
    )

    def similarity(text: str) -> float:
        return Levenshtein.normalized_similarity(reading, " ".join(text.split()))

    if not inside:
        return []
    best = max(inside, key=lambda candidate: similarity(candidate.text))
    single = similarity(best.text)
    pairs = list(zip(inside, inside[1:], strict=False))
    joined = max(pairs, key=lambda pair: similarity(f"{pair[0].text} {pair[1].text}"), default=None)
    if joined is not None and similarity(f"{joined[0].text} {joined[1].text}") > single:
        return _split(line, joined)
    if single < MIN_SIMILARITY:
        return []
    left, top, right, bottom = best.box
    length = line.ocr_length or len(reading)
    return [
        Segment(
            (min(box[0], left), top, max(box[2], right), bottom),
            line.text,
            line.missing_before,
            line.missing_after,
            length,
        )
    ]


def _split(line: PlannedLine, pair: tuple[PrintedLine, PrintedLine]) -> list[Segment]:
    """A joined entry's text cut between its two printed lines (their diplomatic readings: the
    text keeps the reading's letter forms)."""
    readings = [printed.diplomatic or printed.text for printed in pair]
    shares = align_truth(line.text, [readings]).lines[0]
    if not all(share.usable for share in shares):
        return []  # one line's image without its text, or text without its image: neither
    return [
        Segment(printed.box, share.text, share.missing_before, share.missing_after, len(share.ocr))
        for printed, share in zip(pair, shares, strict=True)
    ]


def counts(cut: Sequence[CutLine]) -> dict[str, int]:
    """Lines in all, from each source, and the pages they come from."""
    return {
        "lines": len(cut),
        "verified_lines": sum(1 for line in cut if line.source == "verified"),
        "ground_truth_lines": sum(1 for line in cut if line.source == "ground_truth"),
        "pages": len({line.page_id for line in cut}),
    }


def zip_training_set(folder: Path) -> bytes:
    """The folder's pairs and manifest as one zip (what the export route hands out)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            if path.name == MANIFEST or path.name.endswith((".png", ".gt.txt")):
                archive.write(path, arcname=path.name)
    return buffer.getvalue()
