"""Features of an entry's tokens for the CRF: what generalises from one directory to another.

A directory the model has never seen shares little vocabulary with the training ones (other
surnames, other streets), but much of its form: capitalisation and abbreviation shapes,
where a token stands relative to the commas, house numbers and ``No.``/``Nr.``/quarter
letters, street-word endings, prepositions that open an address (``in der``, ``am``), verbs
(``wohnt``), honorifics, ditto marks, and given names and trades that recur everywhere. The
features say those things; the word itself is one feature among many.

Two kinds of knowledge come from the training records rather than from code: the lexicon
(which words were seen in which field) and the document's layout, inferred from the
document itself (do entries open with a given name or a surname, are they sorted, titled,
is the first part a single word) and crossed with the position features, so that "last
word before the first comma" can mean a surname in one directory and a given name in
another.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from models.crf_tokens import Token, is_separator, segment_indices
from models.rules_fields import (
    DISTRICT,
    DITTO,
    HOUSE_NUMBER,
    LOCATIVE_START,
    PARTICLES,
    TITLE,
    is_street_token,
)

Record = Mapping[str, str | None]
FeatureList = list[str]

_STRIP = '.,;:()[]=-„“"»«'
_TITLES = frozenset(
    "herren herrn herr hrn hr frau fr jungfer jgfr mad dem madame demoiselle".split()
)
_DITTOS = frozenset({"=", "〃", "„", "“", '"', "»", "•", "·", "-", "–", "—", "dto.", "do.", "id."})
_NUMBER_MARKERS = frozenset("no. nr. no nr num. nro. n°. n°".split())
_PREPOSITIONS = frozenset(
    "in im am an auf unter hinter neben bey bei beim beym vor vorm zum zur über zwischen "
    "nächst ohnweit unweit gegenüber außerhalb ausserhalb extra aufm".split()
)
_ARTICLES = frozenset("der dem den des die das".split())
_VERBS = frozenset("wohnt wohnhaft wohnend logirt logiert hält hat ist hält treibt".split())
_CROSS_REFERENCES = frozenset("s. siehe vide vid. vgl. conf.".split())
_STATUS = frozenset("wwe wwe. wittwe witwe wittib w w. geb. geborne seel. sel. ww.".split())
_CONNECTORS = frozenset({"und", "u.", "&", "u"})
_JUNIOR = frozenset("jun. sen. jr. sr. jun sen d. ä. j.".split())
_ACADEMIC = frozenset("dr. prof. m. d. lic. mag. dris".split())
_LOCATIONAL = frozenset("daselbst ebendaselbst eben hause haus".split())
_SHAPE_RUNS = re.compile(r"(.)\1+")


def normalise(word: str) -> str:
    """A word as the lexicon keys it: lower case, without surrounding punctuation."""
    return word.lower().strip(_STRIP)


@dataclass
class Lexicon:
    """How often each word was seen in each field of the training records."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[Record], fields: Sequence[str]) -> Lexicon:
        """Count the words of every field of the records."""
        counts: dict[str, Counter[str]] = {name: Counter() for name in fields}
        for record in records:
            for name in fields:
                for word in (record.get(name) or "").split():
                    key = normalise(word)
                    if len(key) > 1:
                        counts[name][key] += 1
        return cls(counts)

    def fields_of(self, word: str) -> list[str]:
        """The fields a word was seen in, most frequent first."""
        key = normalise(word)
        seen = [(counter[key], name) for name, counter in self.counts.items() if counter[key]]
        return [name for _count, name in sorted(seen, key=lambda pair: -pair[0])]

    def merged(self, other: Lexicon | None) -> Lexicon:
        """This lexicon with another's counts added (for the fields this one has)."""
        if other is None:
            return self
        counts = {name: counter.copy() for name, counter in self.counts.items()}
        for name, counter in counts.items():
            counter.update(other.counts.get(name, Counter()))
        return Lexicon(counts)

    def to_json(self) -> dict[str, dict[str, int]]:
        """The counts as plain JSON."""
        return {name: dict(counter) for name, counter in self.counts.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, int]]) -> Lexicon:
        """Counts saved by :meth:`to_json`."""
        return cls({name: Counter(words) for name, words in data.items()})


@dataclass(frozen=True)
class EntryView:
    """What the features see of an entry: its text, tokens, and whether the line grouping
    took its first line for the start of an entry."""

    text: str
    tokens: tuple[Token, ...]
    starts: bool = True


def word_classes(word: str) -> list[str]:
    """The word's general classes: title, ditto, preposition, street word, house number, ..."""
    lower = word.lower()
    bare = lower.rstrip(".")
    classes = []
    checks = (
        ("title", bare in _TITLES or bool(TITLE.fullmatch(word))),
        ("ditto", lower in _DITTOS or bool(DITTO.fullmatch(word))),
        ("particle", word in PARTICLES),
        ("street", is_street_token(word)),
        ("number", bool(HOUSE_NUMBER.match(word))),
        ("district", bool(DISTRICT.match(word)) and word[:1].isupper()),
        ("numbermark", lower in _NUMBER_MARKERS),
        ("prep", lower in _PREPOSITIONS),
        ("article", lower in _ARTICLES),
        ("verb", lower in _VERBS),
        ("crossref", lower in _CROSS_REFERENCES),
        ("status", lower in _STATUS),
        ("connector", lower in _CONNECTORS),
        ("junior", lower in _JUNIOR),
        ("academic", lower in _ACADEMIC),
        ("located", normalise(word) in _LOCATIONAL),
    )
    classes = [name for name, applies in checks if applies]
    return classes


def shape(word: str) -> str:
    """``Förster`` → ``Xx``, ``Joh.`` → ``Xx.``, ``459½.`` → ``d½.``: the form, not the word."""
    mapped = "".join(
        "X" if c.isupper() else "x" if c.islower() else "d" if c.isdigit() else c for c in word
    )
    return _SHAPE_RUNS.sub(r"\1", mapped)


@dataclass(frozen=True)
class DocumentLayout:
    """What a document's entries look like, inferred from the document itself."""

    flags: tuple[str, ...]

    @classmethod
    def infer(cls, entries: Sequence[EntryView], lexicon: Lexicon) -> DocumentLayout:
        """Given name or surname first, sorted, titled, one-word first part."""
        heads = [_head_words(entry.tokens) for entry in entries if entry.starts]
        heads = [head for head in heads if head]
        if not heads:
            return cls(())
        first_name = lexicon_field(lexicon, "first")
        given = sum(bool(first_name and _is_field(lexicon, h[0], first_name)) for h in heads)
        one_word = sum(len(h) == 1 for h in heads)
        titled = sum(bool(TITLE.match(entry.text)) for entry in entries if entry.starts)
        initials = [normalise(h[0])[:1] for h in heads]
        ordered = sum(a <= b for a, b in zip(initials, initials[1:], strict=False))
        started = max(1, sum(entry.starts for entry in entries))
        pairs = max(1, len(initials) - 1)
        given_first = given / len(heads) >= 0.3
        one_word = one_word / len(heads) >= 0.5
        flags = [
            f"gf={int(given_first)}",
            f"one={int(one_word)}",
            f"head={int(given_first)}{int(one_word)}",
            f"titled={int(titled / started >= 0.5)}",
            f"sorted={int(len(initials) > 2 and ordered / pairs >= 0.85)}",
            *_address_order(entries),
        ]
        return cls(tuple(flags))


def _address_order(entries: Sequence[EntryView]) -> list[str]:
    """Whether the document prints the address right after the name (``Name, auf dem
    Römerberg, in Seidenwaaren``) or last (``Name, Schneider, Zeil 63.``): which of the parts
    after the first look like an address (a street word, a house number, ``in der``)."""
    early = late = counted = anywhere = 0
    for entry in entries:
        parts = _parts(entry.tokens)[1:]
        anywhere += any(_looks_like_address(part) for part in parts)
        if len(parts) < 2:
            continue
        counted += 1
        early += _looks_like_address(parts[0])
        late += _looks_like_address(parts[-1])
    flags = [f"addrany={int(anywhere / max(1, len(entries)) >= 0.3)}"]
    if not counted:
        return [*flags, "addr1=0", "addrlast=0"]
    return [
        *flags,
        f"addr1={int(early / counted >= 0.4)}",
        f"addrlast={int(late / counted >= 0.4)}",
    ]


def _parts(tokens: Sequence[Token]) -> list[list[str]]:
    """The words of each comma-separated part."""
    parts: list[list[str]] = [[]]
    for token, segment in zip(tokens, segment_indices(tokens), strict=True):
        while len(parts) <= segment:
            parts.append([])
        if is_word(token):
            parts[segment].append(token.text)
    return [part for part in parts if part]


def _looks_like_address(words: Sequence[str]) -> bool:
    if LOCATIVE_START.match(" ".join(words[:2])) or normalise(words[-1]) in _LOCATIONAL:
        return True
    return any(is_street_token(w) for w in words) or bool(HOUSE_NUMBER.match(words[-1]))


def lexicon_field(lexicon: Lexicon, prefix: str) -> str | None:
    """The lexicon's field whose name starts with a prefix (``first`` → first names)."""
    return next((name for name in lexicon.counts if name.startswith(prefix)), None)


def _is_field(lexicon: Lexicon, word: str, name: str) -> bool:
    fields = lexicon.fields_of(word)
    return bool(fields) and fields[0] == name


def _head_words(tokens: Sequence[Token]) -> list[str]:
    """The words of an entry's first part, without title, ditto marks and particles."""
    words: list[str] = []
    for token in tokens:
        if is_separator(token) and words:
            break
        classes = word_classes(token.text)
        if not is_word(token) or {"title", "ditto", "particle", "academic"} & set(classes):
            continue
        words.append(token.text)
    return words


def entry_features(entry: EntryView, lexicon: Lexicon, layout: DocumentLayout) -> list[FeatureList]:
    """One feature list per token of the entry."""
    tokens = entry.tokens
    segments = segment_indices(tokens)
    last_segment = segments[-1] if segments else 0
    own = [_token_features(token, lexicon) for token in tokens]
    positions = _positions(tokens, segments)
    parts = _segment_features(tokens, segments, lexicon)
    number_at = [i for i, t in enumerate(tokens) if HOUSE_NUMBER.match(t.text)]
    entry_flags = [f"starts={entry.starts}", f"nseg={min(last_segment + 1, 5)}"]
    if tokens and TITLE.match(entry.text):
        entry_flags.append("entry_titled")
    if tokens and DITTO.match(entry.text):
        entry_flags.append("entry_ditto")
    features: list[FeatureList] = []
    for index in range(len(tokens)):
        position = positions[index]
        segment = segments[index]
        items = ["bias", *own[index], *position, *entry_flags, *parts.get(segment, [])]
        items += [f"prev{f}" for f in parts.get(segment - 1, []) if not f.startswith("sg:lex")]
        items += [f"next{f}" for f in parts.get(segment + 1, []) if not f.startswith("sg:lex")]
        items.append(f"segend={min(last_segment - segments[index], 3)}")
        if number_at and index > number_at[0]:
            items.append("after_number")
        if any(n > index and segments[n] == segments[index] for n in number_at):
            items.append("number_follows_in_part")
        items += [f"{flag}|{p}" for flag in layout.flags for p in position]
        for offset in (-2, -1, 1, 2):
            other = index + offset
            if 0 <= other < len(tokens):
                items += [f"{offset}:{f}" for f in own[other] if not f.startswith(("s3", "s4"))]
            else:
                items.append(f"{offset}:edge")
        features.append(items)
    return features


def _token_features(token: Token, lexicon: Lexicon) -> FeatureList:
    word = token.text
    key = normalise(word)
    items = [f"w={word.lower()}", f"shape={shape(word)}"]
    if is_separator(token) or word in {".", "(", ")", "[", "]"}:
        items.append("punct")
    if len(key) >= 4:
        items += [f"s3={key[-3:]}", f"s4={key[-4:]}"]
    if word[:1].isupper():
        items.append("cap")
    if len(key) >= 10:
        items.append("long")
    if word.endswith(("-", "=", "⸗", "¬")) and len(word) > 1:
        items.append("broken")
    items += [f"c={name}" for name in word_classes(word)]
    fields = lexicon.fields_of(word)
    items += [f"lex={name}" for name in fields]
    if fields:
        items.append(f"lexmax={fields[0]}")
    return items


def _segment_features(
    tokens: Sequence[Token], segments: Sequence[int], lexicon: Lexicon
) -> dict[int, FeatureList]:
    """What each comma-separated part looks like as a whole (a token sees only its
    neighbours, but ``in der Nicolasstraße`` makes every word of its part an address)."""
    words: dict[int, list[str]] = {}
    for token, segment in zip(tokens, segments, strict=True):
        if is_word(token):
            words.setdefault(segment, []).append(token.text)
    features: dict[int, FeatureList] = {}
    for segment, part in words.items():
        classes = {name for word in part for name in word_classes(word)}
        items = [f"sg:words={min(len(part), 4)}"]
        items += [f"sg:{name}" for name in sorted(classes & _PART_CLASSES)]
        if LOCATIVE_START.match(" ".join(part[:2])):
            items.append("sg:locative")
        if word_classes(part[0]):
            items += [f"sg:opens={name}" for name in word_classes(part[0])]
        if HOUSE_NUMBER.match(part[-1]):
            items.append("sg:ends_number")
        seen = Counter(fields[0] for fields in map(lexicon.fields_of, part) if fields)
        items += [f"sg:lex={name}" for name in seen]
        if seen:
            items.append(f"sg:lexmost={seen.most_common(1)[0][0]}")
        features[segment] = items
    return features


_PART_CLASSES = frozenset(
    {"street", "number", "numbermark", "verb", "crossref", "status", "located", "title"}
)


def is_word(token: Token) -> bool:
    """Whether a token holds a letter or digit (not a bare separator, period or bracket)."""
    return any(c.isalnum() for c in token.text)


def _positions(tokens: Sequence[Token], segments: Sequence[int]) -> list[FeatureList]:
    """Where each token stands: in which comma-separated part, and where in it."""
    words_in: Counter[int] = Counter()
    for token, segment in zip(tokens, segments, strict=True):
        if is_word(token):
            words_in[segment] += 1
    seen: Counter[int] = Counter()
    positions: list[FeatureList] = []
    for index, (token, segment) in enumerate(zip(tokens, segments, strict=True)):
        size = words_in[segment]
        at = seen[segment]
        if is_word(token):
            seen[segment] += 1
        if size == 1:
            where = "only"
        elif at == 0:
            where = "first"
        elif at == size - 1:
            where = "last"
        else:
            where = "mid"
        positions.append(
            [
                f"seg={min(segment, 4)}",
                f"segpos={where}",
                f"seg{min(segment, 2)}={where}",
                f"i={min(index, 6)}",
                f"segi={min(at, 4)}",
            ]
        )
    return positions
