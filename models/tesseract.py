"""Tesseract OCR, offline: the page found in the photograph, deskewed and cleaned, read by the
shipped frak2021 Fraktur model, and returned as lines with boxes and confidences.

The steps are in `models.ocr` (page preparation, Tesseract's TSV, layout, regularisation);
each is a run parameter, recorded with the run, and what each did to a page (crop box,
angle, scale) is recorded with the page's result.
"""

import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult, TextLine
from models.ocr import (
    LayoutOptions,
    OcrLine,
    PreparedPage,
    PrepOptions,
    TesseractCall,
    TesseractFailed,
    lines_from_words,
    prepare_page,
    regularise,
)
from models.ocr.columns import words_by_column
from models.ocr.lineread import reread_lines
from models.ocr.orientation import Orientation, detect_orientation
from models.ocr.tessdata import available_models, search_path, tessdata_for
from models.spec import EngineSpec, Parameter

TRANSCRIPTIONS = ("normalised", "diplomatic")
#: The project's own trained model a run reads with. The engine never sees it: the service
#: resolves it when the run starts and the worker hands the model over as `languages` and
#: `tessdata_dir` (app/services/recognizer_runs.py).
RECOGNIZER = "recognizer"
CONTRASTS = ("normalise", "none", "binarise")
#: "page": Tesseract reads the lines it finds; "lines": each line it finds is cut out and read
#: on its own (models/ocr/lineread.py), as a fine-tuned model was trained.
READINGS = ("page", "lines")
INSTALL_HINT = "on Debian: apt-get install tesseract-ocr"


class TesseractSettings(BaseSettings):
    """How this machine calls Tesseract, and the defaults of the run parameters."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_TESSERACT_", extra="ignore")

    languages: str = "frak2021"
    psm: int = Field(default=6, ge=0, le=13)
    oem: int = Field(default=1, ge=0, le=3)
    timeout_s: float = Field(default=300.0, gt=0)
    binary: str = "tesseract"
    #: A folder of further models (`*.traineddata`), looked in before the shipped ones and the
    #: system's; HISTOCR_TESSDATA_DIR works too.
    tessdata_dir: str | None = Field(
        default=None,
        validation_alias=AliasChoices("HISTOCR_TESSERACT_TESSDATA_DIR", "HISTOCR_TESSDATA_DIR"),
    )


@dataclass(frozen=True)
class TesseractConfig:
    """How Tesseract is called and which preparation and layout steps run."""

    languages: str = "frak2021"
    psm: int = 6
    oem: int = 1
    timeout_s: float = 300.0
    #: Off by default: on the benchmark's photographs Tesseract's detection turned an upright
    #: page upside down (type-1 p2, confidence 2.5) and CER went from 2.9 to 27 %.
    orientation: bool = False
    crop: bool = True
    deskew: bool = True
    contrast: str = "normalise"
    #: Enlarge pages whose text line pitch is under this many pixels (0: never).
    upscale_below_pitch: int = 48
    transcription: str = "normalised"
    reading: str = "page"
    binary: str = "tesseract"
    tessdata_dir: str | None = None


class TesseractEngine:
    """Runs Tesseract on each prepared page image; ignores prompts."""

    name = "tesseract"

    def __init__(self, config: TesseractConfig) -> None:
        self.config = config
        self._tessdata: Path | None = None
        self._folders: list[Path] = []

    def describe(self) -> dict[str, Any]:
        """The parameters that decide the output, and the Tesseract that produced it."""
        config = self.config
        return {
            "model": f"tesseract {_version(self._binary())} ({config.languages})",
            "languages": config.languages,
            "psm": config.psm,
            "oem": config.oem,
            "orientation": config.orientation,
            "crop": config.crop,
            "deskew": config.deskew,
            "contrast": config.contrast,
            "upscale_below_pitch": config.upscale_below_pitch,
            "transcription": config.transcription,
            "reading": config.reading,
        }

    def check(self) -> Path:
        """The folder with every model of the run; EngineNotAvailable naming what is missing."""
        folders = search_path(self.config.tessdata_dir, self._binary())
        self._folders = folders
        try:
            return tessdata_for(self.config.languages, folders)
        except FileNotFoundError as exc:
            raise EngineNotAvailable(
                f"Tesseract model(s) not found: {exc} (available: "
                f"{', '.join(available_models(folders)) or 'none'}); put the .traineddata in "
                "HISTOCR_TESSDATA_DIR, or on Debian install tesseract-ocr-deu and "
                "tesseract-ocr-script-frak"
            ) from None

    def _binary(self) -> str:
        found = shutil.which(self.config.binary)
        if not found:
            raise EngineNotAvailable(
                f"Tesseract is not installed ({self.config.binary!r} not on PATH); {INSTALL_HINT}"
            )
        return found

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """OCR each request's page image (after finding the models once)."""
        if self._tessdata is None:
            self._tessdata = self.check()
        return [self._recognize(request, self._tessdata) for request in requests]

    def _recognize(self, request: EngineRequest, tessdata: Path) -> EngineResult | EngineError:
        if request.image_path is None:
            return EngineError("Tesseract needs a page image", retryable=False)
        started = time.perf_counter()
        try:
            with Image.open(request.image_path) as image:
                stored_size = image.size
                turn = self._orientation(image)
                prepared = prepare_page(turn.upright(image), self._prep_options())
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            return EngineError(f"cannot read the page image: {exc}", retryable=False)

        def to_stored(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
            return turn.to_stored(prepared.to_original(box), stored_size)

        call = TesseractCall(
            languages=self.config.languages,
            psm=self.config.psm,
            oem=self.config.oem,
            tessdata_dir=tessdata,
            dpi=round((request.image_dpi or 300) * prepared.scale),
            timeout_s=self.config.timeout_s,
            binary=self._binary(),
        )
        try:
            columns = words_by_column(prepared, call)
            if self.config.reading == "lines":
                columns = [reread_lines(prepared, words, call) for words in columns]
            ocr_lines = [
                line
                for words in columns
                for line in lines_from_words(words, LayoutOptions(), map_box=to_stored)
            ]
        except TesseractFailed as exc:
            return EngineError(str(exc))
        lines = tuple(self._line(line) for line in ocr_lines)
        return EngineResult(
            text="\n".join(line.text for line in lines),
            model=f"tesseract ({self.config.languages})",
            latency_s=time.perf_counter() - started,
            lines=lines,
            page_layout=_page_layout(prepared, turn, stored_size),
        )

    def _orientation(self, image: Image.Image) -> Orientation:
        """Which way up the page is (upright when the check is off or cannot tell)."""
        if not self.config.orientation:
            return Orientation(0, 0.0)
        found = detect_orientation(
            image, folders=self._folders, binary=self._binary(), timeout_s=self.config.timeout_s
        )
        return found or Orientation(0, 0.0)

    def _prep_options(self) -> PrepOptions:
        config = self.config
        if config.contrast not in CONTRASTS:
            raise EngineNotAvailable(f"contrast must be one of {', '.join(CONTRASTS)}")
        return PrepOptions(
            crop=config.crop,
            deskew=config.deskew,
            contrast=config.contrast,
            target_line_pitch=config.upscale_below_pitch,
        )

    def _line(self, line: OcrLine) -> TextLine:
        diplomatic = line.text
        text = regularise(diplomatic) if self.config.transcription == "normalised" else diplomatic
        return TextLine(
            text=text,
            diplomatic=diplomatic,
            bbox=tuple(int(v) for v in line.box),  # type: ignore[arg-type]
            confidence=round(line.mean_confidence / 100, 4),
            min_confidence=round(line.min_confidence / 100, 4),
            kind=line.kind,
        )


def _page_layout(
    prepared: PreparedPage, turn: Orientation, size: tuple[int, int]
) -> dict[str, Any]:
    """What preparation found and did, in page-image pixels (recorded with the result)."""
    crop = prepared.crop

    def stored(box: tuple[int, int, int, int]) -> list[int]:
        return list(turn.to_stored(box, size))

    return {
        "rotate": turn.rotate,
        "crop": stored(crop.kept) if crop else None,
        "text_block": stored(crop.text_block) if crop else None,
        "paper": stored(crop.paper) if crop else None,
        "dropped_columns": [list(c) for c in crop.dropped_columns] if crop else [],
        "text_columns": [list(c) for c in crop.text_columns] if crop else [],
        "angle": round(prepared.angle, 2),
        "scale": round(prepared.scale, 3),
        "line_pitch": round(prepared.line_pitch, 1),
        "contrast": prepared.contrast,
    }


@lru_cache(maxsize=4)
def _version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    return first.replace("tesseract", "").strip() or "unknown"


def create_engine(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> TesseractEngine:
    """The engine for a run's parameters on this machine (its binary, its model folder)."""
    names = {p.name for p in SPEC.parameters} - {RECOGNIZER}
    config = {k: v for k, v in parameters.items() if k in names}
    for key in ("binary", "tessdata_dir"):
        if environment.get(key):
            config[key] = environment[key]
    return TesseractEngine(TesseractConfig(**config))


SPEC = EngineSpec(
    name="tesseract",
    description="Tesseract OCR, offline: page detection, deskew and the frak2021 Fraktur model",
    stages=("ocr",),
    queue="cpu",
    create=create_engine,
    settings=TesseractSettings,
    parameters=(
        Parameter(
            "languages",
            str,
            "Tesseract models, joined with + (frak2021 ships with histocr; Fraktur, deu: Debian)",
            cli="--languages",
        ),
        Parameter(
            "psm",
            int,
            "page segmentation mode (6: one block of text; 4: columns of lines)",
            minimum=0,
            maximum=13,
            cli="--psm",
        ),
        Parameter("oem", int, "OCR engine mode (1: the LSTM recogniser)", minimum=0, maximum=3),
        Parameter("timeout_s", float, "seconds a page may take", minimum=1, recorded=False),
        Parameter(
            "orientation",
            bool,
            "turn pages that lie sideways or upside down (Tesseract OSD; off: it can misjudge "
            "upright photographs)",
            False,
        ),
        Parameter("crop", bool, "find the printed page; drop book edges and the facing page", True),
        Parameter("deskew", bool, "straighten the page (the angle is recorded)", True),
        Parameter(
            "contrast",
            str,
            "flatten the paper's shading (normalise), or binarise",
            "normalise",
            choices=CONTRASTS,
        ),
        Parameter(
            "upscale_below_pitch",
            int,
            "enlarge pages whose line pitch is under this many pixels (0: never)",
            48,
            minimum=0,
            maximum=400,
        ),
        Parameter(
            "transcription",
            str,
            "normalised (ſ→s, uͤ→ü, ⸗→=) or diplomatic (as printed); both are kept",
            "normalised",
            choices=TRANSCRIPTIONS,
            cli="--transcription",
        ),
        Parameter(
            "reading",
            str,
            "page (Tesseract reads the lines it finds) or lines (each line cut out and read "
            "on its own: better on swash capitals, and how a fine-tuned model was trained)",
            "page",
            choices=READINGS,
            cli="--reading",
        ),
        Parameter(
            RECOGNIZER,
            str,
            "the project's own trained model: default (its best version, else the languages "
            "as given), base (the languages as given) or a version number",
            "default",
        ),
    ),
)
