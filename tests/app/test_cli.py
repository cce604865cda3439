"""The `histocr evaluate` and `histocr process` commands, run as a user runs them."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.metrics.text import score_text
from tests.conftest import ROOT, benchmark_file
from tests.helpers import PRINTED_LINES, REFERENCE_NUMBERS, render_page

pytestmark = pytest.mark.e2e  # every test runs `histocr` in a subprocess

TYPES = range(1, 6)
FIELDS = ["first and middle names", "surname", "occupation", "address"]

# benchmark/README.md, "Reference numbers on these five documents (micro CER)", in percent.

# A line the ground truth has and the page does not: the scores cannot be perfect.
MISSING_LINE = "Zimmermann, Heinrich, Kaufmann, Neumarkt 3."


def histocr(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the `histocr` command in a child process, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_clean_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    """A failure with the given exit code and a message on stderr, not a stack trace."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "Error" in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# --- histocr evaluate ------------------------------------------------------------------------


def text_pairs(system: str) -> list[str]:
    args = []
    for n in TYPES:
        args += ["--gt", str(benchmark_file("ground_truth", "txt", f"type-{n}.txt"))]
        args += ["--hyp", str(benchmark_file("reference_outputs", system, f"type-{n}.txt"))]
    return args


def csv_pairs(system: str) -> list[str]:
    args = []
    for n in TYPES:
        args += ["--gt-csv", str(benchmark_file("ground_truth", "csv", f"type-{n}.csv"))]
        args += ["--hyp-csv", str(benchmark_file("reference_outputs", system, f"type-{n}.csv"))]
    return args


@pytest.mark.parametrize(("system", "normalized", "raw"), REFERENCE_NUMBERS)
def test_evaluate_reproduces_the_reference_table(system, normalized, raw):
    result = histocr("evaluate", *text_pairs(system), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["cer_normalized"] * 100 == pytest.approx(normalized, abs=0.01)
    assert scores["cer"] * 100 == pytest.approx(raw, abs=0.01)
    assert 0 <= scores["wer_normalized"] <= scores["wer"] < 1.5
    # All five documents are in the micro average, not only the first.
    truths = [benchmark_file("ground_truth", "txt", f"type-{n}.txt") for n in TYPES]
    lengths = sum(len(" ".join(path.read_text("utf-8").split())) for path in truths)
    assert scores["characters"] == lengths


def test_evaluate_prints_percentages_without_json():
    result = histocr("evaluate", *text_pairs("tesseract-paper"))
    assert result.returncode == 0, result.stderr
    assert "CER 38.99%" in result.stdout and "normalized CER 32.32%" in result.stdout
    assert "5 document(s)" in result.stdout


def test_evaluate_records_of_gemini_against_the_ground_truth():
    result = histocr("evaluate", *csv_pairs("gemini-2.0-img2csv"), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    records = scores["records"]
    assert {"precision", "recall", "f1"} <= set(records)
    assert records["reference"] == records["hypothesis"] == 345
    # gemini returns the right number of records and nearly all of them pair up.
    assert 0.95 < records["precision"] <= 1 and 0.95 < records["recall"] <= 1
    assert records["f1"] == pytest.approx(
        2 * records["precision"] * records["recall"] / (records["precision"] + records["recall"])
    )
    fields = scores["fields"]
    assert set(fields) == {*FIELDS, "all"}
    for name, agreement in fields.items():
        assert set(agreement) == {"exact", "fuzzy"}, name
        assert 0 <= agreement["exact"] <= agreement["fuzzy"] <= 1, (name, agreement)
    # Over aligned pairs, a little above the paper's row-by-row 71.5 % / 83.1 %.
    assert 0.70 < fields["all"]["exact"] < 0.80
    assert 0.80 < fields["all"]["fuzzy"] < 0.90
    assert fields["surname"]["exact"] > fields["occupation"]["exact"]
    assert "cer" not in scores


def test_evaluate_text_and_records_together():
    result = histocr(
        "evaluate", *text_pairs("gemini-2.0-flash"), *csv_pairs("gemini-2.0-img2csv"), "--json"
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["cer_normalized"] * 100 == pytest.approx(1.17, abs=0.01)
    assert scores["records"]["reference"] == 345


def test_evaluate_usage_errors_exit_2_with_a_message(tmp_path):
    gt = benchmark_file("ground_truth", "txt", "type-1.txt")
    hyp = benchmark_file("reference_outputs", "gpt-4o", "type-1.txt")
    gt_csv = benchmark_file("ground_truth", "csv", "type-1.csv")

    mismatched = histocr("evaluate", "--gt", gt, "--gt", gt, "--hyp", hyp, "--json")
    assert_clean_error(mismatched, 2, "--hyp once per --gt")
    assert mismatched.stdout == ""

    csv_mismatched = histocr("evaluate", "--gt-csv", gt_csv, "--json")
    assert_clean_error(csv_mismatched, 2, "--hyp-csv once per --gt-csv")

    nothing = histocr("evaluate", "--json")
    assert_clean_error(nothing, 2, "nothing to evaluate")

    missing = tmp_path / "no-such-file.txt"
    absent = histocr("evaluate", "--gt", gt, "--hyp", missing)
    assert_clean_error(absent, 2, "no-such-file.txt", "does not exist")


def test_evaluate_non_utf8_file_is_an_error_with_a_message(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Förster, Christian, Fabrikmeister\n".encode("latin-1"))
    gt = benchmark_file("ground_truth", "txt", "type-1.txt")
    result = histocr("evaluate", "--gt", gt, "--hyp", latin1, "--json")
    assert_clean_error(result, 1, "latin1.txt", "not UTF-8")
    assert result.stdout == ""


def test_evaluate_csv_without_the_schema_columns_is_an_error(tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("name,street\nFörster,Großkölnstraße\n", encoding="utf-8")
    gt_csv = benchmark_file("ground_truth", "csv", "type-1.csv")
    result = histocr("evaluate", "--gt-csv", gt_csv, "--hyp-csv", wrong, "--json")
    assert_clean_error(result, 1, "surname")
    assert result.stdout == ""


# --- histocr process -------------------------------------------------------------------------


def records_csv(path: Path, lines: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FIELDS)
        for line in lines:
            surname, first, occupation, address = (part.strip() for part in line.split(",", 3))
            writer.writerow([first, surname, occupation, address])
    return path


@pytest.fixture
def scan(tmp_path) -> Path:
    return render_page(tmp_path / "adressbuch-1822.png", PRINTED_LINES)


def test_process_one_page_with_ground_truth(tmp_path, scan):
    truth_lines = [*PRINTED_LINES, MISSING_LINE]
    gt_txt = tmp_path / "adressbuch-1822.gt.txt"
    gt_txt.write_text("\n".join(truth_lines) + "\n", encoding="utf-8")
    gt_csv = records_csv(tmp_path / "adressbuch-1822.gt.csv", truth_lines)
    out = tmp_path / "out"

    result = histocr(
        "process",
        scan,
        "--ocr",
        "tesseract",
        "--ground-truth",
        gt_txt,
        "--ground-truth-csv",
        gt_csv,
        "--out",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = json.loads(result.stdout)  # one JSON object, nothing else on stdout
    assert summary["status"] == "done" and summary["pages"] == 1 and summary["errors"] == []
    assert [(s["stage"], s["engine"]) for s in summary["stages"]] == [
        ("ocr", "tesseract"),
        ("extract", "crf"),
    ]

    transcription = (out / "adressbuch-1822.txt").read_text(encoding="utf-8")
    assert "Foerster, Christian, Fabrikmeister" in transcription
    assert MISSING_LINE not in transcription
    # The figures are fractions of the reference, as the contract says, and they are the
    # scores of the written transcription against the ground truth.
    expected = score_text(gt_txt.read_text(encoding="utf-8"), transcription).as_dict()
    for key in ("cer", "cer_normalized", "wer", "wer_normalized"):
        assert isinstance(summary[key], float), key
        assert summary[key] == pytest.approx(expected[key]), key
    assert 0.1 < summary["cer"] < 0.3  # about one line in five is missing
    assert 0.1 < summary["cer_normalized"] < 0.3
    assert 0.1 < summary["wer"] < 0.4

    with (out / "records.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == [*FIELDS, "document", "page", "line", "last_line"] + [
            *("x0", "y0", "x1", "y1", "run", "version", "verified")
        ]
        rows = list(reader)
    assert len(rows) >= 1
    assert rows[0]["surname"] == "Foerster" and rows[0]["first and middle names"] == "Christian"
    assert {row["document"] for row in rows} == {scan.name}
    assert {row["page"] for row in rows} == {"1"}
    assert summary["records_written"] == len(rows)
    assert summary["records"]["reference"] == 5
    assert summary["records"]["recall"] <= 0.8 < summary["records"]["precision"]
    assert set(summary["fields"]) == {*FIELDS, "all"}

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics == summary


def test_process_without_json_prints_a_summary(tmp_path, scan):
    gt_txt = tmp_path / "gt.txt"
    gt_txt.write_text("\n".join(PRINTED_LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = histocr(
        "process",
        scan,
        "--ocr",
        "tesseract",
        "--extract",
        "none",
        "--ground-truth",
        gt_txt,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    assert "1 page(s), run done" in result.stdout
    assert "CER " in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["adressbuch-1822.txt", "metrics.json"]


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        pytest.param("empty.png", b"", "the file is empty", id="empty"),
        pytest.param(
            "notes.pdf",
            "Förster, Christian, Fabrikmeister\n".encode(),
            "not a PDF, PNG, JPEG or TIFF",
            id="text-named-pdf",
        ),
        pytest.param(
            "broken.pdf", b"%PDF-1.4\n" + bytes(range(256)) * 8, "not a readable PDF", id="bad-pdf"
        ),
    ],
)
def test_process_bad_file_exits_1_with_a_message(tmp_path, name, content, reason):
    bad = tmp_path / name
    bad.write_bytes(content)
    result = histocr("process", bad, "--out", tmp_path / "out", "--json")
    assert_clean_error(result, 1, name, reason)
    assert result.stdout == ""


def test_process_missing_file_is_a_usage_error(tmp_path):
    result = histocr("process", tmp_path / "missing.png", "--out", tmp_path / "out")
    assert_clean_error(result, 2, "missing.png", "does not exist")


def test_process_ground_truth_count_must_match_the_files(tmp_path, scan):
    gt = tmp_path / "gt.txt"
    gt.write_text(PRINTED_LINES[0], encoding="utf-8")
    result = histocr(
        "process", scan, "--ground-truth", gt, "--ground-truth", gt, "--out", tmp_path / "out"
    )
    assert_clean_error(result, 2, "--ground-truth once per file")
    assert not (tmp_path / "out").exists()


def test_process_unknown_engine_is_named_in_the_error(tmp_path, scan):
    result = histocr("process", scan, "--ocr", "nope", "--out", tmp_path / "out")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "'nope'" in result.stderr and "ocr" in result.stderr, result.stderr
    assert "tesseract" in result.stderr  # the engines that can do OCR are listed


def test_process_non_utf8_ground_truth_is_an_error(tmp_path, scan):
    gt = tmp_path / "latin1.txt"
    gt.write_bytes("Förster, Christian\n".encode("latin-1"))
    result = histocr("process", scan, "--ground-truth", gt, "--out", tmp_path / "out")
    assert_clean_error(result, 1, "latin1.txt", "not UTF-8")


def test_process_accepts_a_txt_transcription_and_extracts_records(tmp_path):
    """DESIGN.md: `histocr process` accepts .txt transcriptions; only later stages run."""
    transcription = tmp_path / "transcribed.txt"
    transcription.write_text("\n".join(PRINTED_LINES) + "\n", encoding="utf-8")
    gt_csv = records_csv(tmp_path / "gt.csv", PRINTED_LINES)
    out = tmp_path / "out"
    result = histocr("process", transcription, "--ground-truth-csv", gt_csv, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["records"]["recall"] == 1.0
    with (out / "records.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["surname"] for row in rows] == ["Foerster", "Foerster", "Mueller", "Schmitz"]


def test_process_uses_the_configured_tesseract_binary(tmp_path, scan):
    """HISTOCR_TESSERACT_BINARY is honoured: a wrong path fails visibly instead of being ignored."""
    missing = tmp_path / "no-such-dir" / "tesseract"
    result = histocr(
        "process",
        scan,
        "--extract",
        "none",
        "--out",
        tmp_path / "out",
        "--json",
        env={"HISTOCR_TESSERACT_BINARY": str(missing)},
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert str(missing) in result.stderr, result.stderr
    assert json.loads(result.stdout)["status"] == "failed"
