"""Offline OCR (Tesseract) on the city-directory benchmark: pre-processing and settings.

Renders each benchmark PDF once (pdftoppm -r 300 -gray, cached), runs pipeline variants two
pages at a time and prints, per variant, normalized and raw CER per document, the
micro-average and seconds per page. Tesseract's TSV is cached by image and settings, so layout
and transcription variants cost nothing extra. Prints figures; asserts nothing.

    .venv/bin/python -m bench.offline_ocr                 # the default pipeline and variants
    .venv/bin/python -m bench.offline_ocr --only default  # one variant
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from app.metrics.text import TextScores, join_pages, score_text
from models.ocr.layout import LayoutOptions, lines_from_words, page_text
from models.ocr.pageprep import PrepOptions, prepare_page
from models.ocr.tesseract_tsv import SHIPPED_TESSDATA, TesseractCall, parse_tsv, run_tesseract_tsv
from models.ocr.transcription import regularise

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = Path(os.environ.get("HISTOCR_BENCHMARK_DIR", ROOT.parent / "shared" / "benchmark"))
SYSTEM_TESSDATA = Path("/usr/share/tesseract-ocr/5/tessdata")
DOCUMENTS = tuple(f"type-{n}" for n in range(1, 6))


@dataclass(frozen=True)
class Variant:
    """One pipeline configuration."""

    name: str
    prep: PrepOptions | None = PrepOptions()
    call: TesseractCall = TesseractCall()
    layout: LayoutOptions = LayoutOptions()
    regularise: bool = True


@dataclass
class Outcome:
    """Scores and timing of one variant."""

    documents: dict[str, TextScores] = field(default_factory=dict)
    seconds: dict[str, list[float]] = field(default_factory=dict)


def mixed_tessdata(folder: Path) -> Path:
    """A tessdata folder holding the shipped frak2021 and the system's models side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in [*SHIPPED_TESSDATA.glob("*.traineddata"), *SYSTEM_TESSDATA.glob("*.traineddata")]:
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source)
    return folder


def variants(tessdata: Path) -> list[Variant]:
    """The default pipeline, then one change at a time."""
    default = Variant("default")
    frak = default.call
    return [
        Variant(
            "baseline Fraktur psm4 (no prep)",
            None,
            replace(frak, languages="Fraktur", tessdata_dir=tessdata, psm=4),
            LayoutOptions(reading_order="tesseract", join_wrapped=False, drop_noise=False),
            False,
        ),
        Variant(
            "baseline frak2021 psm4 (no prep)",
            None,
            replace(frak, psm=4),
            LayoutOptions(reading_order="tesseract", join_wrapped=False, drop_noise=False),
            False,
        ),
        default,
        replace(
            default,
            name="model Fraktur",
            call=replace(frak, languages="Fraktur", tessdata_dir=tessdata),
        ),
        replace(
            default,
            name="model frak2021+deu",
            call=replace(frak, languages="frak2021+deu", tessdata_dir=tessdata),
        ),
        replace(default, name="model frak2021_fast", call=replace(frak, languages="frak2021_fast")),
        replace(default, name="crop off", prep=replace(default.prep, crop=False)),
        replace(default, name="deskew off", prep=replace(default.prep, deskew=False)),
        replace(default, name="contrast none", prep=replace(default.prep, contrast="none")),
        replace(default, name="contrast binarise", prep=replace(default.prep, contrast="binarise")),
        replace(default, name="rescale off", prep=replace(default.prep, target_line_pitch=0)),
        replace(default, name="psm 4", call=replace(frak, psm=4)),
        replace(default, name="psm 3", call=replace(frak, psm=3)),
        replace(
            default,
            name="reading order tesseract",
            layout=replace(default.layout, reading_order="tesseract"),
        ),
        replace(default, name="join off", layout=replace(default.layout, join_wrapped=False)),
        replace(default, name="drop headers", layout=replace(default.layout, drop_headers=True)),
        replace(default, name="regularise off", regularise=False),
    ]


def render_pages(cache: Path) -> dict[str, list[Path]]:
    """Each benchmark PDF as 300 dpi grey PNG pages, rendered once into the cache."""
    pages: dict[str, list[Path]] = {}
    for document in DOCUMENTS:
        target = cache / "pages" / document
        if not any(target.parent.glob(f"{document}-*.png")):
            target.parent.mkdir(parents=True, exist_ok=True)
            pdf = BENCHMARK / "pdfs" / f"{document}.pdf"
            subprocess.run(
                ["pdftoppm", "-r", "300", "-gray", "-png", str(pdf), str(target)], check=True
            )
        pages[document] = sorted(target.parent.glob(f"{document}-*.png"))
    return pages


def _ocr_cached(image: Image.Image, call: TesseractCall, cache: Path) -> tuple[str, float]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    key = hashlib.sha256(buffer.getvalue() + json.dumps(call.arguments()).encode()).hexdigest()
    entry = cache / "tsv" / f"{key[:32]}.json"
    if entry.exists():
        stored = json.loads(entry.read_text())
        return stored["tsv"], stored["seconds"]
    started = time.perf_counter()
    tsv = run_tesseract_tsv(image, call)
    seconds = time.perf_counter() - started
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(json.dumps({"tsv": tsv, "seconds": seconds}))
    return tsv, seconds


def run_page(path: Path, variant: Variant, cache: Path) -> tuple[str, float]:
    """OCR one page with a variant; returns the text and seconds (prep + Tesseract)."""
    with Image.open(path) as opened:
        image = opened.convert("L")
    started = time.perf_counter()
    prepared = prepare_page(image, variant.prep) if variant.prep else None
    prep_seconds = time.perf_counter() - started
    tsv, ocr_seconds = _ocr_cached(prepared.image if prepared else image, variant.call, cache)
    lines = lines_from_words(
        parse_tsv(tsv), variant.layout, prepared.to_original if prepared else None
    )
    text = page_text(lines)
    return (regularise(text) if variant.regularise else text), prep_seconds + ocr_seconds


def run_variant(variant: Variant, pages: dict[str, list[Path]], cache: Path) -> Outcome:
    """All documents with one variant, two pages at a time (two CPU cores)."""
    outcome = Outcome()
    jobs = [(document, path) for document, paths in pages.items() for path in paths]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda job: run_page(job[1], variant, cache), jobs))
    texts: dict[str, list[str]] = {}
    for (document, _), (text, seconds) in zip(jobs, results, strict=True):
        texts.setdefault(document, []).append(text)
        outcome.seconds.setdefault(document, []).append(seconds)
    for document, page_texts in texts.items():
        reference = (BENCHMARK / "ground_truth" / "txt" / f"{document}.txt").read_text()
        outcome.documents[document] = score_text(reference, join_pages(page_texts))
        if os.environ.get("HISTOCR_BENCH_DUMP"):
            dump = Path(os.environ["HISTOCR_BENCH_DUMP"]) / variant.name.replace(" ", "_")
            dump.mkdir(parents=True, exist_ok=True)
            (dump / f"{document}.txt").write_text(join_pages(page_texts))
    return outcome


def format_row(name: str, outcome: Outcome) -> str:
    """One table row: normalized/raw CER per document, micro-average, seconds per page."""
    cells = [
        f"{s.cer_normalized.rate * 100:5.1f}/{s.cer.rate * 100:5.1f}"
        for s in outcome.documents.values()
    ]
    total = sum(outcome.documents.values(), TextScores())
    seconds = [s for per_doc in outcome.seconds.values() for s in per_doc]
    return (
        f"| {name:<34} | "
        + " | ".join(cells)
        + f" | {total.cer_normalized.rate * 100:5.2f} | {total.cer.rate * 100:5.2f}"
        + f" | {sum(seconds) / len(seconds):5.1f} |"
    )


def main() -> None:
    """Print the variant table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only variants whose name contains this")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "histocr-bench")
    args = parser.parse_args()
    pages = render_pages(args.cache)
    tessdata = mixed_tessdata(args.cache / "tessdata")
    print(
        "CER % normalized/raw per document; micro-averaged normalized and raw; "
        "s/page = preparation + Tesseract (one thread), two pages side by side"
    )
    print(
        f"| {'variant':<34} | "
        + " | ".join(f"{d:^11}" for d in DOCUMENTS)
        + " | micro norm | micro raw | s/page |"
    )
    print("|" + "---|" * (len(DOCUMENTS) + 4))
    for variant in variants(tessdata):
        if args.only and args.only not in variant.name:
            continue
        print(format_row(variant.name, run_variant(variant, pages, args.cache)), flush=True)


if __name__ == "__main__":
    main()
