"""Record-level metrics: how well extracted records agree with ground-truth records.

A field agrees exactly when the lower-cased, stripped values are equal (``None`` counts as
``""``) and fuzzily when their Jaro-Winkler similarity is at least 0.90, as in Greif,
Griesshaber & Greif (2025). The paper pairs record *i* with record *i*
(:func:`score_records_rowwise`), which cannot score a hypothesis with a different number of
records; :func:`score_records` first aligns the two sequences in order and then compares the
fields of the aligned pairs, reporting record precision, recall and F1 besides.

Every sum is micro: counts are added over documents before any fraction is taken. A fraction
whose denominator is 0 is 1.0 when both record lists were empty (nothing to find, nothing
wrong) and 0.0 otherwise.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz.distance import JaroWinkler

FUZZY_THRESHOLD = 0.90
MATCH_THRESHOLD = 0.6
IGNORED_COLUMNS = ("id",)
#: The delimiters a records CSV may use, the first winning a tie.
DELIMITERS = (",", ";", "\t")
#: Characters a spreadsheet runs as a formula: exports put a `'` before them
#: (app/pipeline/exports/csvx.py), which reading takes off again.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Record = Mapping[str, str | None]


def _clean(value: str | None) -> str:
    return (value or "").strip().lower()


def field_similarity(a: str | None, b: str | None) -> float:
    """Jaro-Winkler similarity of two field values after lower-casing and stripping."""
    left, right = _clean(a), _clean(b)
    if not left and not right:
        return 1.0
    return JaroWinkler.similarity(left, right)


def field_exact(a: str | None, b: str | None) -> bool:
    """Whether two field values are equal once lower-cased and stripped."""
    return _clean(a) == _clean(b)


def field_fuzzy(a: str | None, b: str | None) -> bool:
    """Whether two field values have Jaro-Winkler similarity >= 0.90 (both empty agree)."""
    return field_similarity(a, b) >= FUZZY_THRESHOLD


def _ratio(numerator: int, denominator: int, *, both_empty: bool) -> float:
    if denominator == 0:
        return 1.0 if both_empty else 0.0
    return numerator / denominator


@dataclass(frozen=True)
class FieldCounts:
    """Agreements of one field over compared record pairs."""

    exact: int = 0
    fuzzy: int = 0
    compared: int = 0

    def __add__(self, other: FieldCounts) -> FieldCounts:
        """Sum counts."""
        return FieldCounts(
            self.exact + other.exact, self.fuzzy + other.fuzzy, self.compared + other.compared
        )


@dataclass(frozen=True)
class RecordScores:
    """Record matching counts and per-field agreement counts over aligned pairs."""

    reference: int = 0
    hypothesis: int = 0
    matched: int = 0
    fields: dict[str, FieldCounts] = field(default_factory=dict)

    @property
    def _both_empty(self) -> bool:
        return self.reference == 0 and self.hypothesis == 0

    @property
    def precision(self) -> float:
        """Matched records per hypothesis record."""
        return _ratio(self.matched, self.hypothesis, both_empty=self._both_empty)

    @property
    def recall(self) -> float:
        """Matched records per reference record."""
        return _ratio(self.matched, self.reference, both_empty=self._both_empty)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        precision, recall = self.precision, self.recall
        if precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)

    @property
    def all_fields(self) -> FieldCounts:
        """Agreement counts over every field comparison."""
        total = FieldCounts()
        for counts in self.fields.values():
            total = total + counts
        return total

    def field_rates(self, counts: FieldCounts) -> dict[str, float]:
        """Exact and fuzzy agreement fractions of one FieldCounts."""
        return {
            "exact": _ratio(counts.exact, counts.compared, both_empty=self._both_empty),
            "fuzzy": _ratio(counts.fuzzy, counts.compared, both_empty=self._both_empty),
        }

    def __add__(self, other: RecordScores) -> RecordScores:
        """Sum over documents (micro-average)."""
        if not isinstance(other, RecordScores):
            return NotImplemented
        fields = dict(self.fields)
        for name, counts in other.fields.items():
            fields[name] = fields.get(name, FieldCounts()) + counts
        return RecordScores(
            reference=self.reference + other.reference,
            hypothesis=self.hypothesis + other.hypothesis,
            matched=self.matched + other.matched,
            fields=fields,
        )

    def as_dict(self) -> dict[str, Any]:
        """The contract's JSON shape: fractions plus record counts."""
        fields: dict[str, dict[str, float]] = {
            name: self.field_rates(counts) for name, counts in self.fields.items()
        }
        fields["all"] = self.field_rates(self.all_fields)
        return {
            "records": {
                "precision": self.precision,
                "recall": self.recall,
                "f1": self.f1,
                "reference": self.reference,
                "hypothesis": self.hypothesis,
                "matched": self.matched,
            },
            "fields": fields,
        }


def _compare_pairs(
    pairs: Iterable[tuple[Record, Record]], fields: Sequence[str]
) -> dict[str, FieldCounts]:
    exact = dict.fromkeys(fields, 0)
    fuzzy = dict.fromkeys(fields, 0)
    compared = 0
    for reference, hypothesis in pairs:
        compared += 1
        for name in fields:
            exact[name] += field_exact(reference.get(name), hypothesis.get(name))
            fuzzy[name] += field_fuzzy(reference.get(name), hypothesis.get(name))
    return {name: FieldCounts(exact[name], fuzzy[name], compared) for name in fields}


def record_similarity(reference: Record, hypothesis: Record, fields: Sequence[str]) -> float:
    """Mean Jaro-Winkler similarity over the fields: the alignment's pair score."""
    if not fields:
        return 0.0
    total = sum(field_similarity(reference.get(name), hypothesis.get(name)) for name in fields)
    return total / len(fields)


def align_records(
    reference: Sequence[Record],
    hypothesis: Sequence[Record],
    fields: Sequence[str],
    threshold: float = MATCH_THRESHOLD,
) -> list[tuple[int, int]]:
    """Order-preserving alignment maximising the summed pair score (Needleman-Wunsch style).

    Gaps cost nothing; a pair may only be matched when its score is at least ``threshold``.
    Returns the matched (reference index, hypothesis index) pairs in order.
    """
    rows, cols = len(reference), len(hypothesis)
    best = [[0.0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        previous, current = best[i - 1], best[i]
        for j in range(1, cols + 1):
            value = max(previous[j], current[j - 1])
            score = record_similarity(reference[i - 1], hypothesis[j - 1], fields)
            if score >= threshold:
                value = max(value, previous[j - 1] + score)
            current[j] = value
    return _trace_back(best, reference, hypothesis, fields, threshold)


def _trace_back(
    best: list[list[float]],
    reference: Sequence[Record],
    hypothesis: Sequence[Record],
    fields: Sequence[str],
    threshold: float,
) -> list[tuple[int, int]]:
    pairs: list[tuple[int, int]] = []
    i, j = len(reference), len(hypothesis)
    while i > 0 and j > 0:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            score = record_similarity(reference[i - 1], hypothesis[j - 1], fields)
            if score < threshold:  # pragma: no cover - the table guarantees a match here
                raise AssertionError("alignment trace-back left the table")
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
    pairs.reverse()
    return pairs


def score_records(
    reference: Sequence[Record],
    hypothesis: Sequence[Record],
    fields: Sequence[str],
    threshold: float = MATCH_THRESHOLD,
) -> RecordScores:
    """Align the record sequences, then score record matching and field agreement."""
    pairs = align_records(reference, hypothesis, fields, threshold)
    return RecordScores(
        reference=len(reference),
        hypothesis=len(hypothesis),
        matched=len(pairs),
        fields=_compare_pairs(((reference[i], hypothesis[j]) for i, j in pairs), fields),
    )


def score_records_rowwise(
    reference: Sequence[Record], hypothesis: Sequence[Record], fields: Sequence[str]
) -> RecordScores:
    """The paper's comparison: record i against record i; both lists must be equally long."""
    if len(reference) != len(hypothesis):
        raise ValueError(
            f"row-by-row comparison needs equal record counts, got {len(reference)} "
            f"reference and {len(hypothesis)} hypothesis records"
        )
    return RecordScores(
        reference=len(reference),
        hypothesis=len(hypothesis),
        matched=len(reference),
        fields=_compare_pairs(zip(reference, hypothesis, strict=True), fields),
    )


def read_records_csv(
    source: str | Path, fields: Sequence[str] | None = None
) -> tuple[list[str], list[dict[str, str | None]]]:
    """Read records from a CSV path (or CSV text, when given a str containing a newline).

    Returns (fields, records). Without ``fields`` every column but ``id`` is a field; with
    them, a CSV lacking any of them is a ValueError and other columns are left out. Rows
    whose fields are all empty are not records and are skipped. UTF-8, with or without BOM;
    comma, semicolon (what German Excel saves) or tab separated, told apart by the header.
    A leading ``'`` that histocr's CSV export put before a formula character is taken off.
    """
    text = _csv_text(source)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(text))
    try:
        return _read_records(reader, fields)
    except csv.Error as error:  # e.g. a field over csv.field_size_limit(): a quote left open
        raise ValueError(
            f"the CSV cannot be read at line {reader.line_num}: {_csv_problem(error)}"
        ) from error


def _csv_problem(error: csv.Error) -> str:
    if "field larger than field limit" in str(error):
        return (
            f"a field is longer than {csv.field_size_limit():,} characters (is a quote left open?)"
        )
    return str(error)


def _read_records(
    reader: csv.DictReader[str], fields: Sequence[str] | None
) -> tuple[list[str], list[dict[str, str | None]]]:
    header = [_plain(name.strip()) or "" for name in reader.fieldnames or []]
    if not header:
        raise ValueError("the CSV is empty: it has no header row")
    wanted = (
        list(fields)
        if fields is not None
        else [name for name in header if name not in IGNORED_COLUMNS]
    )
    missing = [name for name in wanted if name not in header]
    if missing:
        raise ValueError(
            f"the CSV lacks the field(s) {', '.join(repr(m) for m in missing)}; "
            f"its columns are {', '.join(repr(h) for h in header)}"
        )
    reader.fieldnames = header
    records = [
        {name: _plain(row.get(name)) for name in wanted}
        for row in reader
        if any((value or "").strip() for key, value in row.items() if key in wanted)
    ]
    return wanted, records


def sniff_delimiter(text: str) -> str:
    """The delimiter that cuts the header row into the most columns (a comma on a tie)."""
    try:
        first = next(csv.reader(io.StringIO(text, newline=""), delimiter="\x00"), [""])
        header = first[0] if first else ""
        counts = {
            delimiter: len(next(csv.reader([header], delimiter=delimiter), []))
            for delimiter in DELIMITERS
        }
    except csv.Error:  # unreadable: the reader with the default says where
        return DELIMITERS[0]
    return max(DELIMITERS, key=lambda delimiter: counts[delimiter])


def _plain(value: str | None) -> str | None:
    """A cell without the `'` the CSV export puts before a formula character (`'=` → `=`)."""
    if value is not None and len(value) > 1 and value[0] == "'" and value[1] in FORMULA_START:
        return value[1:]
    return value


def _csv_text(source: str | Path) -> str:
    if isinstance(source, str) and ("\n" in source or "\r" in source):
        data = source.encode("utf-8")
    else:
        data = Path(source).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        message = f"the CSV is not UTF-8 text ({error.reason} at byte {error.start})"
        raise ValueError(message) from error
