"""What produced each field of a record as a version shows it: a model, a rule, or a reviewer.

Extraction stores its own account with each record (`records.provenance`: ``"crf"``,
``"rule:house-heading"``, ``"openai"``, ...). A reviewer's edit does not rewrite that account;
it is read here against the version shown: a field whose value a reviewer changed (or any
field of a record a reviewer added) says ``edit``, the others keep the engine's word.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The source of a field a reviewer typed.
REVIEWER = "edit"
#: `records.source` of what extraction produced (a reviewer's added record: `edit`).
ENGINE_SOURCE = "engine"


def field_provenance(
    *,
    source: str,
    engine_fields: Mapping[str, Any],
    engine_provenance: Mapping[str, str] | None,
    shown: Mapping[str, Any],
) -> dict[str, str]:
    """Field name → what produced it, for the filled fields of a record as `shown`."""
    known = engine_provenance or {}
    out: dict[str, str] = {}
    for name, value in shown.items():
        if value is None or value == "":
            continue
        if source != ENGINE_SOURCE or engine_fields.get(name) != value:
            out[name] = REVIEWER
        elif name in known:
            out[name] = known[name]
    return out
