"""Training labels from verified records: which entry holds which record, and which of the
entry's tokens hold which field.

Verified records are values, not positions: a historian types ``Großkölnstraße A 391.``, a
ground-truth CSV says ``Nr. 3.`` for a house heading above the entry, or drops a ``Dr. med.``.
So records are aligned to entries in order by fuzzy similarity, and each field value (or each
of its comma-separated parts) to the best-matching window of the entry's tokens. What cannot
be found in the entry (a heading's address, a ditto's surname) labels nothing: the heading
and ditto rules supply it at extraction time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rapidfuzz import fuzz

from models.crf_tokens import OUTSIDE, Token, is_separator

Record = Mapping[str, str | None]

#: Least fuzz.ratio (0–100) for a field value, or a part of it, to label a window of tokens.
WINDOW_THRESHOLD = 75.0
#: Least share of a record's text found in an entry for the two to be paired.
PAIR_THRESHOLD = 0.5
_PARTS = re.compile(r"\s*,\s+|\s{2,}")


def value_parts(value: str | None) -> list[str]:
    """A field value's comma-separated parts (ground truth writes some commas as two spaces)."""
    return [part for part in (p.strip() for p in _PARTS.split(value or "")) if part]


def pair_entries(
    entry_texts: Sequence[str], records: Sequence[Record], fields: Sequence[str]
) -> list[int | None]:
    """For each entry, the index of the record it holds, or None: an order-preserving
    alignment maximising how much of each record is found in its entry."""
    rows, cols = len(entry_texts), len(records)
    lowered = [text.lower() for text in entry_texts]
    values = [[value_parts((r.get(name) or "").lower()) for name in fields] for r in records]
    score = [[_found_share(values[j], lowered[i]) for j in range(cols)] for i in range(rows)]
    best = [[0.0] * (cols + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        for j in range(1, cols + 1):
            value = max(best[i - 1][j], best[i][j - 1])
            if score[i - 1][j - 1] >= PAIR_THRESHOLD:
                value = max(value, best[i - 1][j - 1] + score[i - 1][j - 1])
            best[i][j] = value
    paired: list[int | None] = [None] * rows
    i, j = rows, cols
    while i > 0 and j > 0:
        if best[i][j] == best[i - 1][j]:
            i -= 1
        elif best[i][j] == best[i][j - 1]:
            j -= 1
        else:
            paired[i - 1] = j - 1
            i, j = i - 1, j - 1
    return paired


def _found_share(values: Sequence[Sequence[str]], text: str) -> float:
    """Mean over the record's filled fields of the share of the field found in the text.

    Per field rather than per character: a long address carried down from headings is
    absent from every entry and must not outweigh the names that are there.
    """
    shares = []
    for parts in values:
        total = sum(len(part) for part in parts)
        if not total:
            continue
        found = 0.0
        for part in parts:
            similarity = fuzz.partial_ratio(part, text)
            if similarity >= WINDOW_THRESHOLD:
                found += len(part) * similarity / 100
        shares.append(found / total)
    return sum(shares) / len(shares) if shares else 0.0


def label_tokens(
    text: str, tokens: Sequence[Token], record: Record, fields: Sequence[str]
) -> list[str]:
    """Each token's field name (or OUTSIDE), from where the record's values stand in the text.

    Longer values are placed first, so that a short first name cannot take the tokens of
    the street it also occurs in; a separator between two tokens of one field joins it.
    """
    labels = [OUTSIDE] * len(tokens)
    ordered = sorted(
        (name for name in fields if (record.get(name) or "").strip()),
        key=lambda name: -len(record.get(name) or ""),
    )
    for name in ordered:
        value = (record.get(name) or "").strip()
        window = _best_window(value, text, tokens, labels)
        if window is not None:
            _assign(labels, window, name)
            continue
        for part in value_parts(value):
            window = _best_window(part, text, tokens, labels)
            if window is not None:
                _assign(labels, window, name)
    for index in range(1, len(tokens) - 1):
        around = labels[index - 1]
        if labels[index] == OUTSIDE and around != OUTSIDE and labels[index + 1] == around:
            labels[index] = around if is_separator(tokens[index]) else labels[index]
    return labels


def _assign(labels: list[str], window: tuple[int, int], name: str) -> None:
    for index in range(window[0], window[1] + 1):
        labels[index] = name


def _best_window(
    value: str, text: str, tokens: Sequence[Token], labels: Sequence[str]
) -> tuple[int, int] | None:
    """The free run of tokens whose text is most like the value, if like enough."""
    target = value.lower()
    longest = 2 * len(value.split()) + 3
    best: tuple[float, int, int] | None = None
    for first in range(len(tokens)):
        for last in range(first, min(len(tokens), first + longest)):
            if labels[last] != OUTSIDE:
                break
            window = text[tokens[first].start : tokens[last].end].lower()
            similarity = fuzz.ratio(target, window)
            if best is None or similarity > best[0]:
                best = (similarity, first, last)
    if best is None or best[0] < WINDOW_THRESHOLD:
        return None
    return best[1], best[2]
