"""Record metrics: field agreement, alignment, and the paper's gemini-2.0 figures reproduced."""

import os
from pathlib import Path

import pytest

from app.metrics.records import (
    RecordScores,
    align_records,
    field_exact,
    field_fuzzy,
    read_records_csv,
    score_records,
    score_records_rowwise,
)

BENCHMARK = Path(
    os.environ.get(
        "HISTOCR_BENCHMARK_DIR", Path(__file__).resolve().parents[3] / "shared" / "benchmark"
    )
)
FIELDS = ["first and middle names", "surname", "occupation", "address"]


def _benchmark_pairs(system: str) -> list[tuple[list, list]]:
    if not BENCHMARK.is_dir():
        pytest.fail(f"benchmark data not found at {BENCHMARK}")
    pairs = []
    for n in range(1, 6):
        fields, reference = read_records_csv(BENCHMARK / "ground_truth" / "csv" / f"type-{n}.csv")
        assert fields == FIELDS
        _, hypothesis = read_records_csv(
            BENCHMARK / "reference_outputs" / system / f"type-{n}.csv", fields
        )
        pairs.append((reference, hypothesis))
    return pairs


def _record(first: str, surname: str, occupation: str = "", address: str = "") -> dict:
    return dict(zip(FIELDS, (first, surname, occupation, address), strict=True))


def test_paper_figures_are_micro_over_all_fields_of_all_documents() -> None:
    total = RecordScores()
    for reference, hypothesis in _benchmark_pairs("gemini-2.0-img2csv"):
        total = total + score_records_rowwise(reference, hypothesis, FIELDS)
    assert total.reference == total.hypothesis == 345
    result = total.as_dict()["fields"]["all"]
    assert result["exact"] * 100 == pytest.approx(71.5, abs=0.1)
    assert result["fuzzy"] * 100 == pytest.approx(83.1, abs=0.1)


def test_alignment_scores_gemini_close_to_the_rowwise_figures() -> None:
    aligned, rowwise = RecordScores(), RecordScores()
    for reference, hypothesis in _benchmark_pairs("gemini-2.0-img2csv"):
        aligned = aligned + score_records(reference, hypothesis, FIELDS)
        rowwise = rowwise + score_records_rowwise(reference, hypothesis, FIELDS)
    assert aligned.precision > 0.95
    assert aligned.recall > 0.95
    aligned_all, rowwise_all = aligned.all_fields, rowwise.all_fields
    assert aligned_all.exact / aligned_all.compared == pytest.approx(
        rowwise_all.exact / rowwise_all.compared, abs=0.05
    )
    assert aligned_all.fuzzy / aligned_all.compared == pytest.approx(
        rowwise_all.fuzzy / rowwise_all.compared, abs=0.05
    )


def test_gpt4o_gets_a_score_despite_different_record_counts() -> None:
    total = RecordScores()
    for reference, hypothesis in _benchmark_pairs("gpt-4o-img2csv"):
        if len(reference) != len(hypothesis):
            with pytest.raises(ValueError, match="equal record counts"):
                score_records_rowwise(reference, hypothesis, FIELDS)
        total = total + score_records(reference, hypothesis, FIELDS)
    assert total.hypothesis < total.reference == 345
    assert 0.8 < total.f1 < 1.0
    assert 0.5 < total.as_dict()["fields"]["all"]["fuzzy"] < 1.0


def test_field_agreement() -> None:
    assert field_exact(" Förster ", "förster")
    assert field_exact(None, "")
    assert not field_exact("Schneider", "Schnieder")
    assert field_fuzzy("Schneidermeister", "Schneidermeister.")
    assert field_fuzzy(None, "  ")
    assert not field_fuzzy("", "Schneider")
    assert not field_fuzzy("Peterstraße A 517.", "Seilgraben A 422.")


def test_alignment_skips_missing_and_extra_records() -> None:
    reference = [
        _record("Christian", "Förster", "Fabrikmeister", "Großkölnstraße A 391."),
        _record("Johann", "Förster", "Schreiner", "Großkölnstraße A 393."),
        _record("Mathias", "Formanns", "Schneider", "Großkölnstraße A 393."),
    ]
    hypothesis = [
        _record("Christian", "Forster", "Fabrikmeister", "Großkölnstraße A 391"),
        _record("", "Alphabetisches Verzeichnis", "", ""),
        _record("Mathias", "Formanns", "Schneider", "Großkölnstraße A 393."),
    ]
    assert align_records(reference, hypothesis, FIELDS) == [(0, 0), (2, 2)]
    scores = score_records(reference, hypothesis, FIELDS)
    assert (scores.matched, scores.precision, scores.recall) == (2, 2 / 3, 2 / 3)
    fields = scores.as_dict()["fields"]
    assert fields["surname"] == {"exact": 0.5, "fuzzy": 1.0}
    assert fields["address"] == {"exact": 0.5, "fuzzy": 1.0}
    assert fields["all"] == {"exact": 6 / 8, "fuzzy": 1.0}


def test_alignment_keeps_order() -> None:
    a = _record("Peter", "Frank", "Schneider", "Peterstraße A 627.")
    b = _record("Heinrich", "Förster", "Konditor", "Kapuzinergraben B 594.")
    pairs = align_records([a, b], [b, a], FIELDS)
    assert len(pairs) == 1  # crossing pairs cannot both be kept


def test_threshold_controls_matching() -> None:
    reference = [_record("Peter", "Frank", "Schneider", "Peterstraße A 627.")]
    hypothesis = [_record("Peter", "Frank", "", "")]
    assert align_records(reference, hypothesis, FIELDS) == []
    assert align_records(reference, hypothesis, FIELDS, threshold=0.5) == [(0, 0)]


def test_empty_hypothesis() -> None:
    scores = score_records([_record("Peter", "Frank")], [], FIELDS)
    result = scores.as_dict()
    assert result["records"]["precision"] == 0.0
    assert result["records"]["recall"] == 0.0
    assert result["records"]["f1"] == 0.0
    assert result["fields"]["all"] == {"exact": 0.0, "fuzzy": 0.0}


def test_both_empty_is_perfect() -> None:
    result = score_records([], [], FIELDS).as_dict()
    assert result["records"]["f1"] == 1.0
    assert result["fields"]["surname"] == {"exact": 1.0, "fuzzy": 1.0}


def test_invented_records_score_zero() -> None:
    scores = score_records([], [_record("Peter", "Frank")], FIELDS)
    assert (scores.precision, scores.recall, scores.f1) == (0.0, 0.0, 0.0)


def test_sum_over_documents_is_micro() -> None:
    one = score_records([_record("Peter", "Frank")], [_record("Peter", "Frank")], FIELDS)
    two = score_records([_record("Anton", "Frank"), _record("X", "Y")], [], FIELDS)
    total = one + two
    assert (total.reference, total.hypothesis, total.matched) == (3, 1, 1)
    assert total.recall == pytest.approx(1 / 3)
    assert total.precision == 1.0
    assert total.as_dict()["fields"]["surname"] == {"exact": 1.0, "fuzzy": 1.0}


def test_read_records_csv_text_with_bom_and_extra_columns() -> None:
    text = "\ufeffaddress,first and middle names,id,occupation,surname,page_number\r\n"
    text += 'Töngesgasse 5.,Isaac,3,"Handels-\nmanns",Friedberg,1\r\n'
    fields, records = read_records_csv(text, FIELDS)
    assert fields == FIELDS
    assert records == [_record("Isaac", "Friedberg", "Handels-\nmanns", "Töngesgasse 5.")]
    all_fields, _ = read_records_csv(text)
    assert all_fields == [
        "address",
        "first and middle names",
        "occupation",
        "surname",
        "page_number",
    ]


def test_read_records_csv_missing_fields_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("name,street\nFrank,Pontstraße\n", encoding="utf-8")
    with pytest.raises(ValueError, match="lacks the field.*'surname'.*columns are 'name'"):
        read_records_csv(path, FIELDS)


def test_read_records_csv_rejects_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("surname\nFörster\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        read_records_csv(path)
