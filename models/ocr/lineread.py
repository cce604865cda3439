"""Read a page line by line: Tesseract finds the lines, then reads each one cut out on its own.

At `--psm 6` Tesseract both finds the page's lines and reads them, from line images it cuts
itself; where a swash capital reaches into the line above, it hangs the capital on the wrong
line and reads neither well ("Nransvis" for "François", "örster" for "Förster"). Cut out by
their word bands with a margin (`models.ocr.linecut`), the same lines are read as single
lines (`--psm 13`) with the capital in place. On the benchmark's pages 2-3 that took the
normalized CER from 3.10 to 1.93 % on type-1 and from 7.73 to 6.41 % on type-5
(bench/finetune.py). It is also how a fine-tuned model sees lines: it was trained on exactly
these cuts (models/ocr/training.py), so it reads best this way.

All of a column's lines go to one Tesseract process as a list of images (the model is loaded
once); the words come back with their boxes in the page's pixels, one block per line, so the
usual layout (rows, headers, wrapped entries) applies to them unchanged.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from models.ocr.layout import LayoutOptions, lines_from_words
from models.ocr.linecut import cut_box, line_band, median_height
from models.ocr.pageprep import PreparedPage
from models.ocr.tesseract_tsv import OcrWord, TesseractCall, run_tesseract

#: Line-reading mode: the image is one text line, no layout analysis.
_RAW_LINE_PSM = 13


def reread_lines(
    prepared: PreparedPage, words: Sequence[OcrWord], call: TesseractCall
) -> list[OcrWord]:
    """The words of one column (from the page-level reading) read again line by line.

    Returns words in the prepared page's pixels; each printed line is its own block, so
    `lines_from_words` rebuilds the same lines from them. Lines whose cut reads empty keep
    the page-level reading.
    """
    printed = lines_from_words(words, LayoutOptions(join_wrapped=False, mark_headers=False))
    if not printed:
        return list(words)
    bands = [line_band(line) for line in printed]
    # The margin follows the bands' height, as when training lines are cut (linecut).
    height = median_height(bands)
    image = prepared.image
    origins = []
    with tempfile.TemporaryDirectory(prefix="histocr-lines-") as folder:
        paths = []
        for index, band in enumerate(bands):
            box = cut_box(band, height, image.size)
            path = Path(folder) / f"line-{index:04d}.pgm"
            image.crop(box).convert("L").save(path)
            paths.append(path)
            origins.append(box[:2])
        listing = Path(folder) / "lines.txt"
        listing.write_text("".join(f"{path}\n" for path in paths), encoding="utf-8")
        tsv = _run(listing, call)
    reread = _words_by_image(tsv)
    result: list[OcrWord] = []
    for index, line in enumerate(printed):
        found = reread.get(index + 1, [])
        if not found:
            result.extend(
                replace(word, block=index + 1, paragraph=0, line=0) for word in line.words
            )
            continue
        x, y = origins[index]
        result.extend(
            replace(
                word, left=word.left + x, top=word.top + y, block=index + 1, paragraph=0, line=0
            )
            for word in found
        )
    return result


def _run(listing: Path, call: TesseractCall) -> str:
    """Tesseract on a list of line images (`--psm 13`), TSV on stdout."""
    return run_tesseract(call, listing, replace(call, psm=_RAW_LINE_PSM).arguments())


def _words_by_image(tsv: str) -> dict[int, list[OcrWord]]:
    """The non-empty words of a multi-image TSV, by image (`page_num`, from 1)."""
    found: dict[int, list[OcrWord]] = {}
    reader = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        if row.get("level") != "5" or not (row.get("text") or "").strip():
            continue
        found.setdefault(int(row["page_num"]), []).append(
            OcrWord(
                text=row["text"].strip(),
                left=int(row["left"]),
                top=int(row["top"]),
                width=int(row["width"]),
                height=int(row["height"]),
                confidence=float(row["conf"]),
                block=int(row["page_num"]),
                paragraph=0,
                line=0,
            )
        )
    return found
