"""Character diffs between a ground-truth text and an OCR text, from jiwer's alignment.

The alignment is the one the CER counts (jiwer's ``process_characters``), so a diff's
non-equal characters add up to the Levenshtein distance the metric reports for the same pair.
Texts are taken as given: callers normalise them first (``normalize_raw`` or
``normalize_strict``), as the metric does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple, cast

import jiwer

from app.metrics.text import CHARACTERS

OpKind = Literal["equal", "insert", "delete", "substitute"]


@dataclass(frozen=True)
class DiffOp:
    """One run of same-kind operations: ``gt`` is the ground-truth text it covers (empty for
    an insertion), ``ocr`` the OCR text (empty for a deletion)."""

    op: OpKind
    gt: str
    ocr: str

    @property
    def cost(self) -> int:
        """The edit operations this run counts for: one per character unless equal."""
        if self.op == "equal":
            return 0
        return max(len(self.gt), len(self.ocr))


class Step(NamedTuple):
    """One character-level operation: indexes into the reference and hypothesis (-1: none).
    A tuple, not a dataclass: a document makes one per character, and tuples are made fast."""

    op: OpKind
    ref: int
    hyp: int


def char_steps(reference: str, hypothesis: str) -> list[Step]:
    """The optimal alignment as one step per character, in order of both texts."""
    if not reference and not hypothesis:
        return []
    out = jiwer.process_characters(
        reference, hypothesis, reference_transform=CHARACTERS, hypothesis_transform=CHARACTERS
    )
    steps: list[Step] = []
    for chunk in out.alignments[0]:
        kind = cast(OpKind, chunk.type)
        if kind == "insert":
            steps.extend(Step(kind, -1, h) for h in range(chunk.hyp_start_idx, chunk.hyp_end_idx))
        elif kind == "delete":
            steps.extend(Step(kind, r, -1) for r in range(chunk.ref_start_idx, chunk.ref_end_idx))
        else:
            offset = chunk.hyp_start_idx - chunk.ref_start_idx
            steps.extend(
                Step(kind, r, r + offset) for r in range(chunk.ref_start_idx, chunk.ref_end_idx)
            )
    return steps


def group_steps(steps: list[Step], reference: str, hypothesis: str) -> list[DiffOp]:
    """Merge consecutive steps of one kind into runs with their text spans."""
    ops: list[DiffOp] = []
    for step in steps:
        gt = reference[step.ref] if step.ref >= 0 else ""
        ocr = hypothesis[step.hyp] if step.hyp >= 0 else ""
        if ops and ops[-1].op == step.op:
            last = ops[-1]
            ops[-1] = DiffOp(step.op, last.gt + gt, last.ocr + ocr)
        else:
            ops.append(DiffOp(step.op, gt, ocr))
    return ops


def char_diff(reference: str, hypothesis: str) -> list[DiffOp]:
    """The character diff of two (already normalised) texts as runs of operations."""
    return group_steps(char_steps(reference, hypothesis), reference, hypothesis)


def mostly_indels(steps: list[Step]) -> bool:
    """True where more than half of the steps are insertions or deletions.

    An aligned stretch that is mostly substitutions and matches still pairs OCR characters
    with ground-truth characters; one that is mostly insertions/deletions means the
    alignment found no counterpart (a line missing from the ground truth, a running head the
    transcription left out, or ground truth the OCR skipped), so the cut there is a guess.
    """
    indels = sum(1 for step in steps if step.op in ("insert", "delete"))
    return indels * 2 > len(steps)
