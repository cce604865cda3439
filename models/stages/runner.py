"""Building each stage's engine requests and parsing the engines' answers."""

import json
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rapidfuzz import fuzz

from models.base import LINE_KEY, PROVENANCE_KEY, EngineRequest, EngineResult
from models.prompts import load_prompt
from models.stages.base import PageInput, RecordOutput, StageOutput, StageOutputInvalid, StageSpec
from models.stages.schema import field_list, records_json_schema

__all__ = ["build_requests", "parse_records", "parse_result", "records_json_schema"]


def build_requests(spec: StageSpec, pages: Sequence[PageInput]) -> list[EngineRequest]:
    """One engine request per page for the stage `spec` describes."""
    prompt = spec.prompt
    if prompt is None and spec.prompt_version:
        prompt = load_prompt(spec.stage, spec.prompt_version).text
    requests = []
    for page in pages:
        if spec.stage == "ocr":
            requests.append(
                EngineRequest(
                    prompt=prompt,
                    image_path=page.image_path,
                    image_dpi=page.image_dpi,
                    text=page.text,
                    parameters=spec.parameters,
                )
            )
        elif spec.stage == "correct":
            requests.append(
                EngineRequest(
                    prompt=prompt,
                    image_path=page.image_path,
                    text=page.text or "",
                    parameters=spec.parameters,
                )
            )
        elif spec.stage == "extract":
            # The run's field definitions where it recorded them; names alone for older runs.
            fields = spec.field_definitions or spec.fields
            # Prompt v1 names the fields in a line ({fields}); later ones list each with its
            # meaning ({field_list}). str.format ignores the key a version does not use.
            text = (
                prompt.format(fields=", ".join(spec.fields), field_list=field_list(fields))
                if prompt
                else None
            )
            requests.append(
                EngineRequest(
                    prompt=text,
                    image_path=page.image_path if spec.inputs in ("image", "both") else None,
                    text=(page.text or "") if spec.inputs in ("text", "both") else None,
                    json_schema=records_json_schema(fields),
                    parameters={**spec.parameters, "fields": list(spec.fields)},
                )
            )
        else:
            raise ValueError(f"unknown stage {spec.stage!r}")
    return requests


def parse_result(spec: StageSpec, page: PageInput, result: EngineResult) -> StageOutput:
    """Validate an engine's answer for a stage; raise StageOutputInvalid when it is unusable."""
    if result.finish_reason != "stop":
        raise StageOutputInvalid(f"the output was cut off (finish reason {result.finish_reason!r})")
    if spec.stage in ("ocr", "correct"):
        return StageOutput(text=result.text.strip("\n"), result=result)
    records = parse_records(result.text, spec.fields, page.text or "")
    return StageOutput(text=result.text, result=result, records=records)


_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


def parse_records(answer: str, fields: Sequence[str], source_text: str) -> list[RecordOutput]:
    """Parse and validate extraction JSON, then find the source line of every record."""
    fenced = _FENCE.match(answer)
    try:
        data = json.loads(fenced.group(1) if fenced else answer)
    except json.JSONDecodeError as exc:
        raise StageOutputInvalid(f"the extraction output is not JSON: {exc}") from exc
    items = data.get("records") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise StageOutputInvalid('the extraction output has no "records" list')
    lines = source_text.splitlines()
    records = [_record(index, item, fields, lines) for index, item in enumerate(items)]
    sources = data.get(PROVENANCE_KEY) if isinstance(data, dict) else None
    if isinstance(sources, list) and len(sources) == len(records):
        records = [_with_provenance(r, s) for r, s in zip(records, sources, strict=True)]
    return records


def _with_provenance(record: RecordOutput, sources: Any) -> RecordOutput:
    """The record with what produced each of its filled fields, as far as the engine says it
    well-formed (an explanation beside the answer: a malformed one is dropped, not an error)."""
    if not isinstance(sources, dict):
        return record
    kept = {
        name: source
        for name, source in sources.items()
        if isinstance(source, str) and source and record.fields.get(name)
    }
    return replace(record, provenance=kept)


def _record(index: int, item: Any, fields: Sequence[str], lines: list[str]) -> RecordOutput:
    if not isinstance(item, dict):
        raise StageOutputInvalid(f"record {index + 1} is not an object")
    extra = set(item) - set(fields) - {LINE_KEY}
    missing = [name for name in fields if name not in item]
    if extra or missing:
        raise StageOutputInvalid(
            f"record {index + 1} does not match the schema "
            f"(missing: {sorted(missing)}, unexpected: {sorted(extra)})"
        )
    values: dict[str, str | None] = {}
    for name in fields:
        value = item[name]
        if value is not None and not isinstance(value, str | int | float):
            raise StageOutputInvalid(f"record {index + 1}: field {name!r} is not a string")
        text = None if value is None else str(value).strip()
        values[name] = text or None
    line_number = item.get(LINE_KEY)
    if not isinstance(line_number, int) or not 1 <= line_number <= len(lines):
        line_number = _best_line(values, lines)
    source = lines[line_number - 1] if line_number else ""
    return RecordOutput(fields=values, line_number=line_number, source_line=source)


def _best_line(values: dict[str, str | None], lines: list[str]) -> int | None:
    """The input line that shares most with a record (engines rarely count lines well)."""
    probe = " ".join(v for v in values.values() if v)
    if not probe or not lines:
        return None
    scores = [fuzz.partial_ratio(probe, line) if line.strip() else 0.0 for line in lines]
    best = max(range(len(lines)), key=scores.__getitem__)
    return best + 1 if scores[best] > 0 else None
