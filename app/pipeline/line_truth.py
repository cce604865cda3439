"""A document's ground truth cut into the lines and pages of its OCR.

A document's ground truth is one text for all its pages; training needs the text of each
printed line. The whole ground truth is aligned to the OCR's lines of all pages with the
character alignment the CER counts (`char_steps`), and cut between lines:

- each line gets the ground truth from its first to its last aligned character;
- ground truth between two lines that the OCR did not read (a swash capital at a line's start,
  a house number at its end) goes to the line it was printed on, told by the ground truth's
  own line break there; without one, by the ground-truth character aligned to the space that
  joins the two lines; otherwise to the line before.

That differs from `app.metrics.alignment.align_document` only where the OCR dropped text at a
line's edge: align_document gives it to the line before (right for scoring a page, wrong for a
line image, which would be paired with a capital printed on the next line). Page slices are
cut the same way, so the pages after the training pages are scored against exactly the ground
truth no training line saw.

A line is left out of training (`LineTruth.usable`) when its alignment is unsure (mostly
insertions and deletions), its OCR differs from its text by more than half, or more than a few
characters are missing at its edges (the image may not hold them).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from rapidfuzz.distance import Levenshtein

from app.metrics.diff import Step, char_steps, mostly_indels
from app.metrics.text import normalize_raw

#: A line whose OCR differs from its ground truth by more than this share is left out: the
#: pairing is more likely wrong than the OCR that bad.
MAX_LINE_CER = 1 / 3
#: Ground-truth characters missing at a line's start or end that the line's box is widened
#: for (estimated from the line's character width); more and the line is left out.
MAX_EDGE_MISSING = 3

_WHITESPACE_RUNS = re.compile(r"(\s+)")


@dataclass(frozen=True)
class LineTruth:
    """A line's share of the ground truth and how well it fits the line's OCR."""

    text: str
    ocr: str
    unsure: bool
    #: Ground-truth characters before the first / after the last one the OCR read right.
    missing_before: int = 0
    missing_after: int = 0

    @property
    def line_cer(self) -> float:
        """Edit distance between the line's OCR and its ground truth, per truth character."""
        return Levenshtein.distance(self.text, self.ocr) / max(1, len(self.text))

    @property
    def usable(self) -> bool:
        """Whether the line can be a training sample (see the module docstring)."""
        return (
            bool(self.text)
            and not self.unsure
            and self.line_cer <= MAX_LINE_CER
            and self.missing_before <= MAX_EDGE_MISSING
            and self.missing_after <= MAX_EDGE_MISSING
        )


@dataclass(frozen=True)
class AlignedDocument:
    """A document's ground truth cut into its pages and lines."""

    #: The raw-normalised ground truth (line breaks and runs of spaces folded to one space).
    reference: str
    #: Per page, per line (as given): the line's truth.
    lines: list[list[LineTruth]]
    #: Per page, (start, end) of its slice in `reference`.
    page_spans: list[tuple[int, int]] = field(default_factory=list)

    def page_text(self, index: int) -> str:
        """The ground truth of one page."""
        start, end = self.page_spans[index]
        return self.reference[start:end].strip()

    def text_from(self, first_page: int) -> str:
        """The ground truth of the pages from `first_page` (0-based) to the end."""
        if first_page >= len(self.page_spans):
            return ""
        return self.reference[self.page_spans[first_page][0] :].strip()


def _raw_with_breaks(reference: str) -> tuple[str, set[int]]:
    """`normalize_raw(reference)` and the positions of its spaces that were line breaks."""
    parts: list[str] = []
    breaks: set[int] = set()
    length = 0
    for part in _WHITESPACE_RUNS.split(unicodedata.normalize("NFC", reference)):
        if not part:
            continue
        if part.isspace():
            if length:
                if "\n" in part or "\r" in part:
                    breaks.add(length)
                parts.append(" ")
                length += 1
        else:
            parts.append(part)
            length += len(part)
    raw = "".join(parts).rstrip()
    return raw, {position for position in breaks if position < len(raw)}


def align_truth(reference: str, pages: Sequence[Sequence[str]]) -> AlignedDocument:
    """Cut a document's ground truth into its pages' lines (see the module docstring).

    Lines the first alignment finds no counterpart for (a running head the transcription left
    out, a smudge read as text) are left out of a second one: they would otherwise take a
    neighbour's punctuation, or a word of it, into their unusable slice.
    """
    raw, breaks = _raw_with_breaks(reference)
    units = [(p, i) for p, lines in enumerate(pages) for i in range(len(lines))]
    texts = {(p, i): normalize_raw(pages[p][i]) for p, i in units}
    anchored = [unit for unit in units if texts[unit]]
    anchors = _anchor(raw, [texts[unit] for unit in anchored])
    unsure = {
        unit
        for unit, first, steps in zip(anchored, anchors.first, anchors.per_line, strict=True)
        if first is None or mostly_indels(steps)
    }
    if unsure:
        anchored = [unit for unit in anchored if unit not in unsure]
        anchors = _anchor(raw, [texts[unit] for unit in anchored])
    cuts = _cuts(raw, breaks, anchors.first, anchors.last, anchors.join_ref)
    return _assemble(raw, pages, units, anchored, texts, cuts, anchors)


@dataclass
class _Anchors:
    """Where each line's first and last aligned truth character is, the truth character
    aligned to each joining space, and each line's alignment steps."""

    first: list[int | None]
    last: list[int | None]
    join_ref: dict[int, int]
    per_line: list[list[Step]]
    #: As first and last, for characters read right (a substitution pairs one with a guess).
    first_equal: list[int | None]
    last_equal: list[int | None]


def _anchor(raw: str, lines: Sequence[str]) -> _Anchors:
    """Align the truth to the lines joined by single spaces; see `_Anchors`."""
    hypothesis = " ".join(lines)
    owner: list[int] = []  # the line of each hypothesis character; -1 for a joining space
    for k, text in enumerate(lines):
        if k:
            owner.append(-1)
        owner.extend([k] * len(text))
    none: list[int | None] = [None] * len(lines)
    anchors = _Anchors(list(none), list(none), {}, [[] for _ in lines], list(none), list(none))
    previous_owner = 0
    for step in char_steps(raw, hypothesis):
        k = owner[step.hyp] if step.hyp >= 0 else previous_owner
        if step.hyp >= 0 and k < 0:
            if step.ref >= 0:
                anchors.join_ref[_next_owner(owner, step.hyp)] = step.ref
            continue
        previous_owner = k
        anchors.per_line[k].append(step)
        if step.ref >= 0 and step.hyp >= 0:
            if anchors.first[k] is None:
                anchors.first[k] = step.ref
            anchors.last[k] = step.ref
            if step.op == "equal":
                if anchors.first_equal[k] is None:
                    anchors.first_equal[k] = step.ref
                anchors.last_equal[k] = step.ref
    return anchors


def _next_owner(owner: list[int], position: int) -> int:
    for value in owner[position:]:
        if value >= 0:
            return value
    return len(owner)


def _cuts(
    raw: str,
    breaks: set[int],
    first: list[int | None],
    last: list[int | None],
    join_ref: dict[int, int],
) -> list[int]:
    """Where each anchored line's truth starts (cuts[k]); cuts[-1] is the end of the truth."""
    count = len(first)
    cuts = [0] * (count + 1)
    cuts[count] = len(raw)
    previous_end = 0  # just after the last truth character aligned to an earlier line
    for k in range(count):
        start = first[k]
        if k == 0 or start is None:
            cuts[k] = previous_end if k else 0
        else:
            gap = range(previous_end, start)
            split = next((i for i in reversed(gap) if i in breaks), None)
            if split is None and k in join_ref and previous_end <= join_ref[k] < start:
                split = join_ref[k]
            cuts[k] = split if split is not None else start
        end = last[k]
        if end is not None:
            previous_end = end + 1
    return cuts


def _assemble(
    raw: str,
    pages: Sequence[Sequence[str]],
    units: list[tuple[int, int]],
    anchored: list[tuple[int, int]],
    texts: dict[tuple[int, int], str],
    cuts: list[int],
    anchors: _Anchors,
) -> AlignedDocument:
    index = {unit: k for k, unit in enumerate(anchored)}
    lines: list[list[LineTruth]] = [[] for _ in pages]
    for unit in units:
        k = index.get(unit)
        if k is None:
            lines[unit[0]].append(LineTruth(text="", ocr=texts[unit], unsure=True))
            continue
        start, end = cuts[k], cuts[k + 1]
        segment = raw[start:end]
        text = segment.strip()
        text_start = start + len(segment) - len(segment.lstrip())
        text_end = end - (len(segment) - len(segment.rstrip()))
        first_k, last_k = anchors.first_equal[k], anchors.last_equal[k]
        before = first_k - text_start if first_k is not None else len(text)
        after = text_end - (last_k + 1) if last_k is not None else 0
        lines[unit[0]].append(
            LineTruth(
                text=text,
                ocr=texts[unit],
                unsure=anchors.first[k] is None or mostly_indels(anchors.per_line[k]),
                missing_before=max(0, before),
                missing_after=max(0, after),
            )
        )
    spans = []
    for p in range(len(pages)):
        ks = [index[unit] for unit in units if unit[0] == p and unit in index]
        if ks:
            spans.append((cuts[ks[0]], cuts[ks[-1] + 1]))
        else:
            spans.append((spans[-1][1], spans[-1][1]) if spans else (0, 0))
    return AlignedDocument(reference=raw, lines=lines, page_spans=spans)
