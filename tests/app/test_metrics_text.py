"""CER/WER definitions, and the paper's reference numbers reproduced on the benchmark."""

import os
from pathlib import Path

import pytest

from app.metrics.text import (
    ErrorCounts,
    TextScores,
    join_pages,
    normalize_raw,
    normalize_strict,
    score_documents,
    score_text,
)
from tests.helpers import REFERENCE_NUMBERS

BENCHMARK = Path(
    os.environ.get(
        "HISTOCR_BENCHMARK_DIR", Path(__file__).resolve().parents[3] / "shared" / "benchmark"
    )
)
TYPES = range(1, 6)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("system", "normalized", "raw"), REFERENCE_NUMBERS)
def test_reference_numbers_reproduce(system: str, normalized: float, raw: float) -> None:
    if not BENCHMARK.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARK}")
    pairs = [
        (
            _read(BENCHMARK / "ground_truth" / "txt" / f"type-{n}.txt"),
            _read(BENCHMARK / "reference_outputs" / system / f"type-{n}.txt"),
        )
        for n in TYPES
    ]
    scores = score_documents(pairs)
    assert scores.cer_normalized.rate * 100 == pytest.approx(normalized, abs=0.01)
    assert scores.cer.rate * 100 == pytest.approx(raw, abs=0.01)


def test_pages_joined_score_like_the_document_file() -> None:
    system = BENCHMARK / "reference_outputs" / "gemini-2.0-flash"
    reference = _read(BENCHMARK / "ground_truth" / "txt" / "type-1.txt")
    pages = [_read(system / "type-1" / f"page-{p}.txt") for p in (1, 2, 3)]
    assert score_text(reference, join_pages(pages)) == score_text(
        reference, _read(system / "type-1.txt")
    )


def test_identical_texts_score_zero() -> None:
    scores = score_text(
        "Förster, Christian,\nFabrikmeister.", "Förster, Christian,\nFabrikmeister."
    )
    assert scores.as_dict()["cer"] == 0.0
    assert scores.as_dict()["wer_normalized"] == 0.0
    assert scores.cer.reference_length == len("Förster, Christian, Fabrikmeister.")


def test_raw_folds_line_breaks_tabs_and_runs_of_whitespace() -> None:
    assert normalize_raw("  a\tb\n\nc  \r\n d ") == "a b c d"
    assert score_text("a b\nc", "a  b\tc\n").cer.distance == 0


def test_strict_drops_non_ascii_instead_of_transliterating() -> None:
    assert normalize_strict("Förster, Großkölnstraße A 459½.") == "frster groklnstrae a 459"
    assert normalize_strict("Hüh- nermarkt  B 977.") == "hh nermarkt b 977"
    assert normalize_strict("М. Рögе") == "g"  # Cyrillic look-alikes vanish too


def test_strict_collapses_spaces_left_by_dropped_characters() -> None:
    assert normalize_strict("a — b ö c") == "a b c"


def test_decomposed_umlauts_score_as_their_composed_form() -> None:
    assert score_text("Förster", "Fo\u0308rster").cer.distance == 0


def test_cer_counts_edits_over_reference_length() -> None:
    scores = score_text("Schneider", "Schnieder")
    assert scores.cer == ErrorCounts(distance=2, reference_length=9)
    assert scores.wer == ErrorCounts(distance=1, reference_length=1)


def test_wer_aligns_word_lists() -> None:
    scores = score_text("Frank, Peter, Schneider", "Frank, Schneider, extra")
    assert scores.wer == ErrorCounts(distance=2, reference_length=3)
    assert scores.wer_normalized == ErrorCounts(distance=2, reference_length=3)


def test_empty_reference() -> None:
    assert score_text("", "").cer.rate == 0.0
    assert score_text("  \n", "text").cer == ErrorCounts(distance=4, reference_length=0)
    assert score_text("", "text").cer.rate == 1.0
    assert score_text("", "text").wer == ErrorCounts(distance=1, reference_length=0)


def test_empty_hypothesis_is_all_deletions() -> None:
    assert score_text("ab cd", "").cer.rate == 1.0
    assert score_text("ab cd", "").wer == ErrorCounts(distance=2, reference_length=2)


def test_corpus_score_is_micro_averaged() -> None:
    total = score_documents([("abcd", "abcd"), ("ab", "xy")])
    assert total.cer == ErrorCounts(distance=2, reference_length=6)
    assert total.cer.rate == pytest.approx(1 / 3)
    assert score_text("abcd", "abcd") + score_text("ab", "xy") == total
    assert score_documents([]) == TextScores()


def test_as_dict_keys() -> None:
    result = score_text("Ab c", "ab").as_dict()
    assert {"cer", "cer_normalized", "wer", "wer_normalized", "characters", "words"} <= set(result)
    assert result["characters"] == 4
    assert result["words"] == 2
    assert result["cer_distance"] == 3
    assert result["cer_normalized_distance"] == 2
    assert isinstance(result["cer"], float)
