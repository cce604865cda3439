"""Run the `tesseract` command for word boxes (TSV) and parse what it prints."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

#: Where the shipped frak2021 models live (see tessdata/README.md there).
SHIPPED_TESSDATA = Path(__file__).resolve().parents[1] / "tessdata"


@dataclass(frozen=True)
class TesseractCall:
    """The settings of one Tesseract run that decide its output."""

    languages: str = "frak2021"
    #: 6 (one uniform block of text): the page is already cropped to its text column. On the
    #: benchmark it beats 4 (single column of variable sizes) on four of five documents and is
    #: faster; a page with two columns side by side needs 4 or 3 (columns in reading order).
    psm: int = 6
    oem: int = 1
    tessdata_dir: Path | None = SHIPPED_TESSDATA
    #: Set the image's resolution so Tesseract does not guess it from missing metadata.
    dpi: int = 300
    timeout_s: float = 300.0
    binary: str = "tesseract"

    def arguments(self) -> list[str]:
        """Command-line arguments after the input image and output base."""
        args = ["-l", self.languages, "--psm", str(self.psm), "--oem", str(self.oem)]
        if self.tessdata_dir is not None:
            args = ["--tessdata-dir", str(self.tessdata_dir), *args]
        # TSV through variables rather than the `tsv` config file: a custom tessdata folder
        # (the shipped one) has no configs/ subfolder.
        return [
            *args,
            "--dpi",
            str(self.dpi),
            "-c",
            "tessedit_create_tsv=1",
            "-c",
            "tessedit_create_txt=0",
        ]


@dataclass(frozen=True)
class OcrWord:
    """One word of Tesseract's TSV, box in the pixels of the image Tesseract saw."""

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float
    block: int
    paragraph: int
    line: int

    @property
    def right(self) -> int:
        """Exclusive right edge."""
        return self.left + self.width

    @property
    def bottom(self) -> int:
        """Exclusive bottom edge."""
        return self.top + self.height


class TesseractFailed(RuntimeError):
    """Tesseract exited with an error or ran out of time."""


def run_tesseract_tsv(image: Image.Image | Path, call: TesseractCall) -> str:
    """Run Tesseract on an image (object or file) and return its TSV output."""
    with tempfile.TemporaryDirectory(prefix="histocr-tess-") as folder:
        if isinstance(image, Image.Image):
            # Uncompressed (PGM/PPM): Tesseract reads it as fast as PNG, and writing a PNG of a
            # 300-dpi page cost more CPU than the rest of the preparation together.
            path = Path(folder) / ("page.pgm" if image.mode in ("L", "1") else "page.ppm")
            image.convert("L" if image.mode == "1" else image.mode).save(path)
        else:
            path = image
        return run_tesseract(call, path, call.arguments())


def run_tesseract(call: TesseractCall, source: Path, arguments: list[str]) -> str:
    """Tesseract on `source` (an image, or a file listing images) with `arguments`, its stdout.

    One thread per call: parallelism comes from running pages (or line batches) side by side.
    """
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        out = subprocess.run(
            [call.binary, str(source), "stdout", *arguments],
            capture_output=True,
            timeout=call.timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TesseractFailed(f"Tesseract took longer than {call.timeout_s:.0f} s") from None
    if out.returncode != 0:
        message = out.stderr.decode("utf-8", "replace").strip().splitlines()
        raise TesseractFailed(
            f"Tesseract failed (exit {out.returncode}): {message[-1] if message else ''}"
        )
    return out.stdout.decode("utf-8", "replace")


def parse_tsv(tsv: str) -> list[OcrWord]:
    """The non-empty words (level 5 rows) of Tesseract's TSV, in Tesseract's order."""
    words: list[OcrWord] = []
    # QUOTE_NONE: a recognised `"` is text, not a CSV quote.
    reader = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
    for row in reader:
        if row.get("level") != "5" or not (row.get("text") or "").strip():
            continue
        words.append(
            OcrWord(
                text=row["text"].strip(),
                left=int(row["left"]),
                top=int(row["top"]),
                width=int(row["width"]),
                height=int(row["height"]),
                confidence=float(row["conf"]),
                block=int(row["block_num"]),
                paragraph=int(row["par_num"]),
                line=int(row["line_num"]),
            )
        )
    return words
