"""Cut a document's ground truth into pages and lines by aligning it to the OCR text.

Ground truth is often one file per document, while a reviewer looks at one page and its lines.
The whole document's ground truth is aligned to the whole hypothesis (the pages' lines in
order, as the metric joins them) with the character alignment the CER counts, and each
ground-truth character goes to the OCR line it was aligned with:

- a matched or substituted character goes to the line of its OCR character;
- a deleted character (ground truth the OCR does not have) goes to the line of the last OCR
  character before it, so text missing at a page's end stays on that page (the first line
  takes any deleted before the first OCR character);
- the single space that joins two lines belongs to the line it ends.

The ground truth is cut, never re-aligned, so the pages' counts are a partition of the
document's: their distances and reference lengths add up exactly to the document's CER
(raw and, with a second alignment of the normalised texts, normalized). A page scored on its
own against its slice differs by a few characters at most (the edges re-align, and the joining
spaces are counted once here): on the benchmark's Tesseract output by under 1 %.

A line is ``unsure`` where more than half of its aligned steps are insertions or deletions
(see ``mostly_indels``): the alignment found no counterpart there, so its slice is a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.metrics.diff import DiffOp, Step, char_diff, char_steps, mostly_indels
from app.metrics.text import ErrorCounts, normalize_raw, normalize_strict


@dataclass(frozen=True)
class LineAlignment:
    """A hypothesis line, its aligned ground-truth slice and their diffs."""

    gt_text: str
    diff: list[DiffOp]
    diff_normalized: list[DiffOp]
    unsure: bool


@dataclass(frozen=True)
class PageAlignment:
    """A page's share of the document alignment: its slice of the (raw-normalised, so one-line)
    ground truth, its counts (summing to the document's over all pages) and its lines (one per
    hypothesis line)."""

    gt_text: str
    cer: ErrorCounts
    cer_normalized: ErrorCounts
    lines: list[LineAlignment]

    @property
    def unsure_lines(self) -> int:
        """How many of the page's lines have an unsure slice."""
        return sum(1 for line in self.lines if line.unsure)


#: (page index, line index) of a hypothesis line.
Unit = tuple[int, int]


def _hypothesis(
    pages: Sequence[Sequence[str]], normalize: Callable[[str], str]
) -> tuple[str, list[Unit], list[Unit]]:
    """The document hypothesis as the metric sees it (non-empty normalised lines joined by one
    space: the same text as normalising the pages joined with line breaks), the line each of
    its characters belongs to, and the lines in order."""
    parts: list[str] = []
    owner: list[Unit] = []
    units: list[Unit] = []
    for p, lines in enumerate(pages):
        for i, line in enumerate(lines):
            units.append((p, i))
            text = normalize(line)
            if not text:
                continue
            if parts:
                parts.append(" ")
                owner.append(owner[-1])  # the joining space ends the line before it
            parts.append(text)
            owner.extend([(p, i)] * len(text))
    return "".join(parts), owner, units


def _assign(
    reference: str, pages: Sequence[Sequence[str]], normalize: Callable[[str], str]
) -> tuple[dict[Unit, list[Step]], str]:
    """Each line's alignment steps (see the module docstring for who gets which character)."""
    hypothesis, owner, units = _hypothesis(pages, normalize)
    assigned: dict[Unit, list[Step]] = {unit: [] for unit in units}
    current: Unit | None = owner[0] if owner else (units[0] if units else None)
    for step in char_steps(reference, hypothesis):
        if step.hyp >= 0:
            current = owner[step.hyp]
        if current is not None:
            assigned[current].append(step)
    return assigned, hypothesis


def _counts(steps: Sequence[Step]) -> ErrorCounts:
    return ErrorCounts(
        sum(1 for s in steps if s.op != "equal"), sum(1 for s in steps if s.ref >= 0)
    )


def align_document(reference: str, pages: Sequence[Sequence[str]]) -> list[PageAlignment]:
    """Align a document's ground truth to its pages (each a list of OCR lines, in order).

    Pages without lines get an empty slice and zero counts (the ground truth they may have
    held goes to the line before them, as a deletion).
    """
    raw_reference = normalize_raw(reference)
    raw, _ = _assign(raw_reference, pages, normalize_raw)
    strict_reference = normalize_strict(reference)
    strict, _ = _assign(strict_reference, pages, normalize_strict)
    result: list[PageAlignment] = []
    for p, lines in enumerate(pages):
        page_raw = [step for i in range(len(lines)) for step in raw[(p, i)]]
        page_strict = [step for i in range(len(lines)) for step in strict[(p, i)]]
        aligned: list[LineAlignment] = []
        for i, line in enumerate(lines):
            steps = raw[(p, i)]
            gt_text = "".join(raw_reference[s.ref] for s in steps if s.ref >= 0).strip()
            aligned.append(
                LineAlignment(
                    gt_text=gt_text,
                    diff=char_diff(gt_text, normalize_raw(line)),
                    diff_normalized=char_diff(normalize_strict(gt_text), normalize_strict(line)),
                    unsure=mostly_indels(steps),
                )
            )
        result.append(
            PageAlignment(
                gt_text="".join(raw_reference[s.ref] for s in page_raw if s.ref >= 0).strip(),
                cer=_counts(page_raw),
                cer_normalized=_counts(page_strict),
                lines=aligned,
            )
        )
    return result
