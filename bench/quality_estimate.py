"""How well the quality estimate (app/pipeline/quality.py) ranks pages without ground truth.

Runs the default offline pipeline of bench/offline_ocr.py (same rendering, preparation,
Tesseract cache and layout) over the 15 benchmark pages, extracts records with the rules parser
as a run does, measures each page's raw CER against its share of the document ground truth
(the document transcription cut at the page boundaries of an alignment with the OCR text), and
prints the Spearman rank correlation of estimated vs measured page CER, overall and per
document. Everything fitted is fitted leave-one-document-out: the character model and the
linear combination that score a document never saw its ground truth. Prints; asserts nothing.

    .venv/bin/python -m bench.quality_estimate            # the leave-one-document-out figures
    .venv/bin/python -m bench.quality_estimate --write-model  # also retrain the shipped model
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rapidfuzz.distance import Levenshtein

from app.metrics.text import score_text
from app.pipeline.charmodel import SHIPPED_MODEL, CharModel
from app.pipeline.quality import FEATURES, LineSignal, PageSignals, fit, page_signals
from bench.offline_ocr import BENCHMARK, DOCUMENTS, Variant, _ocr_cached, render_pages
from models.ocr.layout import lines_from_words, page_text
from models.ocr.pageprep import prepare_page
from models.ocr.tesseract_tsv import parse_tsv
from models.ocr.transcription import regularise
from models.rules import parse_directory_text


@dataclass
class BenchPage:
    """One benchmark page as the pipeline saw it."""

    document: str
    number: int
    text: str
    lines: list[LineSignal]
    records: int
    measured_cer: float = 0.0
    signals: PageSignals | None = None


def ocr_page(path: Path, cache: Path) -> tuple[str, list[LineSignal]]:
    """The default pipeline on one page: regularised text and its lines with confidences."""
    variant = Variant("default")
    with Image.open(path) as opened:
        image = opened.convert("L")
    prepared = prepare_page(image, variant.prep) if variant.prep else None
    tsv, _ = _ocr_cached(prepared.image if prepared else image, variant.call, cache)
    lines = lines_from_words(
        parse_tsv(tsv), variant.layout, prepared.to_original if prepared else None
    )
    signals = [
        LineSignal(regularise(line.text), line.mean_confidence / 100, line.min_confidence / 100)
        for line in lines
    ]
    return regularise(page_text(lines)), signals


def split_reference(reference: str, pages: list[str]) -> list[str]:
    """Cut a document transcription into pages where an alignment with the OCR pages puts the
    page boundaries, snapped to the nearest line break of the transcription."""
    hypothesis = "\n".join(pages)
    boundaries, offset = [], 0
    for page in pages[:-1]:
        offset += len(page) + 1
        boundaries.append(offset)
    cuts = []
    opcodes = Levenshtein.opcodes(reference, hypothesis)
    for boundary in boundaries:
        position = len(reference)
        for op in opcodes:
            if op.dest_start <= boundary < op.dest_end or (op.dest_start == boundary):
                position = op.src_start + min(boundary - op.dest_start, op.src_end - op.src_start)
                break
        breaks = [i + 1 for i, c in enumerate(reference) if c == "\n"] or [position]
        cuts.append(min(breaks, key=lambda b: abs(b - position)))
    edges = [0, *cuts, len(reference)]
    return [reference[a:b] for a, b in zip(edges, edges[1:], strict=False)]


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(values: list[float]) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        result = np.empty(len(values))
        result[order] = np.arange(len(values), dtype=float)
        for value in set(values):
            tied = [i for i, v in enumerate(values) if v == value]
            result[tied] = result[tied].mean()
        return result

    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def truth(document: str) -> str:
    """The document's ground truth, regularised as the OCR output is."""
    return regularise((BENCHMARK / "ground_truth" / "txt" / f"{document}.txt").read_text("utf-8"))


def collect(cache: Path) -> list[BenchPage]:
    """OCR, records and measured CER of every benchmark page."""
    pages: list[BenchPage] = []
    for document, paths in render_pages(cache).items():
        done = []
        for number, path in enumerate(paths, start=1):
            text, lines = ocr_page(path, cache)
            done.append(BenchPage(document, number, text, lines, len(parse_directory_text(text))))
        reference = (BENCHMARK / "ground_truth" / "txt" / f"{document}.txt").read_text("utf-8")
        for page, part in zip(
            done, split_reference(reference, [p.text for p in done]), strict=True
        ):
            page.measured_cer = score_text(part, page.text).cer.rate
        pages.extend(done)
    return pages


def main() -> None:
    """Print estimated vs measured page CER and the rank correlations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "histocr-bench")
    parser.add_argument("--write-model", action="store_true", help="retrain the shipped model")
    args = parser.parse_args()
    pages = collect(args.cache)
    estimates: dict[tuple[str, int], float] = {}
    for held_out in DOCUMENTS:
        chars = CharModel.train(truth(d) for d in DOCUMENTS if d != held_out)
        fold = {id(p): page_signals(p.lines, p.text, records=p.records, model=chars) for p in pages}
        model = fit([(fold[id(p)], p.measured_cer) for p in pages if p.document != held_out])
        for page in (p for p in pages if p.document == held_out):
            page.signals = fold[id(page)]  # as a model that never saw this document sees it
            estimates[(page.document, page.number)] = model.estimate(page.signals)
    print("| page | measured CER | estimated CER (LODO) | " + " | ".join(FEATURES) + " |")
    print("|---" * (3 + len(FEATURES)) + "|")
    for page in pages:
        if page.signals is not None:
            signals = page.signals
            cells = [f"{getattr(signals, n) or 0:.3f}" for n in FEATURES]
            print(
                f"| {page.document} p{page.number} | {page.measured_cer * 100:5.1f} % | "
                f"{estimates[(page.document, page.number)] * 100:5.1f} % | "
                + " | ".join(cells)
                + " |"
            )
    keys = [(p.document, p.number) for p in pages]
    measured = [p.measured_cer for p in pages]
    print(
        f"Spearman overall (15 pages, LODO): {spearman([estimates[k] for k in keys], measured):.3f}"
    )
    for document in DOCUMENTS:
        mine = [p for p in pages if p.document == document]
        rho = spearman(
            [estimates[(document, p.number)] for p in mine], [p.measured_cer for p in mine]
        )
        print(f"Spearman {document} (3 pages): {rho:.3f}")
    for name in FEATURES:  # each signal alone (held-out character model), for the record
        values = [getattr(p.signals, name) or 0.0 for p in pages if p.signals]
        print(f"  signal {name} alone: Spearman {spearman(values, measured):.3f}")
    if args.write_model:
        full = CharModel.train(truth(d) for d in DOCUMENTS)
        SHIPPED_MODEL.write_text(full.dumps() + "\n", encoding="utf-8")
        # Calibrated on the held-out signals: a new directory looks to the character model as
        # a held-out benchmark document does, not as one it was trained on.
        final = fit([(p.signals, p.measured_cer) for p in pages if p.signals])
        print(f"wrote {SHIPPED_MODEL}; fitted on all pages: {final}")


if __name__ == "__main__":
    main()
