"""Error rates of transcriptions and agreement of extracted records with ground truth."""

from app.metrics.records import (
    FieldCounts,
    RecordScores,
    align_records,
    field_exact,
    field_fuzzy,
    read_records_csv,
    score_records,
    score_records_rowwise,
)
from app.metrics.text import (
    ErrorCounts,
    TextScores,
    join_pages,
    normalize_raw,
    normalize_strict,
    score_documents,
    score_text,
)

__all__ = [
    "ErrorCounts",
    "FieldCounts",
    "RecordScores",
    "TextScores",
    "align_records",
    "field_exact",
    "field_fuzzy",
    "join_pages",
    "normalize_raw",
    "normalize_strict",
    "read_records_csv",
    "score_documents",
    "score_records",
    "score_records_rowwise",
    "score_text",
]
