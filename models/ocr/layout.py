"""Tesseract's words turned into printed lines in reading order, with boxes and confidences.

Geometry is measured in the pixels of the image Tesseract saw (the prepared page); a
`map_box` callable turns each line's box into original page-image pixels at the end. All
thresholds are multiples of the page's median line height, so they hold at any resolution.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from models.ocr.tesseract_tsv import OcrWord

#: (left, top, right, bottom), right and bottom exclusive.
Box = tuple[int, int, int, int]

#: Line kinds. The benchmark's ground truth keeps running heads, page numbers and
#: signature marks/catchwords, so they are marked, not dropped, by default.
BODY, HEADER, FOOTER = "body", "header", "footer"

#: Marks that end a line whose word continues on the next one (`⸗` is frak2021's double hyphen).
_HYPHENS = ("-", "=", "⸗", "¬", "—")
_NUMBER = re.compile(r"^[\[(]?\d{1,4}[.)\]]?$")


@dataclass(frozen=True)
class OcrLine:
    """One output line: its text, where it is on the page and how sure Tesseract was."""

    text: str
    box: Box
    mean_confidence: float
    min_confidence: float
    kind: str = BODY
    #: How many printed lines were joined into this one (wrapped entries, hanging indents).
    printed_lines: int = 1
    words: tuple[OcrWord, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class LayoutOptions:
    """Which layout steps run; each is a switch so its effect can be measured."""

    #: "rows": sort lines top to bottom and merge those on one baseline (one text column, as
    #: in directories); "tesseract": keep Tesseract's block order.
    reading_order: str = "rows"
    join_wrapped: bool = True
    mark_headers: bool = True
    drop_headers: bool = False
    #: Drop low-confidence lines that are mostly not letters or digits: specks, ornaments and
    #: border noise that Tesseract reads as `.`, `"`, `*` or `|`. (A lone letter stays: a
    #: Fraktur capital split off its word is a line of its own until rows are merged.)
    drop_noise: bool = True


def lines_from_words(
    words: Sequence[OcrWord],
    options: LayoutOptions = LayoutOptions(),
    map_box: Callable[[Box], Box] | None = None,
) -> list[OcrLine]:
    """Printed lines in reading order from Tesseract's words (see `LayoutOptions`)."""
    lines = _tesseract_lines(words)
    if options.drop_noise:
        lines = [line for line in lines if not _is_noise(line)]
    if not lines:
        return []
    height = statistics.median(line.box[3] - line.box[1] for line in lines)
    if options.reading_order == "rows":
        lines = _merge_rows(sorted(lines, key=lambda line: _center_y(line.box)), height)
    elif options.reading_order != "tesseract":
        raise ValueError(f"unknown reading order {options.reading_order!r} (rows, tesseract)")
    if options.mark_headers:
        lines = _mark_margins(lines)
    if options.join_wrapped:
        lines = _join_wrapped(lines, height)
    if options.drop_headers:
        lines = [line for line in lines if line.kind == BODY]
    if map_box is not None:
        lines = [replace(line, box=map_box(line.box)) for line in lines]
    return lines


def page_text(lines: Sequence[OcrLine]) -> str:
    """The page as text, one output line per line."""
    return "\n".join(line.text for line in lines)


def _make_line(words: Sequence[OcrWord]) -> OcrLine:
    ordered = sorted(words, key=lambda word: word.left)
    confidences = [max(word.confidence, 0.0) for word in ordered]
    return OcrLine(
        text=" ".join(word.text for word in ordered),
        box=(
            min(word.left for word in ordered),
            min(word.top for word in ordered),
            max(word.right for word in ordered),
            max(word.bottom for word in ordered),
        ),
        mean_confidence=sum(confidences) / len(confidences),
        min_confidence=min(confidences),
        words=tuple(ordered),
    )


def _tesseract_lines(words: Sequence[OcrWord]) -> list[OcrLine]:
    groups: dict[tuple[int, int, int], list[OcrWord]] = {}
    for word in words:
        groups.setdefault((word.block, word.paragraph, word.line), []).append(word)
    return [_make_line(group) for group in groups.values()]


def _is_noise(line: OcrLine) -> bool:
    # Tesseract reads book edges, stains, ornaments and specks as punctuation with low
    # confidence. Printed lines are mostly letters and digits (a directory entry has about
    # one punctuation mark per word), so under half alphanumeric is not a line of text.
    characters = [c for c in line.text if not c.isspace()]
    alphanumeric = sum(1 for c in characters if c.isalnum())
    return line.mean_confidence < 60 and alphanumeric < 0.5 * len(characters)


def _center_y(box: Box) -> float:
    return (box[1] + box[3]) / 2


def _merge_rows(lines: list[OcrLine], height: float) -> list[OcrLine]:
    """Merge lines that share a baseline (split by Tesseract into blocks) into one row."""
    rows: list[list[OcrLine]] = []
    for line in lines:
        if rows and _same_row(rows[-1], line, height):
            rows[-1].append(line)
        else:
            rows.append([line])
    return [
        row[0] if len(row) == 1 else _make_line([w for part in row for w in part.words])
        for row in rows
    ]


def _same_row(row: list[OcrLine], line: OcrLine, height: float) -> bool:
    # Two lines are one printed line when their vertical centres are closer than half a line
    # height and they do not overlap horizontally (overlap means two distinct printed lines).
    last = row[-1]
    close = abs(_center_y(last.box) - _center_y(line.box)) < 0.5 * height
    apart = all(part.box[2] <= line.box[0] or line.box[2] <= part.box[0] for part in row)
    return close and apart


def _mark_margins(lines: list[OcrLine]) -> list[OcrLine]:
    """Mark the running head (first line) and the signature mark/catchword (last line)."""
    marked = list(lines)
    first_words = marked[0].text.split()
    if first_words and (
        _NUMBER.match(first_words[0]) or _NUMBER.match(first_words[-1]) or len(first_words) == 1
    ):
        marked[0] = replace(marked[0], kind=HEADER)
    last_words = marked[-1].text.split()
    if len(marked) > 1 and last_words and len(last_words) <= 3:
        marked[-1] = replace(marked[-1], kind=FOOTER)
    return marked


def _join_wrapped(lines: list[OcrLine], height: float) -> list[OcrLine]:
    """Join a wrapped entry's continuation lines onto the entry, as the ground truth does.

    A line continues the one above when that one runs to the right edge of the text column
    (it was wrapped, not ended) and either ends with a hyphen or the line is indented
    (hanging indent) without being centred (a heading). Joined with one space; the hyphen
    stays, as in the ground truth (`Cur= tiußens`).
    """
    body = [line for line in lines if line.kind == BODY]
    if len(body) < 3:
        return lines
    margin_left = _low_percentile([line.box[0] for line in body])
    margin_right = _high_percentile([line.box[2] for line in body])
    center = (margin_left + margin_right) / 2
    joined: list[OcrLine] = []
    for line in lines:
        previous = joined[-1] if joined else None
        if previous is not None and _continues(
            previous, line, margin_left, margin_right, center, height
        ):
            joined[-1] = _concat(previous, line)
        else:
            joined.append(line)
    return joined


def _continues(
    previous: OcrLine,
    line: OcrLine,
    margin_left: float,
    margin_right: float,
    center: float,
    height: float,
) -> bool:
    if previous.kind != BODY or line.kind != BODY:
        return False
    wrapped = previous.box[2] >= margin_right - 1.5 * height
    hyphenated = previous.text.endswith(_HYPHENS)
    indent = line.box[0] - margin_left
    indented = 0.5 * height <= indent <= 6 * height
    centred = abs((line.box[0] + line.box[2]) / 2 - center) < height and indent > 2 * height
    return wrapped and (hyphenated or (indented and not centred))


def _concat(first: OcrLine, second: OcrLine) -> OcrLine:
    words = first.words + second.words
    confidences = [max(word.confidence, 0.0) for word in words]
    return OcrLine(
        text=f"{first.text} {second.text}",
        box=(
            min(first.box[0], second.box[0]),
            min(first.box[1], second.box[1]),
            max(first.box[2], second.box[2]),
            max(first.box[3], second.box[3]),
        ),
        mean_confidence=sum(confidences) / len(confidences),
        min_confidence=min(confidences),
        kind=first.kind,
        printed_lines=first.printed_lines + second.printed_lines,
        words=words,
    )


def _low_percentile(values: list[int]) -> float:
    # The 20th percentile: the left margin that most entry lines start at, robust to a few
    # lines Tesseract started early (a stray mark in the margin).
    ordered = sorted(values)
    return float(ordered[len(ordered) // 5])


def _high_percentile(values: list[int]) -> float:
    ordered = sorted(values)
    return float(ordered[(len(ordered) * 4) // 5])
