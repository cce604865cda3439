"""A learnt offline extractor: a CRF labels each token of a directory entry with its field.

The rules module still finds the entries (which lines form one, hyphenated breaks) and the
headings that carry an address or a role down to the entries below; the CRF decides, token
by token, what is first names, surname, occupation or address, from features that hold
across directories (:mod:`models.crf_features`). It is trained on verified records (the
project's own, reviewed by a historian) and ships with a prior trained on the bundled
benchmark (``models/crf_prior.json``, rebuilt by ``python -m bench.extraction_loo
--train-prior``). Every record says which field came from the model and which from a rule.
"""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pycrfsuite

from models.crf_align import label_tokens, pair_entries
from models.crf_augment import augment
from models.crf_decode import ModelWeights, breaks_rules, constrained_labels, outside_only
from models.crf_features import (
    DocumentLayout,
    EntryView,
    Lexicon,
    entry_features,
    is_word,
    word_classes,
)
from models.crf_tokens import OUTSIDE, Token, field_values, tokenize
from models.rules import DEFAULT_FIELDS, Entry, ExtractedRecord, group_entries, is_lone_name
from models.rules_fields import DITTO

Record = Mapping[str, str | None]

PRIOR_PATH = Path(__file__).with_name("crf_prior.json")
MODEL_FORMAT = 1
#: L1 keeps the model small and drops features that fire on one document's quirks; L2
#: spreads weight over the many weak general features.
TRAINING_PARAMETERS = {"c1": 0.05, "c2": 0.05, "max_iterations": 150}
#: Share of each document's records re-printed in each synthetic layout.
SYNTHETIC_SHARE = 0.4


@dataclass(frozen=True)
class TrainingEntry:
    """An entry's text and the record it holds (None: the entry is no record)."""

    text: str
    record: Record | None
    starts: bool = True


@dataclass(frozen=True)
class TrainingDocument:
    """The entries of one document (or one page): the unit over which layout is inferred."""

    entries: tuple[TrainingEntry, ...]

    @classmethod
    def from_text(
        cls, text: str, records: Sequence[Record], fields: Sequence[str] = DEFAULT_FIELDS
    ) -> TrainingDocument:
        """A transcription and its verified records, paired entry by entry in order."""
        entries = document_entries(text)
        paired = pair_entries([entry.text for entry in entries], records, fields)
        return cls(
            tuple(
                TrainingEntry(entry.text, None if index is None else records[index], entry.starts)
                for entry, index in zip(entries, paired, strict=True)
            )
        )

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, Record]]) -> TrainingDocument:
        """(entry text, record fields) pairs, e.g. records a historian verified."""
        return cls(tuple(TrainingEntry(text, record) for text, record in pairs))

    @property
    def records(self) -> list[Record]:
        """The records of the document's entries."""
        return [entry.record for entry in self.entries if entry.record is not None]


def document_entries(text: str) -> list[Entry]:
    """The candidate entries of a text: the rules' grouping, keeping lines it cannot place
    (the model learns to leave remarks and headings out) but not lone catchwords."""
    return [entry for entry in group_entries(text, keep_text=True) if not is_lone_name(entry)]


class CrfExtractor:
    """A trained CRF with the lexicon its features need; parses directory text into records."""

    def __init__(self, model: bytes, lexicon: Lexicon, fields: Sequence[str]) -> None:
        self.model = model
        self.lexicon = lexicon
        self.fields = tuple(fields)
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(model)
        self._weights: ModelWeights | None = None  # read from the model when first needed

    def save(self, path: Path) -> None:
        """Write the model, lexicon and fields as one JSON file."""
        data = {
            "format": MODEL_FORMAT,
            "fields": list(self.fields),
            "lexicon": self.lexicon.to_json(),
            "crfsuite": base64.b64encode(self.model).decode("ascii"),
        }
        path.write_text(json.dumps(data, ensure_ascii=False, sort_keys=True), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> CrfExtractor:
        """A model written by :meth:`save`; ValueError when the file is not one."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not a histocr CRF model (format {MODEL_FORMAT})")
        model = base64.b64decode(data["crfsuite"])
        return cls(model, Lexicon.from_json(data["lexicon"]), data["fields"])

    def label(
        self, entries: Sequence[EntryView], layout: DocumentLayout | None = None
    ) -> list[list[str]]:
        """The field label of every token of every entry of one document: the model's most
        likely labelling, searched again under the rules every entry keeps where it breaks
        one (:mod:`models.crf_decode`)."""
        layout = layout or DocumentLayout.infer(entries, self.lexicon)
        return [self._label_entry(entry, layout) for entry in entries]

    def _label_entry(self, entry: EntryView, layout: DocumentLayout) -> list[str]:
        if not entry.tokens:
            return []
        features = entry_features(entry, self.lexicon, layout)
        labels: list[str] = self._tagger.tag(features)
        forced = outside_only(entry.tokens)
        if not breaks_rules(labels, entry.tokens, forced):
            return labels
        if self._weights is None:
            self._weights = ModelWeights.of(self._tagger)
        return constrained_labels(self._weights, features, entry.tokens, forced)

    def parse(self, text: str, fields: Sequence[str] = DEFAULT_FIELDS) -> list[ExtractedRecord]:
        """Directory text to records; fields the model does not know stay None."""
        entries = document_entries(text)
        views = [EntryView(e.text, tuple(tokenize(e.text)), e.starts) for e in entries]
        layout = DocumentLayout.infer(views, self.lexicon)
        ditto_repeats_surname = "gf=0" in layout.flags
        records: list[ExtractedRecord] = []
        previous_surname: str | None = None
        surname = _name_field(self.fields)
        for entry, view, labels in zip(entries, views, self.label(views, layout), strict=True):
            values = field_values(view.text, view.tokens, labels, self.fields)
            provenance = {name: "crf" for name, value in values.items() if value}
            if surname and not values.get(surname):
                ditto = ditto_repeats_surname and DITTO.match(entry.text)
                if not (previous_surname and ditto and provenance):
                    continue  # no name found: a heading, a remark, a catchword
                values[surname], provenance[surname] = previous_surname, "rule:ditto"
            previous_surname = values.get(surname) if surname else None
            # What the entry prints itself comes before what a role heading above it says.
            if "occupation" in values and not values["occupation"]:
                values["occupation"] = unlabelled_part(view, labels)
                provenance["occupation"] = "rule:unlabelled-part"
            _carry_headings(values, provenance, entry)
            record_fields = {name: values.get(name) or None for name in fields}
            kept = {name: source for name, source in provenance.items() if record_fields.get(name)}
            records.append(ExtractedRecord(record_fields, entry.line_number, entry.text, kept))
        return records


#: Word classes that open a remark rather than an occupation.
_NOT_OCCUPATION = frozenset({"crossref", "status", "title", "ditto", "verb", "numbermark"})


def unlabelled_part(view: EntryView, labels: Sequence[str]) -> str:
    """The longest run of words after the name that the model gave no field: most entries
    print an occupation, and one in a form the model has not seen (``in Specereyen en
    gros``) is what such a run most often is. Cross-references and status words are not."""
    named = [index for index, label in enumerate(labels) if label != OUTSIDE]
    if not named:
        return ""
    best = ""
    run: list[Token] = []
    for token, label in [*zip(view.tokens, labels, strict=True), (None, "")][named[0] :]:
        if token is not None and label == OUTSIDE:
            run.append(token)
            continue
        words = [t for t in run if is_word(t)]
        if words and not _NOT_OCCUPATION & set(word_classes(words[0].text)):
            text = view.text[words[0].start : words[-1].end]
            if len(words) > len(best.split()) and any(len(w.text) > 2 for w in words):
                best = text
        run = []
    return best


def _name_field(fields: Sequence[str]) -> str | None:
    """The field that names the person (the entry is no record without it)."""
    return "surname" if "surname" in fields else (fields[0] if fields else None)


def _carry_headings(values: dict[str, str], provenance: dict[str, str], entry: Entry) -> None:
    """A house-number or street heading supplies a missing address, a role heading a missing
    occupation, as in the rules extractor."""
    if "occupation" in values and not values["occupation"] and entry.section:
        values["occupation"], provenance["occupation"] = entry.section, "rule:section-heading"
    if "address" in values and not values["address"] and entry.house:
        values["address"], provenance["address"] = entry.house, "rule:house-heading"


def train_extractor(
    documents: Sequence[TrainingDocument],
    fields: Sequence[str] = DEFAULT_FIELDS,
    parameters: Mapping[str, float] | None = None,
    *,
    synthetic_share: float = SYNTHETIC_SHARE,
    base_lexicon: Lexicon | None = None,
) -> CrfExtractor:
    """Train on verified documents; the lexicon a document's features see is built from the
    other documents only, as it will be for a document the model has never seen. Each
    document's records are also re-printed in other layouts, a ``synthetic_share`` of them
    in each (:mod:`models.crf_augment`; 0 turns that off). A ``base_lexicon`` (the prior's)
    adds the words of records trained on elsewhere to every lexicon."""
    if not any(document.records for document in documents):
        raise ValueError("training needs at least one verified record")
    trainer = pycrfsuite.Trainer(verbose=False)
    trainer.set_params({**TRAINING_PARAMETERS, **(parameters or {})})
    folds = [
        (document, lexicon.merged(base_lexicon))
        for document, lexicon in _jackknife(documents, fields)
    ]
    synthetic = augment(
        [printed_records(document, fields) for document, _ in folds],
        share=synthetic_share,
    )
    training = folds + [
        (TrainingDocument.from_pairs(pairs), folds[source][1]) for source, pairs in synthetic
    ]
    for document, lexicon in training:
        for features, labels in training_sequences(document, lexicon, fields):
            trainer.append(features, labels)
    with tempfile.TemporaryDirectory(prefix="histocr-crf-") as folder:
        path = Path(folder) / "model.crfsuite"
        trainer.train(str(path))
        model = path.read_bytes()
    all_records = [record for document in documents for record in document.records]
    lexicon = Lexicon.from_records(all_records, fields).merged(base_lexicon)
    return CrfExtractor(model, lexicon, fields)


def _jackknife(
    documents: Sequence[TrainingDocument], fields: Sequence[str]
) -> list[tuple[TrainingDocument, Lexicon]]:
    """Each document with the lexicon of the other documents: trained on its own words, the
    model would trust the lexicon more than it deserves on a new directory. A single
    document is cut in two halves that lend each other their lexicon."""
    if len(documents) == 1:
        entries = documents[0].entries
        middle = len(entries) // 2
        documents = [TrainingDocument(entries[:middle]), TrainingDocument(entries[middle:])]
    return [
        (
            document,
            Lexicon.from_records(
                [r for other in documents if other is not document for r in other.records],
                fields,
            ),
        )
        for document in documents
    ]


def printed_records(document: TrainingDocument, fields: Sequence[str]) -> list[Record]:
    """The records as printed in their entries: the values their labelled tokens hold,
    without what headings or ditto marks supplied (those are not re-printed elsewhere)."""
    printed: list[Record] = []
    for entry in document.entries:
        if entry.record is None:
            continue
        tokens = tokenize(entry.text)
        labels = label_tokens(entry.text, tokens, entry.record, fields)
        printed.append(field_values(entry.text, tokens, labels, fields))
    return printed


def training_sequences(
    document: TrainingDocument, lexicon: Lexicon, fields: Sequence[str]
) -> list[tuple[list[list[str]], list[str]]]:
    """Feature and label sequences of a document's entries."""
    views = [EntryView(e.text, tuple(tokenize(e.text)), e.starts) for e in document.entries]
    layout = DocumentLayout.infer(views, lexicon)
    sequences = []
    for entry, view in zip(document.entries, views, strict=True):
        if not view.tokens:
            continue
        if entry.record is None:
            labels = [OUTSIDE] * len(view.tokens)
        else:
            labels = label_tokens(view.text, view.tokens, entry.record, fields)
        sequences.append((entry_features(view, lexicon, layout), labels))
    return sequences


@cache
def prior_extractor() -> CrfExtractor:
    """The shipped model trained on all five benchmark documents (loaded once per process)."""
    return CrfExtractor.load(PRIOR_PATH)
