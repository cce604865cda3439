"""Leave-one-document-out extraction scores: does the offline extractor generalise?

For each document: train the CRF on all the others (their ground-truth text and records:
nothing of the held-out document, not even its words in the lexicon), parse the held-out
document's text, and score its records against its ground-truth CSV (aligned record F1,
exact and fuzzy field agreement, as ``histocr evaluate``). The rules extractor is scored on
the same text for comparison (it needs no training, but was written while looking at the
benchmark documents, so its figures here are in-sample).

    python -m bench.extraction_loo                       # ground-truth text, types 1-5
    python -m bench.extraction_loo --text-folder ../shared/benchmark/reference_outputs/transkribus
    python -m bench.extraction_loo --documents DIR       # add NAME.txt + NAME.csv pairs
    python -m bench.extraction_loo --in-sample           # the shipped prior on its own data
    python -m bench.extraction_loo --train-prior         # rebuild models/crf_prior.json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.metrics.records import RecordScores, read_records_csv, score_records  # noqa: E402
from bench.rules_extraction import format_row  # noqa: E402
from models.crf import (  # noqa: E402
    PRIOR_PATH,
    SYNTHETIC_SHARE,
    CrfExtractor,
    TrainingDocument,
    train_extractor,
)
from models.rules import DEFAULT_FIELDS, ExtractedRecord, parse_directory_text  # noqa: E402

DEFAULT_BENCHMARK = Path(
    os.environ.get(
        "HISTOCR_BENCHMARK_DIR", Path(__file__).resolve().parents[2] / "shared" / "benchmark"
    )
)
HEADER = (
    "doc        ref  hyp  mat  prec   recall f1     exact  fuzzy   "
    "first ex/fz    surname ex/fz  occupation ex/fz  address ex/fz"
)


@dataclass(frozen=True)
class Document:
    """A document with ground truth: its transcription and its records."""

    name: str
    text: str
    records: list[dict[str, str | None]]

    def training(self) -> TrainingDocument:
        """The document as training data (entries paired with their records)."""
        return TrainingDocument.from_text(self.text, self.records, DEFAULT_FIELDS)


def load_documents(benchmark: Path, extra: list[Path]) -> list[Document]:
    """The benchmark's types 1-5, then every NAME.txt with a NAME.csv in the extra folders."""
    truth = benchmark / "ground_truth"
    pairs = [
        (f"type-{n}", truth / "txt" / f"type-{n}.txt", truth / "csv" / f"type-{n}.csv")
        for n in range(1, 6)
    ]
    for folder in extra:
        pairs += [(p.stem, p, p.with_suffix(".csv")) for p in sorted(folder.glob("*.txt"))]
    documents = []
    for name, text_path, csv_path in pairs:
        if not csv_path.is_file():
            raise SystemExit(f"{text_path} has no ground-truth records {csv_path}")
        _fields, records = read_records_csv(csv_path, DEFAULT_FIELDS)
        documents.append(Document(name, text_path.read_text("utf-8"), records))
    return documents


def held_out_text(document: Document, text_folder: Path | None) -> str:
    """The text to parse: the ground truth, or the same document's OCR text."""
    if text_folder is None:
        return document.text
    return (text_folder / f"{document.name}.txt").read_text("utf-8")


def leave_one_out(
    documents: list[Document], text_folder: Path | None, synthetic_share: float
) -> tuple[RecordScores, RecordScores]:
    """Print per-document CRF and rules scores; return the micro totals."""
    training = {document.name: document.training() for document in documents}
    crf_total, rules_total = RecordScores(), RecordScores()
    rows = []
    for document in documents:
        started = time.perf_counter()
        others = [training[d.name] for d in documents if d.name != document.name]
        extractor = train_extractor(others, DEFAULT_FIELDS, synthetic_share=synthetic_share)
        text = held_out_text(document, text_folder)
        crf = score_records(document.records, _fields(extractor.parse(text)), DEFAULT_FIELDS)
        rules = score_records(
            document.records, [r.fields for r in parse_directory_text(text)], DEFAULT_FIELDS
        )
        crf_total, rules_total = crf_total + crf, rules_total + rules
        print(format_row(f"{document.name}", crf), f" ({time.perf_counter() - started:.1f} s)")
        rows.append(format_row(f"{document.name}", rules))
    print(format_row("micro", crf_total))
    print("\nrules extractor on the same text (no training; written on the benchmark):")
    print(HEADER)
    for row in rows:
        print(row)
    print(format_row("micro", rules_total))
    return crf_total, rules_total


def _fields(records: list[ExtractedRecord]) -> list[dict[str, str | None]]:
    return [record.fields for record in records]


def in_sample(documents: list[Document], extractor: CrfExtractor, text_folder: Path | None) -> None:
    """Scores of a model on documents it was trained on (an upper bound, not a forecast)."""
    total = RecordScores()
    for document in documents:
        text = held_out_text(document, text_folder)
        scores = score_records(document.records, _fields(extractor.parse(text)), DEFAULT_FIELDS)
        total = total + scores
        print(format_row(document.name, scores))
    print(format_row("micro", total))


def main() -> None:
    """Run the leave-one-out, the in-sample check, or rebuild the shipped prior."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--benchmark", type=Path, default=DEFAULT_BENCHMARK)
    parser.add_argument(
        "--documents",
        type=Path,
        action="append",
        default=[],
        help="a folder of further NAME.txt + NAME.csv ground-truth pairs (repeatable)",
    )
    parser.add_argument(
        "--text-folder",
        type=Path,
        help="parse NAME.txt from this folder (e.g. an OCR output) instead of the ground truth",
    )
    parser.add_argument(
        "--synthetic-share",
        type=float,
        default=SYNTHETIC_SHARE,
        help="share of each document's records re-printed in each other layout (0: none)",
    )
    parser.add_argument("--in-sample", action="store_true", help="score the shipped prior")
    parser.add_argument(
        "--train-prior",
        action="store_true",
        help=f"train on every document and write {PRIOR_PATH.relative_to(PRIOR_PATH.parents[1])}",
    )
    args = parser.parse_args()
    documents = load_documents(args.benchmark, args.documents)
    source = args.text_folder or "ground truth"
    print(f"documents: {', '.join(d.name for d in documents)}; text: {source}")
    if args.train_prior:
        started = time.perf_counter()
        extractor = train_extractor(
            [d.training() for d in documents], DEFAULT_FIELDS, synthetic_share=args.synthetic_share
        )
        extractor.save(PRIOR_PATH)
        size = PRIOR_PATH.stat().st_size
        print(f"wrote {PRIOR_PATH} ({size / 1024:.0f} KiB, {time.perf_counter() - started:.1f} s)")
        print("in-sample scores of the new prior:")
        print(HEADER)
        in_sample(documents, extractor, args.text_folder)
        return
    if args.in_sample:
        print(f"in-sample scores of {PRIOR_PATH.name}:")
        print(HEADER)
        in_sample(documents, CrfExtractor.load(PRIOR_PATH), args.text_folder)
        return
    print("leave-one-document-out, CRF trained on the other documents:")
    print(HEADER)
    leave_one_out(documents, args.text_folder, args.synthetic_share)


if __name__ == "__main__":
    main()
