"""Score the rules extractor on the benchmark: parse each ground-truth TXT, compare to its CSV."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.metrics.records import RecordScores, read_records_csv, score_records  # noqa: E402
from models.rules import DEFAULT_FIELDS, parse_directory_text  # noqa: E402

DEFAULT_BENCHMARK = Path(
    os.environ.get(
        "HISTOCR_BENCHMARK_DIR", Path(__file__).resolve().parents[2] / "shared" / "benchmark"
    )
)


def score_type(benchmark: Path, number: int, text_folder: Path) -> RecordScores:
    """Rules records from a type-N.txt scored against the ground-truth type-N.csv (alignment)."""
    text = (text_folder / f"type-{number}.txt").read_text("utf-8")
    fields, reference = read_records_csv(
        benchmark / "ground_truth" / "csv" / f"type-{number}.csv", DEFAULT_FIELDS
    )
    hypothesis = [record.fields for record in parse_directory_text(text, fields)]
    return score_records(reference, hypothesis, fields)


def format_row(label: str, scores: RecordScores) -> str:
    """One table row: record counts, P/R/F1, all-field and per-field exact/fuzzy agreement."""
    result = scores.as_dict()
    records, fields = result["records"], result["fields"]
    cells = [
        f"{records['reference']:>4} {records['hypothesis']:>4} {records['matched']:>4}",
        f"{records['precision']:6.1%} {records['recall']:6.1%} {records['f1']:6.1%}",
        f"{fields['all']['exact']:6.1%} {fields['all']['fuzzy']:6.1%}",
    ]
    per_field = " ".join(
        f"{fields[name]['exact']:6.1%}/{fields[name]['fuzzy']:6.1%}" for name in DEFAULT_FIELDS
    )
    return f"{label:<9} {'  '.join(cells)}  {per_field}"


def main() -> None:
    """Print per-type and micro-total record scores."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--benchmark", type=Path, default=DEFAULT_BENCHMARK)
    parser.add_argument(
        "--text",
        default="ground_truth",
        help="parse the ground-truth TXT (default) or reference_outputs/SYSTEM's OCR text",
    )
    args = parser.parse_args()
    if args.text == "ground_truth":
        text_folder = args.benchmark / "ground_truth" / "txt"
    else:
        text_folder = args.benchmark / "reference_outputs" / args.text
    print(f"text: {text_folder}")
    header = (
        "type       ref  hyp  mat  prec   recall f1     exact  fuzzy   "
        "first ex/fz    surname ex/fz  occupation ex/fz  address ex/fz"
    )
    print(header)
    total = RecordScores()
    for number in range(1, 6):
        scores = score_type(args.benchmark, number, text_folder)
        total = total + scores
        print(format_row(f"type-{number}", scores))
    print(format_row("micro", total))


if __name__ == "__main__":
    main()
