"""Character and word error rates, defined exactly as in Greif, Griesshaber & Greif (2025).

Raw: line breaks and tabs become spaces, runs of whitespace collapse to one, strip.
Normalized: as raw, then every non-ASCII character is dropped (``ö`` disappears, it does not
become ``o``), lower-case, only ``[a-z0-9 ]`` kept, spaces collapsed, strip.
CER is the Levenshtein distance over characters divided by the reference length; WER the same
over the lists of space-separated words. The distances come from jiwer (the field's standard
library), fed the already-normalised texts with no transformation of its own, so its counts are
exactly the Levenshtein distance; the rate of an empty reference stays ours (see ErrorCounts:
jiwer would report the insertion count itself, e.g. 3 for three invented characters).
A document is its pages joined with ``"\\n"``; a corpus score is micro-averaged:
distances and reference lengths are summed before dividing.

Both texts are first brought to Unicode NFC, so a decomposed ``o`` + combining diaeresis counts
as the one character ``ö`` it displays as. On the benchmark files (all already NFC) this changes
nothing; without it an NFD-encoded hypothesis would score differently from an identical-looking
NFC one.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

import jiwer

_WHITESPACE = re.compile(r"\s+")
_NOT_ALNUM_SPACE = re.compile(r"[^a-z0-9 ]")
_SPACES = re.compile(r" +")
#: jiwer's own default transforms strip and collapse spaces; ours have done that already, so the
#: texts are only cut into characters or space-separated words.
CHARACTERS = jiwer.ReduceToListOfListOfChars()
WORDS = jiwer.ReduceToListOfListOfWords()


def normalize_raw(text: str) -> str:
    """Fold line breaks, tabs and whitespace runs into single spaces and strip."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def normalize_strict(text: str) -> str:
    """Raw folding, then drop non-ASCII, lower-case and keep only ``[a-z0-9 ]``."""
    ascii_only = normalize_raw(text).encode("ascii", "ignore").decode("ascii").lower()
    return _SPACES.sub(" ", _NOT_ALNUM_SPACE.sub("", ascii_only)).strip()


def join_pages(pages: Iterable[str]) -> str:
    """Concatenate page texts into one document text, as the paper scores documents."""
    return "\n".join(pages)


@dataclass(frozen=True)
class ErrorCounts:
    """An edit distance and the reference length it is measured against.

    ``rate`` is distance / reference_length. An empty reference has rate 0.0 when the
    hypothesis is empty as well (distance 0) and 1.0 otherwise, so an invented text never
    scores as perfect and the rate stays finite.
    """

    distance: int = 0
    reference_length: int = 0

    @property
    def rate(self) -> float:
        """Errors per reference unit (see the class docstring for an empty reference)."""
        if self.reference_length == 0:
            return 0.0 if self.distance == 0 else 1.0
        return self.distance / self.reference_length

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        """Sum counts, for micro-averaging over pages or documents."""
        if not isinstance(other, ErrorCounts):
            return NotImplemented
        return ErrorCounts(
            self.distance + other.distance, self.reference_length + other.reference_length
        )


@dataclass(frozen=True)
class TextScores:
    """Raw and normalized CER and WER counts of one text pair or a sum of them."""

    cer: ErrorCounts = field(default_factory=ErrorCounts)
    cer_normalized: ErrorCounts = field(default_factory=ErrorCounts)
    wer: ErrorCounts = field(default_factory=ErrorCounts)
    wer_normalized: ErrorCounts = field(default_factory=ErrorCounts)

    def __add__(self, other: TextScores) -> TextScores:
        """Sum every count (micro-average)."""
        if not isinstance(other, TextScores):
            return NotImplemented
        return TextScores(
            cer=self.cer + other.cer,
            cer_normalized=self.cer_normalized + other.cer_normalized,
            wer=self.wer + other.wer,
            wer_normalized=self.wer_normalized + other.wer_normalized,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Rates as fractions under the contract's four keys, plus the counts behind them."""
        result: dict[str, float | int] = {
            "cer": self.cer.rate,
            "cer_normalized": self.cer_normalized.rate,
            "wer": self.wer.rate,
            "wer_normalized": self.wer_normalized.rate,
            "characters": self.cer.reference_length,
            "words": self.wer.reference_length,
        }
        for name in ("cer", "cer_normalized", "wer", "wer_normalized"):
            counts: ErrorCounts = getattr(self, name)
            result[f"{name}_distance"] = counts.distance
            result[f"{name}_reference_length"] = counts.reference_length
        return result


def _char_counts(reference: str, hypothesis: str) -> ErrorCounts:
    out = jiwer.process_characters(
        reference, hypothesis, reference_transform=CHARACTERS, hypothesis_transform=CHARACTERS
    )
    return ErrorCounts(out.substitutions + out.deletions + out.insertions, len(reference))


def _word_counts(reference: str, hypothesis: str) -> ErrorCounts:
    out = jiwer.process_words(
        reference, hypothesis, reference_transform=WORDS, hypothesis_transform=WORDS
    )
    reference_length = out.hits + out.substitutions + out.deletions
    return ErrorCounts(out.substitutions + out.deletions + out.insertions, reference_length)


def score_text(reference: str, hypothesis: str) -> TextScores:
    """Score a hypothesis text against its reference (ground truth)."""
    raw_reference, raw_hypothesis = normalize_raw(reference), normalize_raw(hypothesis)
    strict_reference, strict_hypothesis = normalize_strict(reference), normalize_strict(hypothesis)
    return TextScores(
        cer=_char_counts(raw_reference, raw_hypothesis),
        cer_normalized=_char_counts(strict_reference, strict_hypothesis),
        wer=_word_counts(raw_reference, raw_hypothesis),
        wer_normalized=_word_counts(strict_reference, strict_hypothesis),
    )


def score_documents(pairs: Iterable[tuple[str, str]]) -> TextScores:
    """Micro-averaged scores over (reference, hypothesis) document pairs."""
    total = TextScores()
    for reference, hypothesis in pairs:
        total = total + score_text(reference, hypothesis)
    return total
