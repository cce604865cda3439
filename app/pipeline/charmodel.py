"""A character trigram model of directory text: how plausible a transcription's letters are.

OCR errors leave traces a reader sees at a glance: letter sequences no German directory prints
(``tlnſ``, ``.,;i``, ``mmrn``). A small interpolated trigram model over characters, trained on
transcribed directory pages, scores that as the mean surprisal per character in bits: clean
text of the collection sits near 2–3 bits, garbage well above. It needs no lexicon, so names,
streets and abbreviations it never saw still score by their spelling.

The shipped model (``charmodel.json`` beside this module) is trained by ``bench/
quality_estimate.py --write-model`` on the ground truth of the five benchmark documents
(../shared/benchmark, MIT licence, Greif, Griesshaber & Greif 2025), regularised as the OCR
output is (``models.ocr.transcription.regularise``). The benchmark script evaluates it
leave-one-document-out, so its figures show how it does on a directory it was not trained on.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SHIPPED_MODEL = Path(__file__).with_name("charmodel.json")
#: Interpolation weights of the trigram, bigram and unigram estimates (fixed, not fitted: with
#: some 24 000 training characters a held-out fit would move them by little).
WEIGHTS = (0.6, 0.3, 0.1)
BOUNDARY = "\n"


@dataclass
class CharModel:
    """Counts of character 1-, 2- and 3-grams; lines are padded with a boundary mark."""

    counts: Counter[str] = field(default_factory=Counter)
    contexts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def train(cls, texts: Iterable[str]) -> CharModel:
        """Count n-grams of every line of the texts."""
        model = cls()
        for text in texts:
            for line in text.splitlines():
                padded = BOUNDARY * 2 + line + BOUNDARY
                for end in range(2, len(padded)):
                    for order in (1, 2, 3):
                        model.counts[padded[end - order + 1 : end + 1]] += 1
        model._count_contexts()
        return model

    def _count_contexts(self) -> None:
        """How often each 0-, 1- and 2-character context is followed by something."""
        self.contexts = Counter()
        for gram, count in self.counts.items():
            self.contexts[gram[:-1]] += count

    def surprisal(self, text: str) -> tuple[float, int]:
        """Total surprisal in bits of the text's characters and how many were scored."""
        total, scored = 0.0, 0
        vocabulary = sum(1 for gram in self.counts if len(gram) == 1) + 1
        for line in text.splitlines():
            if not line.strip():
                continue
            padded = BOUNDARY * 2 + line + BOUNDARY
            for end in range(2, len(padded)):
                total -= math.log2(self._probability(padded[end - 2 : end + 1], vocabulary))
                scored += 1
        return total, scored

    def bits_per_character(self, text: str) -> float | None:
        """Mean surprisal per character, or None for a text with no characters."""
        total, scored = self.surprisal(text)
        return total / scored if scored else None

    def _probability(self, trigram: str, vocabulary: int) -> float:
        tri, bi, uni = WEIGHTS
        probability = uni * (self.counts[trigram[2]] + 1) / (self.contexts[""] + vocabulary)
        if self.contexts[trigram[1]]:
            probability += bi * self.counts[trigram[1:]] / self.contexts[trigram[1]]
        if self.contexts[trigram[:2]]:
            probability += tri * self.counts[trigram] / self.contexts[trigram[:2]]
        return probability

    def dumps(self) -> str:
        """The model as JSON (sorted, so a retrained model diffs cleanly)."""
        return json.dumps(dict(sorted(self.counts.items())), ensure_ascii=False, indent=0)

    @classmethod
    def loads(cls, text: str) -> CharModel:
        """A model from `dumps` output."""
        model = cls(counts=Counter({str(k): int(v) for k, v in json.loads(text).items()}))
        model._count_contexts()
        return model


@cache
def shipped_model() -> CharModel:
    """The model trained on the benchmark ground truth, loaded once per process."""
    return CharModel.loads(SHIPPED_MODEL.read_text(encoding="utf-8"))
