"""A record schema: the fields extraction fills, with what each means, as a project defines it.

Extraction engines get it in two forms: mLLMs as a JSON Schema (their structured output) and a
field list in the prompt, both with each field's description and example, so that a field
called "Stand" or "notes" means to the model what it means to the historian; the offline
extractor gets the field names in order.
"""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RecordField(BaseModel):
    """One field of a record: a column of the dataset."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    #: Every entry gives it (an mLLM is not offered null for it).
    required: bool = False
    #: A value as printed, to show the model (and the person filling the schema) what is meant.
    example: str = Field(default="", max_length=200)


#: The city-directory schema every project starts with.
DEFAULT_RECORD_FIELDS: tuple[RecordField, ...] = (
    RecordField(
        name="first and middle names",
        description="The given names of the person, as printed (abbreviations such as Joh. kept).",
        example="Joh. Wilh.",
    ),
    RecordField(
        name="surname",
        description="The family name (for a firm: the firm's name).",
        required=True,
        example="Obermann",
    ),
    RecordField(
        name="occupation",
        description="Trade, office or standing, as printed.",
        example="Bäcker",
    ),
    RecordField(
        name="address",
        description="Street and house number, or quarter letter and number, as printed.",
        example="Hochstraße 12",
    ),
)


def record_fields(fields: Sequence[str | RecordField]) -> tuple[RecordField, ...]:
    """Field definitions for names or definitions: a bare name gets the default schema's
    description where it names one of its fields (runs made before schemas had descriptions)."""
    defaults = {field.name: field for field in DEFAULT_RECORD_FIELDS}
    return tuple(
        field if isinstance(field, RecordField) else defaults.get(field, RecordField(name=field))
        for field in fields
    )


def _plain(fields: Sequence[str | RecordField]) -> tuple[RecordField, ...]:
    """Definitions as given; a bare name (a run recorded before fields had meanings) stays a
    bare name, so that such a run asks what it always asked."""
    return tuple(f if isinstance(f, RecordField) else RecordField(name=f) for f in fields)


def _property(field: RecordField) -> dict[str, Any]:
    described = " ".join(
        part
        for part in (field.description, f"Example: {field.example}" if field.example else "")
        if part
    )
    schema: dict[str, Any] = {"type": "string" if field.required else ["string", "null"]}
    if described:
        schema["description"] = described
    return schema


def records_json_schema(fields: Sequence[str | RecordField]) -> dict[str, Any]:
    """The JSON Schema extraction output must match: {"records": [{field: str|null, ...}]}.

    Every field is listed as required (strict structured output wants each property there);
    a field the schema does not require may be null. Descriptions carry each field's meaning
    and example: the keywords every structured-output dialect accepts.
    """
    definitions = _plain(fields)
    record = {
        "type": "object",
        "properties": {field.name: _property(field) for field in definitions},
        "required": [field.name for field in definitions],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"records": {"type": "array", "items": record}},
        "required": ["records"],
        "additionalProperties": False,
    }


def field_list(fields: Sequence[str | RecordField]) -> str:
    """The fields as the extraction prompt lists them, one a line with meaning and example."""
    lines = []
    for field in _plain(fields):
        line = f'- "{field.name}"' + (" (every entry gives it)" if field.required else "")
        if field.description:
            line += f": {field.description}"
        if field.example:
            line += f" Example: {field.example}"
        lines.append(line)
    return "\n".join(lines)
