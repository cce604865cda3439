"""Text produced elsewhere (a transcription file) becomes the OCR stage's output."""

import time
from collections.abc import Mapping, Sequence
from typing import Any

from models.base import EngineError, EngineRequest, EngineResult
from models.spec import EngineSpec


class ImportedTextEngine:
    """Returns the page's imported text unchanged."""

    name = "import"

    def describe(self) -> dict[str, Any]:
        """Imported text has no model."""
        return {"model": "imported text"}

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """Hand back each page's imported text."""
        results: list[EngineResult | EngineError] = []
        for request in requests:
            started = time.perf_counter()
            if request.text is None:
                results.append(
                    EngineError("this page has no imported text (it is a scan)", retryable=False)
                )
                continue
            results.append(
                EngineResult(
                    text=request.text, model="imported", latency_s=time.perf_counter() - started
                )
            )
        return results


def create_engine(
    _parameters: Mapping[str, Any], _environment: Mapping[str, Any]
) -> ImportedTextEngine:
    """Imported text has no parameters."""
    return ImportedTextEngine()


SPEC = EngineSpec(
    name="import",
    description="Imported text: the transcription of an uploaded .txt document",
    stages=("ocr",),
    queue="cpu",
    batch_size=16,
    create=create_engine,
)
