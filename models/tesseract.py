"""Tesseract OCR (offline; Fraktur and German models from the operating system)."""

import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.spec import EngineSpec, Parameter


class TesseractSettings(BaseSettings):
    """How this machine calls Tesseract, and the defaults of the run parameters."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_TESSERACT_", extra="ignore")

    languages: str = "Fraktur+deu"
    psm: int = Field(default=4, ge=0, le=13)
    oem: int = Field(default=1, ge=0, le=3)
    timeout_s: float = Field(default=300.0, gt=0)
    binary: str = "tesseract"


@dataclass(frozen=True)
class TesseractConfig:
    """How Tesseract is called."""

    languages: str = "Fraktur+deu"
    psm: int = 4
    oem: int = 1
    timeout_s: float = 300.0
    binary: str = "tesseract"


class TesseractEngine:
    """Runs the `tesseract` command on a page image file; ignores prompts."""

    name = "tesseract"

    def __init__(self, config: TesseractConfig) -> None:
        self.config = config
        self._checked = False

    def describe(self) -> dict[str, Any]:
        """The parameters that decide the output."""
        return {
            "model": f"tesseract {self.version()} ({self.config.languages})",
            "languages": self.config.languages,
            "psm": self.config.psm,
            "oem": self.config.oem,
        }

    def version(self) -> str:
        """The installed Tesseract version, e.g. `5.3.0`."""
        binary = self._binary()
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
        first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
        return first.replace("tesseract", "").strip() or "unknown"

    def check(self) -> None:
        """Fail clearly when Tesseract or one of its language models is missing."""
        binary = self._binary()
        out = subprocess.run([binary, "--list-langs"], capture_output=True, text=True, timeout=30)
        available = {line.strip() for line in out.stdout.splitlines()[1:]}
        missing = [lang for lang in self.config.languages.split("+") if lang not in available]
        if missing:
            raise EngineNotAvailable(
                f"Tesseract language model(s) not installed: {', '.join(missing)} "
                f"(installed: {', '.join(sorted(available)) or 'none'}); on Debian install "
                "tesseract-ocr-deu and tesseract-ocr-script-frak"
            )

    def _binary(self) -> str:
        found = shutil.which(self.config.binary)
        if not found:
            raise EngineNotAvailable(
                f"Tesseract is not installed ({self.config.binary!r} not on PATH); "
                "on Debian: apt-get install tesseract-ocr tesseract-ocr-deu "
                "tesseract-ocr-script-frak"
            )
        return found

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """OCR each request's image (after checking once that the models are installed)."""
        if not self._checked:
            self.check()
            self._checked = True
        return [self._recognize(request) for request in requests]

    def _recognize(self, request: EngineRequest) -> EngineResult | EngineError:
        if request.image_path is None:
            return EngineError("Tesseract needs a page image", retryable=False)
        command = [
            self._binary(),
            str(request.image_path),
            "stdout",
            "-l",
            self.config.languages,
            "--psm",
            str(self.config.psm),
            "--oem",
            str(self.config.oem),
        ]
        # One thread per page: parallelism comes from running pages side by side.
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        started = time.perf_counter()
        try:
            out = subprocess.run(
                command, capture_output=True, timeout=self.config.timeout_s, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            return EngineError(f"Tesseract took longer than {self.config.timeout_s:.0f} s")
        latency = time.perf_counter() - started
        if out.returncode != 0:
            message = out.stderr.decode("utf-8", "replace").strip().splitlines()
            return EngineError(
                f"Tesseract failed (exit {out.returncode}): {message[-1] if message else ''}"
            )
        text = out.stdout.decode("utf-8", "replace")
        return EngineResult(
            text=_tidy(text), model=f"tesseract ({self.config.languages})", latency_s=latency
        )


def _tidy(text: str) -> str:
    """Drop Tesseract's form feed and blank lines between blocks; keep one printed line per line."""
    lines = [line.rstrip() for line in text.replace("\f", "\n").splitlines()]
    return "\n".join(line for line in lines if line.strip())


def create_engine(parameters: Mapping[str, Any], environment: Mapping[str, Any]) -> TesseractEngine:
    """The engine for a run's parameters on this machine (its binary)."""
    config = {k: v for k, v in parameters.items() if k in SPEC_PARAMETER_NAMES}
    if environment.get("binary"):
        config["binary"] = environment["binary"]
    return TesseractEngine(TesseractConfig(**config))


SPEC = EngineSpec(
    name="tesseract",
    description="Tesseract OCR, offline (Fraktur + German models)",
    stages=("ocr",),
    queue="cpu",
    create=create_engine,
    settings=TesseractSettings,
    parameters=(
        Parameter(
            "languages",
            str,
            "Tesseract language models, joined with + (e.g. Fraktur+deu)",
            cli="--languages",
        ),
        Parameter(
            "psm",
            int,
            "page segmentation mode (4: one column of text)",
            minimum=0,
            maximum=13,
            cli="--psm",
        ),
        Parameter("oem", int, "OCR engine mode (1: the LSTM recogniser)", minimum=0, maximum=3),
        Parameter("timeout_s", float, "seconds a page may take", minimum=1, recorded=False),
    ),
)
SPEC_PARAMETER_NAMES = frozenset(p.name for p in SPEC.parameters)
