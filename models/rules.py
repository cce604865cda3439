"""Offline extraction baseline: city-directory text to records by rules, no model needed.

Handles the common layouts of German city directories: ``Surname, Firstnames, Occupation,
Address.``; ``Surname Firstnames, Occupation, Address``; titled entries with first names before
the surname (``Hr. Joh. Gottfr. Richter, Schneidermeister``) and ``=`` ditto marks; firm lines
``Name - Street 5. Business``; ``Nr. 3`` house headings, street headings and one-line role
headings (``Prediger.``) that supply the address or occupation of the entries below them.
This module groups lines into entries; :mod:`models.rules_fields` splits an entry into fields.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from models.rules_fields import (
    DISTRICT,
    DITTO,
    HOUSE_NUMBER,
    HYPHENS,
    PARTICLES,
    TITLE,
    is_name_token,
    is_street_token,
    parse_entry,
)

DEFAULT_FIELDS = ("first and middle names", "surname", "occupation", "address")

_TITLE_WORDS = frozenset("herren herrn herr hrn. hr. hr frau fr. jungfer".split())
_HOUSE_HEADING = re.compile(r"^Nr\.?\s*(\d+[a-z]?)\.?$")
_NUMBERED = re.compile(r"^(?:\d{1,3}[.)]|[IVX]{1,5}\.|[a-z]\))\s")
_RUNNING_HEAD = re.compile(r"^\d{1,4}\s+\D|\D\s(\S+)\s+\d{1,4}$")
_NAME_END = re.compile(r"[,(\[;]|\s[-–—]\s")
_LONE_NAME = re.compile(r"^[A-ZÄÖÜ][\w'-]+,?$")
_FIRM_WITHOUT_BUSINESS = re.compile(r"\s[-–—]\s[^,]*\d[\w½/]*\.$")


@dataclass(frozen=True)
class ExtractedRecord:
    """One directory entry as field values, with the 1-based line it starts on.

    ``source_line`` is the entry's text: its lines joined with spaces. ``provenance`` names,
    per filled field, what produced it (``"rule:entry"``, ``"crf"``, ``"rule:house-heading"``,
    ...), so a reviewer can tell a model's guess from a heading carried down.
    """

    fields: dict[str, str | None]
    line_number: int
    source_line: str
    provenance: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Entry:
    """The lines of one directory entry, with the house and role headings above it.

    ``starts`` is False for a line kept although it does not look like the start of an
    entry (see :func:`group_entries`' ``keep_text``).
    """

    line_number: int
    lines: list[str]
    house: str | None
    section: str | None
    starts: bool = True

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def titled(self) -> bool:
        return bool(TITLE.match(self.lines[0]))

    @property
    def ditto(self) -> bool:
        return bool(DITTO.match(self.lines[0]))


@dataclass
class _Context:
    house: str | None = None
    street: str | None = None
    section: str | None = None
    entries: list[Entry] = field(default_factory=list)
    open_entry: Entry | None = None


def parse_directory_text(
    text: str, fields: Sequence[str] = DEFAULT_FIELDS
) -> list[ExtractedRecord]:
    """Parse directory text into records; fields outside the default schema stay None."""
    entries = [entry for entry in group_entries(text) if not is_lone_name(entry)]
    given_first = _given_names_first(entries)
    records: list[ExtractedRecord] = []
    previous_surname: str | None = None
    for entry in entries:
        values = parse_entry(entry.text, given_first=given_first, previous_surname=previous_surname)
        if not values.get("surname"):
            continue
        provenance = {name: "rule:entry" for name, value in values.items() if value}
        if entry.ditto and not given_first and previous_surname:
            provenance["surname"] = "rule:ditto"
        previous_surname = values["surname"]
        if not values["occupation"] and entry.section:
            values["occupation"], provenance["occupation"] = entry.section, "rule:section-heading"
        if not values["address"] and entry.house:
            values["address"], provenance["address"] = entry.house, "rule:house-heading"
        record_fields = {name: values.get(name) or None for name in fields}
        kept = {name: source for name, source in provenance.items() if record_fields.get(name)}
        records.append(ExtractedRecord(record_fields, entry.line_number, entry.text, kept))
    return records


def is_lone_name(entry: Entry) -> bool:
    """A single line of one capitalised word: a catchword or a name cut from its entry."""
    return len(entry.lines) == 1 and bool(_LONE_NAME.match(entry.lines[0]))


def _given_names_first(entries: list[Entry]) -> bool:
    """Whether the directory prints ``Firstnames Surname``: the entries without a ditto mark
    mostly open with a title, or often do and are not sorted by their first word (as
    ``Surname Firstnames`` directories are)."""
    named = [entry for entry in entries if not entry.ditto]
    if not named:
        return False
    titled = sum(entry.titled for entry in named) / len(named)
    initials = [_sort_key(entry.text) for entry in named]
    pairs = list(zip(initials, initials[1:], strict=False))
    in_order = sum(a <= b for a, b in pairs) / len(pairs) if pairs else 0.0
    return titled >= 0.5 or (titled >= 0.05 and in_order < 0.9)


def _sort_key(text: str) -> str:
    first = (TITLE.sub("", DITTO.sub("", text), count=1) or text).split()[0].lower()
    return first[:1].replace("ä", "a").replace("ö", "o").replace("ü", "u")


def group_entries(text: str, *, keep_text: bool = False) -> list[Entry]:
    """Join each entry's lines, carrying house, street and role headings along.

    With ``keep_text``, lines that neither continue an entry nor look like one's start are
    kept as entries with ``starts=False`` (a learnt extractor decides what they are) instead
    of being dropped.
    """
    context = _Context()
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = " ".join(raw_line.split())
        open_text = context.open_entry.text if context.open_entry else None
        kind, value = _line_kind(line, open_text)
        if kind == "continuation" and context.open_entry is not None:
            context.open_entry.lines.append(line)
            continue
        context.open_entry = None
        if kind == "entry" or (kind == "text" and keep_text):
            context.open_entry = Entry(
                number, [line], context.house, context.section, starts=kind == "entry"
            )
            context.entries.append(context.open_entry)
        elif kind == "house":
            context.house = f"{context.street}, {value}" if context.street else value
        elif kind == "street":
            context.street = value
        elif kind == "section":
            context.section = value
        elif kind == "numbered":
            context.section = None
    return context.entries


def _line_kind(line: str, open_text: str | None) -> tuple[str, str | None]:
    """Classify one line given the text of the entry it might continue."""
    if not line:
        return "blank", None
    if _NUMBERED.match(line):
        return "numbered", None
    house = _HOUSE_HEADING.match(line)
    if house:
        return "house", f"Nr. {house.group(1)}."
    if _is_furniture(line):
        return "furniture", None
    starts = _starts_entry(line)
    if open_text and _continues(open_text, line, starts):
        return "continuation", None
    heading = _heading(line)
    if heading is not None:
        return heading
    return ("entry", None) if starts else ("text", None)


def _is_furniture(line: str) -> bool:
    """Page numbers, running heads, catchwords, footnotes and parenthetical remarks."""
    tokens = line.split()
    if line.isdigit() or line.startswith("*)") or (line[0] == "(" and line.rstrip(".")[-1] == ")"):
        return True
    if "," in line:
        return False
    if len(tokens) <= 3 and tokens[-1].lower() in _TITLE_WORDS:
        return True
    head = _RUNNING_HEAD.search(line)
    if head is None:
        return False
    before_number = head.group(1) or ""
    return not (DISTRICT.match(before_number) or is_street_token(before_number))


def _heading(line: str) -> tuple[str, str] | None:
    """A short one-line heading: ("street", name) or ("section", role like ``Prediger``)."""
    tokens = line.rstrip(".").split()
    if not line.endswith(".") or not 1 <= len(tokens) <= 3 or "," in line:
        return None
    if not line[0].isupper() or any(c.isdigit() for c in line) or len(tokens[0]) < 3:
        return None
    if tokens[0].lower() in _TITLE_WORDS:
        return None
    kind = "street" if any(is_street_token(token) for token in tokens) else "section"
    return kind, " ".join(tokens)


def _continues(open_text: str, line: str, starts: bool) -> bool:
    """Whether a line carries on the open entry rather than starting a new one."""
    if line[0].islower():
        return not starts  # "v. Fritsch Carl, ..." starts an entry despite the lower case
    if _is_marked(line):
        return False
    if _awaits_more(open_text, line):
        return True
    return not starts and not open_text.endswith(".")


def _awaits_more(open_text: str, line: str) -> bool:
    """An entry cut short: ``Förster,``, a lone surname, a firm line without its business."""
    if open_text.endswith((",", *HYPHENS)) or _LONE_NAME.match(open_text):
        return True
    firm = _FIRM_WITHOUT_BUSINESS.search(open_text)
    return bool(firm) and line.split()[0].rstrip(",") != open_text.split()[0].rstrip(",")


def _is_marked(line: str) -> bool:
    """A title or ditto mark followed by a capitalised word, and a comma later on."""
    if not (TITLE.match(line) or DITTO.match(line)) or "," not in line:
        return False
    rest = DITTO.sub("", TITLE.sub("", line, count=1), count=1)
    return bool(rest) and rest[0].isupper()


def _starts_entry(line: str) -> bool:
    """Whether a line opens an entry: a title, a ditto mark, or a name before a separator."""
    if TITLE.match(line) or DITTO.match(line):
        return _is_marked(line)
    if _LONE_NAME.match(line):
        return True
    head = _NAME_END.split(line, maxsplit=1)
    tokens = head[0].split()
    if tokens and tokens[0] in PARTICLES:
        tokens = tokens[1:]
    if not tokens or not tokens[0][0].isupper() or len(tokens[0]) < 2:
        return False
    name_like = 0
    while name_like < len(tokens) and is_name_token(tokens[name_like]):
        name_like += 1
    if len(head) > 1:
        return name_like == len(tokens) <= 7
    return name_like >= 3 and bool(HOUSE_NUMBER.match(tokens[-1]))
