"""Decoding the CRF under what every directory entry obeys, whatever its layout.

The CRF scores each token's label from features and its neighbour's label; it does not know
that an entry names each field once. Left alone it may print an occupation, then an address,
then label the house the person lives in (``in Dam- hohns Hause``) an occupation again, or
run an address on past its house number into the goods a firm trades in. So the most likely
labelling is searched for again, with the model's own weights (the same score crfsuite's
Viterbi maximises), among the labellings that keep these rules:

- each field is one block: once another field has started, an earlier one does not resume
  (tokens of no field may stand inside a block: ``Hdlsm (s. vorst.) Mittelweg 32``);
- an address ends at its house number: ``Zeil 63. Juwelen`` prints the trade after it;
- a cross-reference part (``s. Raths-Collegium``, ``siehe Kalb``), a bracketed remark
  (``(Eig. Nachstehender.)``, ``[Bt]``) and the titles an entry opens with (``Hr.``,
  ``Herren``) belong to no field.

The search runs only where the model's own answer breaks a rule, so an entry the model
already labels consistently keeps its labels exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pycrfsuite

from models.crf_features import is_word, word_classes
from models.crf_tokens import OUTSIDE, Token, segment_indices

ADDRESS = "address"
#: A house number with its period: the address ends there (``63.``, ``459½.``).
_NUMBER_END = re.compile(r"^\d+[a-z]?[½¼¾]?\.$")
_CROSS_REFERENCES = frozenset({"s.", "siehe", "vide", "vid.", "vgl.", "conf."})
_BRACKETS = {"(": ")", "[": "]"}
#: A score no labelling can win with: a label a rule forbids for a token.
_FORBIDDEN = -1e9

#: The search state after a token: its label, the field whose block is open, the fields
#: whose block has closed, and whether the address has passed its house number.
_State = tuple[str, str | None, frozenset[str], bool]


@dataclass(frozen=True)
class ModelWeights:
    """A trained model's weights, as the decoder needs them."""

    labels: tuple[str, ...]
    state: Mapping[str, tuple[float, ...]]  # attribute -> weight per label
    transitions: Mapping[tuple[str, str], float]

    @classmethod
    def of(cls, tagger: pycrfsuite.Tagger) -> ModelWeights:
        """Read the weights of an opened tagger."""
        info = tagger.info()
        labels = tuple(tagger.labels())
        index = {label: i for i, label in enumerate(labels)}
        state: dict[str, list[float]] = {}
        for (attribute, label), weight in info.state_features.items():
            state.setdefault(attribute, [0.0] * len(labels))[index[label]] = weight
        return cls(
            labels,
            {attribute: tuple(weights) for attribute, weights in state.items()},
            dict(info.transitions),
        )

    def emissions(self, features: Sequence[Sequence[str]]) -> list[list[float]]:
        """Each token's score per label: the sum of its features' weights."""
        scores = []
        for attributes in features:
            row = [0.0] * len(self.labels)
            for attribute in attributes:
                weights = self.state.get(attribute)
                if weights is not None:
                    row = [total + weight for total, weight in zip(row, weights, strict=True)]
            scores.append(row)
        return scores


def outside_only(tokens: Sequence[Token]) -> list[bool]:
    """Which tokens belong to no field: leading titles, cross-reference parts, brackets."""
    forced = _in_brackets(tokens)
    segments = segment_indices(tokens)
    opening: dict[int, str] = {}
    for token, segment in zip(tokens, segments, strict=True):
        if is_word(token):
            opening.setdefault(segment, token.text)
    for index, segment in enumerate(segments):
        if opening.get(segment) in _CROSS_REFERENCES:
            forced[index] = True
    if tokens and "title" in word_classes(tokens[0].text):
        forced[0] = True  # only the first: in ``Hr. Fr. Wilh. Schulze`` "Fr." is a name
    return forced


def _in_brackets(tokens: Sequence[Token]) -> list[bool]:
    """Tokens inside balanced brackets (nothing, when the brackets do not balance)."""
    inside: list[bool] = []
    closing: list[str] = []
    for token in tokens:
        if token.text in _BRACKETS:
            closing.append(_BRACKETS[token.text])
        inside.append(bool(closing))
        if closing and token.text == closing[-1]:
            closing.pop()
    return [False] * len(tokens) if closing else inside


def breaks_rules(labels: Sequence[str], tokens: Sequence[Token], forced: Sequence[bool]) -> bool:
    """Whether a labelling breaks one of the rules above."""
    state: _State = (OUTSIDE, None, frozenset(), False)
    for label, token, outside in zip(labels, tokens, forced, strict=True):
        after = _next_state(state, label, token)
        if after is None or (outside and label != OUTSIDE):
            return True
        state = after
    return False


def _next_state(state: _State, label: str, token: Token) -> _State | None:
    """The state after labelling a token, or None when the label breaks a rule."""
    _previous, open_field, closed, past_number = state
    if label == OUTSIDE:
        return (label, open_field, closed, past_number)
    if label != open_field and label in closed:
        return None
    if label == ADDRESS and past_number:
        return None
    if open_field is not None and label != open_field:
        closed = closed | {open_field}
    past_number = past_number or (label == ADDRESS and bool(_NUMBER_END.match(token.text)))
    return (label, label, closed, past_number)


def constrained_labels(
    weights: ModelWeights,
    features: Sequence[Sequence[str]],
    tokens: Sequence[Token],
    forced: Sequence[bool],
) -> list[str]:
    """The highest-scoring labelling that keeps the rules (Viterbi over rule states)."""
    emissions = weights.emissions(features)
    for index, outside in enumerate(forced):
        if outside:
            emissions[index] = [0.0 if y == OUTSIDE else _FORBIDDEN for y in weights.labels]
    start: _State = (OUTSIDE, None, frozenset(), False)
    best: dict[_State, tuple[float, list[str]]] = {}
    for column, label in enumerate(weights.labels):
        state = _next_state(start, label, tokens[0])
        if state is not None:
            best[state] = (emissions[0][column], [label])
    for index in range(1, len(tokens)):
        following: dict[_State, tuple[float, list[str]]] = {}
        for state, (score, path) in best.items():
            for column, label in enumerate(weights.labels):
                after = _next_state(state, label, tokens[index])
                if after is None:
                    continue
                total = (
                    score
                    + emissions[index][column]
                    + weights.transitions.get((state[0], label), 0.0)
                )
                if after not in following or following[after][0] < total:
                    following[after] = (total, [*path, label])
        best = following
    return max(best.values(), key=lambda item: item[0])[1]
