"""Tesseract's words into lines: reading order, joining, marking; and one real benchmark page."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from PIL import Image

from app.metrics.text import score_text
from models.ocr.layout import (
    FOOTER,
    HEADER,
    LayoutOptions,
    lines_from_words,
    page_text,
)
from models.ocr.pageprep import prepare_page
from models.ocr.tesseract_tsv import OcrWord, TesseractCall, parse_tsv, run_tesseract_tsv
from models.ocr.transcription import regularise
from tests.conftest import benchmark_file

HEADER_ROW = "\t".join(
    "level page_num block_num par_num line_num word_num left top width height conf text".split()
)


def _word(text, left, top, block=1, line=1, width=None, conf=90.0):
    return OcrWord(text, left, top, width or 20 * len(text), 40, conf, block, 1, line)


def test_parse_tsv_keeps_words_and_quotes():
    tsv = "\n".join(
        [
            HEADER_ROW,
            "1\t1\t0\t0\t0\t0\t0\t0\t1000\t1000\t-1\t",
            '5\t1\t1\t1\t1\t1\t10\t20\t30\t40\t91.5\t"Hr.',
            "5\t1\t1\t1\t1\t2\t50\t20\t30\t40\t-1\t ",
        ]
    )
    words = parse_tsv(tsv)
    assert [(w.text, w.left, w.confidence) for w in words] == [('"Hr.', 10, 91.5)]


def test_rows_merge_blocks_on_one_baseline_and_sort_top_down():
    words = [
        _word("zweite", 100, 200, block=1),
        _word("Zeile", 300, 202, block=2),  # same printed line, another Tesseract block
        _word("erste", 100, 100, block=3),
    ]
    lines = lines_from_words(words, LayoutOptions(join_wrapped=False, mark_headers=False))
    assert [line.text for line in lines] == ["erste", "zweite Zeile"]
    assert lines[1].box == (100, 200, 400, 242)


def test_hanging_indent_is_joined_headings_are_not():
    words = [
        _word("Förster,", 100, 100, line=1),
        _word("Christian,", 300, 100, line=1),
        _word("Großkölnstraße", 600, 100, line=1, width=400),  # runs to the right margin
        _word("391.", 160, 150, line=2),  # hanging indent: continues the entry
        _word("Forst,", 100, 200, line=3),
        _word("Johann,", 300, 200, line=3),
        _word("Maurer,", 500, 200, line=3, width=500),
        _word("Vorsteher.", 480, 250, line=4),  # centred heading: its own line
        _word("Hr.", 100, 300, line=5),
        _word("Caspar", 200, 300, line=5, width=700),
        _word("Cur=", 920, 300, line=5, width=80),  # hyphenated at the right margin
        _word("tiußens", 100, 350, line=6),
        _word("Hause.", 300, 350, line=6),
    ]
    lines = lines_from_words(words, LayoutOptions(mark_headers=False))
    assert [line.text for line in lines] == [
        "Förster, Christian, Großkölnstraße 391.",
        "Forst, Johann, Maurer,",
        "Vorsteher.",
        "Hr. Caspar Cur= tiußens Hause.",
    ]
    assert lines[0].printed_lines == 2


def test_confidences_and_noise():
    words = [
        _word("Peter", 100, 100, conf=95.0),
        _word("Aul,", 300, 100, conf=41.0),
        _word("..", 100, 200, line=2, conf=12.0),  # a speck read as punctuation
    ]
    lines = lines_from_words(words, LayoutOptions(join_wrapped=False, mark_headers=False))
    assert len(lines) == 1
    assert lines[0].mean_confidence == 68.0 and lines[0].min_confidence == 41.0


def test_running_head_and_signature_are_marked_and_kept_by_default():
    words = [
        _word("88", 100, 50, line=1),
        _word("Kirchen", 200, 50, line=1),
        _word("Hr.", 100, 100, line=2),
        _word("Joh.", 200, 100, line=2),
        _word("Zeibig,", 300, 100, line=2),
        _word("Substitut.", 450, 100, line=2),
        _word("H", 300, 150, line=3),
        _word("5", 340, 150, line=3),
    ]
    lines = lines_from_words(words, LayoutOptions(join_wrapped=False))
    assert [line.kind for line in lines] == [HEADER, "body", FOOTER]
    dropped = lines_from_words(words, LayoutOptions(join_wrapped=False, drop_headers=True))
    assert page_text(dropped) == "Hr. Joh. Zeibig, Substitut."


def test_boxes_are_mapped_to_the_original():
    words = [_word("Hr.", 100, 100)]
    lines = lines_from_words(words, map_box=lambda box: tuple(v // 2 for v in box))
    assert lines[0].box == (50, 50, 80, 70)


def test_regularise_long_s_and_superscript_e():
    diplomatic = "Chriſtian Fu\u0364rchtegott, Thomaskirch⸗"
    assert regularise(diplomatic) == "Christian Fürchtegott, Thomaskirch="


def _first_page_reference(document: str) -> str:
    # The ground truth separates pages by an empty line; type-1 has exactly one per page break.
    text = benchmark_file("ground_truth", "txt", f"{document}.txt").read_text()
    return text.split("\n\n")[0]


@pytest.mark.e2e  # Tesseract on a real page: 20-30 s
def test_benchmark_page_lines(tmp_path: Path):
    """type-1 page 1 (dark book edge, facing page's text on the left): boxes, order, CER."""
    pdf = benchmark_file("pdfs", "type-1.pdf")
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "300",
            "-gray",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            str(pdf),
            str(tmp_path / "page"),
        ],
        check=True,
    )
    with Image.open(next(tmp_path.glob("page*.png"))) as opened:
        image = opened.convert("L")
    prepared = prepare_page(image)
    words = parse_tsv(run_tesseract_tsv(prepared.image, TesseractCall()))
    lines = lines_from_words(words, map_box=prepared.to_original)
    assert len(lines) > 30
    for line in lines:
        left, top, right, bottom = line.box
        assert 0 <= left < right <= image.width and 0 <= top < bottom <= image.height
    # The facing page's words (`913.`, `A 655.` at the left edge) must not be read.
    assert all(line.box[0] > 300 for line in lines)
    # Order and overlap of printed lines in the deskewed frame (boxes mapped back onto the
    # tilted original overlap by the tilt alone).
    printed = lines_from_words(words, LayoutOptions(join_wrapped=False))
    tops = [line.box[1] for line in printed]
    assert tops == sorted(tops), "lines follow the text from top to bottom"
    overlapping = [
        (a.text, b.text)
        for a, b in zip(printed, printed[1:], strict=False)
        if _vertical_overlap(a.box, b.box) > 0.5
    ]
    # Measured 7 of 41: Tesseract hangs the swash capital F that reaches below the baseline
    # onto the line above ("oͤrſter" / "Fa „Mathias"); bound it so it cannot get worse unseen.
    assert len(overlapping) <= len(printed) // 4, overlapping
    scores = score_text(_first_page_reference("type-1"), regularise(page_text(lines)))
    # Measured 2-3 % (normalized); Tesseract alone, without the crop, is above 25 %.
    assert scores.cer_normalized.rate < 0.08


def _vertical_overlap(a, b) -> float:
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    return max(0, overlap) / min(a[3] - a[1], b[3] - b[1])
