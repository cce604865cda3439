"""A prepared page read column by column, so lines of two columns are not read across."""

from __future__ import annotations

from dataclasses import replace

from models.ocr.pageprep import PreparedPage
from models.ocr.tesseract_tsv import OcrWord, TesseractCall, parse_tsv, run_tesseract_tsv


def words_by_column(prepared: PreparedPage, call: TesseractCall) -> list[list[OcrWord]]:
    """Tesseract's words, one list per text column, left to right (one list for one column).

    psm 6 reads the page as one block: two columns side by side would come out as lines that
    run across both. Each column found by the crop is read on its own instead; word boxes are
    shifted back into the prepared page's pixels.
    """
    crop = prepared.crop
    if crop is None or len(crop.text_columns) < 2:
        return [parse_tsv(run_tesseract_tsv(prepared.image, call))]
    margin = round(prepared.line_pitch * prepared.scale / 2)
    columns = []
    for left, right in crop.text_columns:
        x0 = max(0, round((left - crop.kept[0]) * prepared.scale) - margin)
        x1 = min(prepared.image.width, round((right - crop.kept[0]) * prepared.scale) + margin)
        strip = prepared.image.crop((x0, 0, x1, prepared.image.height))
        words = parse_tsv(run_tesseract_tsv(strip, call))
        columns.append([replace(word, left=word.left + x0) for word in words])
    return columns
