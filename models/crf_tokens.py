"""Tokens of a directory entry for sequence labelling, and field values back from labels.

A token keeps its character offsets in the entry's text, so a field value is always a slice
of what was printed (spacing, hyphenation marks and abbreviations as they stand), never a
re-joined guess. Separators (``,`` ``;`` ``:`` brackets, a lone dash) are tokens of their own:
whether a comma ends a field or belongs to one (``Möbeln, Betten``) is the model's call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: The label of a token that belongs to no field (separators, titles, remarks).
OUTSIDE = "-"

_CHUNK = re.compile(r"\S+")
#: Where one printed chunk holds two words: ``Gabr.Matthesius``, ``Hr.M.``, ``Kirchhofe,in``.
_GLUED = re.compile(r"(?<=[a-zäöüß]\.)(?=[A-ZÄÖÜ])|(?<=\w,)(?=[^\W\d])")
_OPENERS = "([„»"
_CLOSERS = ",;:)]“«"
SEPARATORS = frozenset({",", ";", ":", "-", "–", "—", "(", ")", "[", "]"})
#: Verbs that open an address (``Joh. Wilh. wohnt am Markte``): they start a part of their own.
ADDRESS_VERBS = frozenset({"wohnt", "wohnhaft", "wohnend", "logirt", "logiert", "wohnen"})
#: A house number with its period ends a part even without a comma: ``Zeil 63. Juwelen``.
_NUMBER_END = re.compile(r"^\d+[a-z]?[½¼¾]?\.$")


@dataclass(frozen=True)
class Token:
    """One word or punctuation mark of an entry and where it stands in the entry's text."""

    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """Split on white space, then split brackets and trailing separators off the words.

    The entry's closing period becomes a token of its own (``Zeil 63.`` keeps ``63``), so the
    model can learn per field whether a directory's final period belongs to the value.
    """
    tokens: list[Token] = []
    chunks = [(start, end) for chunk in _CHUNK.finditer(text) for start, end in _unglue(chunk)]
    for index, (start, end) in enumerate(chunks):
        while end - start > 1 and text[start] in _OPENERS:
            tokens.append(Token(text[start], start, start + 1))
            start += 1
        trailing: list[Token] = []
        while end - start > 1 and text[end - 1] in _CLOSERS:
            end -= 1
            trailing.insert(0, Token(text[end], end, end + 1))
        if index == len(chunks) - 1 and end - start > 1 and text[end - 1] == ".":
            end -= 1
            trailing.insert(0, Token(".", end, end + 1))
        tokens.append(Token(text[start:end], start, end))
        tokens.extend(trailing)
    return tokens


def _unglue(chunk: re.Match[str]) -> list[tuple[int, int]]:
    """A chunk's words as (start, end) offsets in the entry's text."""
    cuts = [chunk.start() + m.start() for m in _GLUED.finditer(chunk.group())]
    bounds = [chunk.start(), *cuts, chunk.end()]
    return list(zip(bounds, bounds[1:], strict=False))


def is_separator(token: Token) -> bool:
    """Whether a token separates the parts of an entry (comma, semicolon, a lone dash)."""
    return token.text in SEPARATORS


def segment_indices(tokens: Sequence[Token]) -> list[int]:
    """The index of the comma-separated part each token is in (separators count as the
    part they end); a dash or ditto mark at the very start separates nothing, a house
    number with its period ends a part and a verb like ``wohnt`` starts one."""
    indices: list[int] = []
    segment = 0
    seen_word = False
    for index, token in enumerate(tokens):
        if token.text.lower() in ADDRESS_VERBS and seen_word:
            segment += 1
        indices.append(segment)
        ends_number = bool(_NUMBER_END.match(token.text)) and index + 1 < len(tokens)
        if (is_separator(token) and seen_word) or ends_number:
            segment += 1
            seen_word = False
        elif not is_separator(token):
            seen_word = True
    return indices


def field_values(
    text: str, tokens: Sequence[Token], labels: Sequence[str], fields: Sequence[str]
) -> dict[str, str]:
    """Each field's value: the text of its runs of tokens, several runs joined by ", "."""
    runs: dict[str, list[str]] = {name: [] for name in fields}
    index = 0
    while index < len(tokens):
        label = labels[index]
        stop = index
        while stop + 1 < len(tokens) and labels[stop + 1] == label:
            stop += 1
        if label in runs:
            value = text[tokens[index].start : tokens[stop].end].strip(" ,;:")
            if value:
                runs[label].append(value)
        index = stop + 1
    return {name: ", ".join(parts) for name, parts in runs.items()}
