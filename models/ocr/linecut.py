"""Line images for training: each printed line cut from the prepared page with its text.

Training images must look like what the recogniser sees when it reads: the page as
`prepare_page` hands it to Tesseract (deskewed, cropped, rescaled, contrast flattened), cut
at the line's box plus a small margin. Two ways in:

- `printed_lines`: Tesseract's own printed lines of a prepared page (wrapped entries not
  joined, so one image holds one printed line), boxes already in the prepared image's pixels;
- `box_in_prepared`: a box stored in page-image pixels (the lines table, `TextLine.bbox`)
  mapped back into the prepared image, the inverse of `PreparedPage.to_original`.

Written as the `name.png` + `name.gt.txt` pairs that tesstrain, kraken and Calamari read.
"""

from __future__ import annotations

import math
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from models.ocr.columns import words_by_column
from models.ocr.layout import Box, LayoutOptions, OcrLine, lines_from_words
from models.ocr.pageprep import PreparedPage
from models.ocr.tesseract_tsv import TesseractCall
from models.ocr.transcription import regularise

#: Margin around a line's box, in multiples of the page's median line height: a little white
#: on the left and right (Tesseract pads its own line images too), less above and below,
#: where the neighbouring lines' ascenders and descenders start.
MARGIN_X = 0.5
MARGIN_Y = 0.15


@dataclass(frozen=True)
class PrintedLine:
    """One printed line of a prepared page: its box there and what the recogniser read."""

    box: Box
    #: The regularised reading (the form ground truth is written in), for alignment.
    text: str
    confidence: float
    #: The reading as the model wrote it (ſ, uͤ): the forms a training target keeps.
    diplomatic: str = ""


@dataclass(frozen=True)
class LineImage:
    """A training sample: the cut line image and its true text."""

    name: str
    image: Image.Image
    text: str
    #: Where the image was cut from, in the prepared page's pixels (margin included).
    box: Box | None = None


def printed_lines(prepared: PreparedPage, call: TesseractCall) -> list[PrintedLine]:
    """The page's printed lines as Tesseract reads them, in reading order, boxes in the
    prepared image's pixels.

    The same reading as the engine's (columns read one by one), but wrapped entries are not
    joined: a joined entry's box would hold two printed lines, and a line image must hold one.
    """
    options = LayoutOptions(join_wrapped=False)
    lines: list[OcrLine] = []
    for words in words_by_column(prepared, call):
        lines.extend(lines_from_words(words, options))
    return [
        PrintedLine(
            box=line_band(line),
            text=regularise(line.text),
            confidence=line.mean_confidence,
            diplomatic=line.text,
        )
        for line in lines
    ]


def line_band(line: OcrLine) -> Box:
    """The line's box with its height taken from its typical word, not its tallest.

    A line's box is the union of its words', and one word Tesseract ran into the line above
    or below (a swash capital, a word box that took in its neighbours) makes it two or three
    lines tall; the image would then hold several printed lines under one text. The median
    word top and bottom are the line's own band; MARGIN_Y adds back ascenders and descenders.
    """
    if len(line.words) < 2:
        return line.box
    top = round(statistics.median(word.top for word in line.words))
    bottom = round(statistics.median(word.bottom for word in line.words))
    return (line.box[0], max(line.box[1], top), line.box[2], min(line.box[3], bottom))


def read_prepared_lines(
    prepared: PreparedPage, call: TesseractCall | None = None
) -> list[PrintedLine]:
    """`printed_lines` with the call's resolution fitted to the preparation's scale."""
    call = call or TesseractCall()
    if prepared.scale != 1.0:
        call = replace(call, dpi=round(call.dpi * prepared.scale))
    return printed_lines(prepared, call)


def box_in_prepared(prepared: PreparedPage, box: Box) -> Box:
    """A box in original page-image pixels mapped into the prepared image.

    `to_original` maps a prepared box's four corners through the deskew rotation and keeps
    their bounding box, which is wider and taller than the line by the rotation. Inverting the
    bounding box (W = w·cos + h·sin, H = w·sin + h·cos) gives the line's own width and
    height, centred where its centre maps to.
    """
    left, top, right, bottom = box
    width, height = right - left, bottom - top
    theta = math.radians(prepared.angle)
    cos, sin = abs(math.cos(theta)), abs(math.sin(theta))
    determinant = cos * cos - sin * sin
    inner_width = max(1.0, (width * cos - height * sin) / determinant)
    inner_height = max(1.0, (height * cos - width * sin) / determinant)
    if inner_height < 0.5 * height:
        # The bounding box is too flat to invert (a rounding of a few pixels on a very wide
        # line): keep the height as stored.
        inner_height = float(height)
    centre_x, centre_y = _rotate(
        (left + right) / 2, (top + bottom) / 2, prepared.original_size, -prepared.angle
    )
    offset_x, offset_y = (prepared.crop.kept[0], prepared.crop.kept[1]) if prepared.crop else (0, 0)
    scale = prepared.scale
    image_width, image_height = prepared.image.size
    return (
        max(0, math.floor((centre_x - inner_width / 2 - offset_x) * scale)),
        max(0, math.floor((centre_y - inner_height / 2 - offset_y) * scale)),
        min(image_width, math.ceil((centre_x + inner_width / 2 - offset_x) * scale)),
        min(image_height, math.ceil((centre_y + inner_height / 2 - offset_y) * scale)),
    )


def _rotate(x: float, y: float, size: tuple[int, int], angle: float) -> tuple[float, float]:
    # The rotation `_unrotate` in pageprep undoes, about the image centre (Pillow's sense).
    cx, cy = size[0] / 2, size[1] / 2
    theta = math.radians(angle)
    dx, dy = x - cx, y - cy
    return (
        cx + dx * math.cos(theta) - dy * math.sin(theta),
        cy + dx * math.sin(theta) + dy * math.cos(theta),
    )


def cut_box(box: Box, line_height: float, size: tuple[int, int]) -> Box:
    """The line's box plus its margin (see MARGIN_X, MARGIN_Y), inside an image of `size`."""
    left, top, right, bottom = box
    margin_x = round(MARGIN_X * line_height)
    margin_y = round(MARGIN_Y * line_height)
    return (
        max(0, left - margin_x),
        max(0, top - margin_y),
        min(size[0], right + margin_x),
        min(size[1], bottom + margin_y),
    )


def cut_line(image: Image.Image, box: Box, line_height: float) -> Image.Image:
    """The line cut out of the image with its margin (`cut_box`)."""
    return image.crop(cut_box(box, line_height, image.size))


def median_height(boxes: Iterable[Box]) -> float:
    """The median height of the boxes (the page's line height; 0.0 for none)."""
    heights = [bottom - top for _, top, _, bottom in boxes]
    return float(statistics.median(heights)) if heights else 0.0


def cut_lines(
    prepared: PreparedPage, boxes: Sequence[Box], texts: Sequence[str], prefix: str
) -> list[LineImage]:
    """One sample per (box in prepared pixels, text), named `prefix-NNN` in page order."""
    height = median_height(boxes)
    return [
        LineImage(
            name=f"{prefix}-{index:03d}",
            image=cut_line(prepared.image, box, height),
            text=unicodedata.normalize("NFC", text.strip()),
            box=cut_box(box, height, prepared.image.size),
        )
        for index, (box, text) in enumerate(zip(boxes, texts, strict=True))
    ]


def write_pairs(samples: Iterable[LineImage], folder: Path) -> list[Path]:
    """Write each sample as `name.png` and `name.gt.txt`; returns the image paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in samples:
        image_path = folder / f"{sample.name}.png"
        sample.image.save(image_path, dpi=(300, 300))
        (folder / f"{sample.name}.gt.txt").write_text(sample.text + "\n", encoding="utf-8")
        written.append(image_path)
    return written


def read_pairs(folder: Path) -> list[tuple[Path, str]]:
    """The (image, text) pairs of a folder written by `write_pairs` (or by other tools)."""
    pairs = []
    for truth in sorted(folder.glob("*.gt.txt")):
        image = truth.with_name(truth.name.removesuffix(".gt.txt") + ".png")
        if image.is_file():
            pairs.append((image, truth.read_text(encoding="utf-8").strip()))
    return pairs
