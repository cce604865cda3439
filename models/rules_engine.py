"""The offline extraction baseline as an engine: directory text in, records JSON out."""

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from models.base import LINE_KEY, PROVENANCE_KEY, EngineError, EngineRequest, EngineResult
from models.rules import DEFAULT_FIELDS, parse_directory_text
from models.spec import EngineSpec


class RulesEngine:
    """Parses comma-separated directory lines; answers in the same JSON shape as an mLLM."""

    name = "rules"

    def describe(self) -> dict[str, Any]:
        """The rules parser has no model and no parameters."""
        return {"model": "rules-v1"}

    def run_batch(self, requests: Sequence[EngineRequest]) -> list[EngineResult | EngineError]:
        """Parse each request's text."""
        return [self._parse(request) for request in requests]

    def _parse(self, request: EngineRequest) -> EngineResult | EngineError:
        if request.text is None:
            return EngineError("the rules parser needs a text", retryable=False)
        fields = tuple(request.parameters.get("fields") or DEFAULT_FIELDS)
        started = time.perf_counter()
        records = parse_directory_text(request.text, fields=fields)
        answer = {
            "records": [{**record.fields, LINE_KEY: record.line_number} for record in records],
            PROVENANCE_KEY: [dict(record.provenance) for record in records],
        }
        return EngineResult(
            text=json.dumps(answer, ensure_ascii=False),
            model="rules-v1",
            latency_s=time.perf_counter() - started,
        )


def create_engine(_parameters: Mapping[str, Any], _environment: Mapping[str, Any]) -> RulesEngine:
    """The rules parser has no parameters."""
    return RulesEngine()


SPEC = EngineSpec(
    name="rules",
    description="Offline rules parser for comma-separated directory lines",
    stages=("extract",),
    queue="cpu",
    batch_size=8,
    create=create_engine,
)
