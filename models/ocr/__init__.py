"""Offline OCR building blocks for Tesseract: page preparation, layout, regularisation.

Engine-independent (imports nothing from app/ or workers/). The Tesseract adapter calls:

    prepared = prepare_page(image, PrepOptions())             # pageprep
    words = parse_tsv(run_tesseract_tsv(prepared.image, TesseractCall()))
    lines = lines_from_words(words, LayoutOptions(), map_box=prepared.to_original)
    diplomatic = page_text(lines); text = regularise(diplomatic)
"""

from models.ocr.layout import LayoutOptions, OcrLine, lines_from_words, page_text
from models.ocr.pageprep import PageCrop, PreparedPage, PrepOptions, prepare_page
from models.ocr.tesseract_tsv import (
    SHIPPED_TESSDATA,
    OcrWord,
    TesseractCall,
    TesseractFailed,
    parse_tsv,
    run_tesseract_tsv,
)
from models.ocr.transcription import REGULARISATION, regularise

__all__ = [
    "REGULARISATION",
    "SHIPPED_TESSDATA",
    "LayoutOptions",
    "OcrLine",
    "OcrWord",
    "PageCrop",
    "PrepOptions",
    "PreparedPage",
    "TesseractCall",
    "TesseractFailed",
    "lines_from_words",
    "page_text",
    "parse_tsv",
    "prepare_page",
    "regularise",
    "run_tesseract_tsv",
]
