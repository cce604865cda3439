"""Offline extraction baseline: city-directory text to records by rules, no model needed.

Handles the common layouts of German city directories: ``Surname, Firstnames, Occupation,
Address.``; ``Surname Firstnames, Occupation, Address``; titled entries with first names before
the surname (``Hr. Joh. Gottfr. Richter, Schneidermeister``) and ``=`` ditto marks; firm lines
``Name - Street 5. Business``; ``Nr. 3`` house headings and one-line role headings
(``Prediger.``) that supply the address or occupation of the entries below them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

DEFAULT_FIELDS = ("first and middle names", "surname", "occupation", "address")

_TITLE = re.compile(
    r"^(?:Herren|Herrn|Herr|Hrn|Hr|Frau|Fr|Jungfer|Jgfr|Mad|Dem)\.?(?=\s|[A-ZÄÖÜ]|$)\s*"
)
_DITTO = re.compile(r"^(?:[=〃„“\"»]\s*)+")
_TITLE_WORDS = {"herren", "herrn", "herr", "hrn.", "hr.", "hr", "frau", "fr.", "jungfer"}
_PARTICLES = {"v.", "von", "de", "van", "zu", "la", "le", "du", "vom", "zum"}
_CONNECTORS = {"und", "u.", "&"}
_STATUS = {"w", "w.", "wwe", "wwe.", "wittwe", "witwe", "wittib", "wittib.", "seel.", "sel."}
_STATUS_SEGMENT = re.compile(r"^(?:geb\.|geborne|seel\.\s*Frau)\s", re.IGNORECASE)
_JUNIOR = {"jun.", "sen.", "jr.", "sr.", "jun", "sen"}
_FIRM_SUFFIX = re.compile(r"\s+(?:u\.|und|&)\s+(?:Sohn|Söhne|Comp\.?|Co\.?|Cie\.?|C\.)(?:\s.*)?$")
_BRACKETED = re.compile(r"\([^()]*\)|\[[^\]]*\]")
_DASH = re.compile(r"\s[-–—]\s")
_NUMBER_THEN_REST = re.compile(r"^(.*?\d[\d½¼¾/a-z]*\.)\s*(.*)$")
_SEGMENT_SPLIT = re.compile(r"\s*[,;]\s*")
_NOTE = re.compile(
    r"^(?:Be=?\s*si[tz]|Eigenth|dessen\s|deren\s|Letztere\s|schenkt\s"
    r"|hat\s+(?:seinen|den|ihren|einen)\s+Laden)"
)
_CROSS_REFERENCE = re.compile(r"^(?:s\.|siehe|vide|vid\.)(?:\s|$)", re.IGNORECASE)
_LOCATIVE_START = re.compile(
    r"^(?:(?:in|auf|an|unter|hinter|neben|bey|bei|vor|über|zwischen|nächst|ohnweit|gegenüber)"
    r"\s+(?:der|dem|den|des|die|das)\b|(?:im|am|beym|beim|vorm|aufm|außerhalb|ausserhalb"
    r"|extra|eben)\b)",
    re.IGNORECASE,
)
_WEAK_PLACE = re.compile(r"^in\s+[A-ZÄÖÜ]\w+\.?$")
_STREET = re.compile(
    r"(?:stra(?:ß|ss)e|str\.|gasse|gaß|gass|gas|g[äåa](?:ß|ss)chen|platz|markte?|graben|wege?"
    r"|thor(?:e|es)?|anlage|quai|brücke|bach|allee|wall|pforte?|zwinger|hofe?"
    r"|[^aeiouäöüy\W]g\.|\wgr\.|\wanl\.)[\d½¼¾/.]*$"
)
_HOUSE_NUMBER = re.compile(r"^(?:\d+[a-z]?[½¼¾]?|\d+/\d+)\.?$")
_DISTRICT = re.compile(r"^(?:[A-Z]\.?|[IVXL]+\.|Nr\.?)$")
_STREET_PREFIXES = {
    "kl.",
    "gr.",
    "alte",
    "alten",
    "neue",
    "neuen",
    "große",
    "grosse",
    "großen",
    "kleine",
    "kleinen",
    "lange",
    "langen",
    "obere",
    "untere",
    "hohe",
    "hohen",
    "heilig",
    "st.",
    "sankt",
}
_PLACE_WORDS = {
    "am",
    "im",
    "an",
    "auf",
    "in",
    "unter",
    "hinter",
    "neben",
    "bey",
    "bei",
    "vor",
    "der",
    "dem",
    "den",
    "des",
    "die",
    "das",
    "zum",
    "zur",
    "außerhalb",
    "ausserhalb",
    "extra",
}
_HOUSE_HEADING = re.compile(r"^Nr\.?\s*(\d+[a-z]?)\.?$")
_NUMBERED = re.compile(r"^(?:\d{1,3}[.)]|[IVX]{1,5}\.|[a-z]\))\s")
_RUNNING_HEAD = re.compile(r"^\d{1,4}\s+\D|\D\s(\S+)\s+\d{1,4}$")
_HYPHENS = ("-", "=", "¬", "⸗", ",")


@dataclass(frozen=True)
class ExtractedRecord:
    """One directory entry as field values, with the 1-based line it starts on."""

    fields: dict[str, str | None]
    line_number: int
    source_line: str


@dataclass
class _Entry:
    line_number: int
    lines: list[str]
    house: str | None
    section: str | None
    titled: bool
    ditto: bool

    @property
    def text(self) -> str:
        return " ".join(self.lines)


@dataclass
class _Context:
    house: str | None = None
    section: str | None = None
    entries: list[_Entry] = field(default_factory=list)
    open_entry: _Entry | None = None


def parse_directory_text(
    text: str, fields: Sequence[str] = DEFAULT_FIELDS
) -> list[ExtractedRecord]:
    """Parse directory text into records; fields outside the default schema stay None."""
    entries = _group_entries(text)
    titled = sum(entry.titled or entry.ditto for entry in entries)
    given_first = bool(entries) and 2 * titled >= len(entries)
    records: list[ExtractedRecord] = []
    previous_surname: str | None = None
    for entry in entries:
        values = _parse_entry(entry, given_first=given_first, previous_surname=previous_surname)
        if not values.get("surname"):
            continue
        previous_surname = values["surname"]
        record_fields = {name: values.get(name) or None for name in fields}
        records.append(ExtractedRecord(record_fields, entry.line_number, entry.text))
    return records


# -- grouping lines into entries ------------------------------------------------------------


def _group_entries(text: str) -> list[_Entry]:
    context = _Context()
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = " ".join(raw_line.split())
        open_text = context.open_entry.text if context.open_entry else None
        kind, value = _line_kind(line, open_text)
        if kind == "continuation" and context.open_entry is not None:
            context.open_entry.lines.append(line)
            continue
        context.open_entry = None
        if kind == "entry":
            context.open_entry = _new_entry(number, line, context)
            context.entries.append(context.open_entry)
        elif kind == "house":
            context.house = value
        elif kind == "section":
            context.section = value
        elif kind == "numbered":
            context.section = None
    return context.entries


def _new_entry(number: int, line: str, context: _Context) -> _Entry:
    return _Entry(
        line_number=number,
        lines=[line],
        house=context.house,
        section=context.section,
        titled=bool(_TITLE.match(line)),
        ditto=bool(_DITTO.match(line)),
    )


def _line_kind(line: str, open_text: str | None) -> tuple[str, str | None]:
    """Classify one line given the text of the entry it might continue."""
    if not line:
        return "blank", None
    if _NUMBERED.match(line):
        return "numbered", None
    if _is_furniture(line):
        return "furniture", None
    house = _HOUSE_HEADING.match(line)
    if house:
        return "house", f"Nr. {house.group(1)}."
    starts = _starts_entry(line)
    if open_text and not starts and _continues(open_text, line):
        return "continuation", None
    heading = _heading(line)
    if heading is not None:
        return ("section", heading) if heading else ("heading", None)
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
    return not (_DISTRICT.match(before_number) or _is_street_token(before_number))


def _heading(line: str) -> str | None:
    """Role heading text (``Prediger.``), "" for another short heading, None otherwise."""
    tokens = line.rstrip(".").split()
    if not line.endswith(".") or not 1 <= len(tokens) <= 3 or "," in line:
        return None
    if not line[0].isupper() or any(c.isdigit() for c in line) or len(tokens[0]) < 3:
        return None
    if tokens[0].lower() in _TITLE_WORDS:
        return None
    if any(_is_street_token(token) for token in tokens):
        return ""
    return " ".join(tokens)


def _continues(open_text: str, line: str) -> bool:
    return line[0].islower() or not open_text.endswith(".") or open_text.endswith(_HYPHENS)


def _starts_entry(line: str) -> bool:
    """Whether a line opens an entry: a title, a ditto mark, or a name before a separator."""
    if _TITLE.match(line) or _DITTO.match(line):
        rest = _DITTO.sub("", _TITLE.sub("", line, count=1), count=1)
        return bool(rest) and rest[0].isupper()
    head = re.split(r"[,(\[;]|\s[-–—]\s", line, maxsplit=1)
    tokens = head[0].split()
    if tokens and tokens[0] in _PARTICLES:
        tokens = tokens[1:]
    if not tokens or not tokens[0][0].isupper() or len(tokens[0]) < 2:
        return False
    name_like = 0
    for token in tokens:
        if not _is_name_token(token):
            break
        name_like += 1
    if len(head) > 1:
        return name_like == len(tokens) <= 7
    return name_like >= 3 and bool(_HOUSE_NUMBER.match(tokens[-1]))


def _is_name_token(token: str) -> bool:
    if token in _PARTICLES or token in _CONNECTORS or token in _JUNIOR or token == "gen.":
        return True
    if not token[0].isupper() or any(c.isdigit() for c in token):
        return False
    return not token.endswith(".") or len(token) <= 8


# -- parsing one entry ----------------------------------------------------------------------


def _parse_entry(
    entry: _Entry, *, given_first: bool, previous_surname: str | None
) -> dict[str, str]:
    body = _TITLE.sub("", _DITTO.sub("", entry.text), count=1)
    if entry.ditto and not given_first and previous_surname:
        body = f"{previous_surname}, {body}"
    body = " ".join(_BRACKETED.sub(",", body).split())
    dash = _DASH.split(body, maxsplit=1)
    trailing: list[str] = []
    if len(dash) == 2 and not any(c.isdigit() for c in dash[0]):
        body, trailing = dash[0], _split_firm_tail(dash[1])
    segments = [s for s in _SEGMENT_SPLIT.split(body) if s.strip(" .")]
    if len(segments) == 1 and not trailing:
        head, address = _split_address(segments[0])
        segments = [head, address] if head and address else segments
    if not segments:
        return {}
    names = _names_given_first(segments) if given_first else _names_surname_first(segments)
    first, surname, occupation_prefix, rest = names
    occupations, addresses = _classify_segments(rest)
    if trailing:
        addresses, occupations = trailing[:1], [t for t in trailing[1:] if t]
    occupations = [o for o in [occupation_prefix, *occupations] if o]
    return {
        "first and middle names": first,
        "surname": surname,
        "occupation": ", ".join(occupations) or entry.section or "",
        "address": ", ".join(addresses) or entry.house or "",
    }


def _split_firm_tail(tail: str) -> list[str]:
    """``Street 5. Business, goods`` after a firm's dash: [address, business]."""
    match = _NUMBER_THEN_REST.match(tail)
    if match is None:
        return [tail.strip(" ,")]
    return [match.group(1).strip(" ,"), match.group(2).strip(" ,")]


def _names_given_first(segments: list[str]) -> tuple[str, str, str, list[str]]:
    """Names as ``Firstnames Surname``; a lone word before a full name is a rank or trade."""
    prefix = ""
    name, rest = segments[0], segments[1:]
    if rest and _is_name_segment(rest[0]) and len(rest[0].split()) >= 2:
        if len(name.split()) == 1 or "und" in name.split():
            prefix, name, rest = name, rest[0], rest[1:]
    tokens, junior_rest = _name_tokens(_FIRM_SUFFIX.sub("", name))
    if not tokens:
        return "", "", prefix, rest
    if _CONNECTORS & set(tokens):
        return "", " ".join(tokens), prefix or junior_rest, rest
    start = len(tokens) - 1
    while start > 0 and tokens[start - 1].lower() in _PARTICLES:
        start -= 1
    first = " ".join(tokens[:start])
    return first, " ".join(tokens[start:]), prefix or junior_rest, rest


def _names_surname_first(segments: list[str]) -> tuple[str, str, str, list[str]]:
    """Names as ``Surname Firstnames`` or ``Surname, Firstnames``."""
    tokens = segments[0].split()
    rest = segments[1:]
    size = 2 if len(tokens) > 1 and tokens[0] in _PARTICLES else 1
    surname, given = " ".join(tokens[:size]), tokens[size:]
    if given[:1] == ["gen."]:
        given = given[2:]
    if not given and rest and _is_name_segment(rest[0]):
        given, rest = rest[0].split(), rest[1:]
    kept, junior_rest = _name_tokens(" ".join(given))
    return " ".join(kept), surname, junior_rest, rest


def _name_tokens(name: str) -> tuple[list[str], str]:
    """Name tokens without status words; words after ``jun.``/``sen.`` are returned apart."""
    tokens = [t for t in name.split() if t.lower() not in _STATUS]
    for index, token in enumerate(tokens):
        if token.lower() in _JUNIOR:
            return tokens[: index + 1], " ".join(tokens[index + 1 :])
    return tokens, ""


def _is_name_segment(segment: str) -> bool:
    tokens = segment.split()
    return 0 < len(tokens) <= 6 and all(_is_name_token(t) or t.lower() in _STATUS for t in tokens)


def _classify_segments(segments: list[str]) -> tuple[list[str], list[str]]:
    """Split what follows the name into occupation parts and address parts."""
    occupations: list[str] = []
    addresses: list[str] = []
    for segment in segments:
        if _NOTE.match(segment):
            break
        if _CROSS_REFERENCE.match(segment) or _is_status(segment):
            continue
        head, address = _split_address(segment)
        occupations += [head] if head else []
        addresses += [address] if address else []
    if not addresses and occupations and _WEAK_PLACE.match(occupations[-1]):
        addresses.append(occupations.pop())
    return occupations, addresses


def _is_status(segment: str) -> bool:
    tokens = segment.lower().split()
    return all(t in _STATUS or t == "frau" for t in tokens) or bool(_STATUS_SEGMENT.match(segment))


def _split_address(segment: str) -> tuple[str, str]:
    """Split a segment into (leading text, trailing address); either may be empty."""
    if _LOCATIVE_START.match(segment) or "daselbst" in segment:
        return "", segment
    tokens = segment.split()
    start = next((i for i, token in enumerate(tokens) if _is_street_token(token)), None)
    if start is None:
        start = _street_before_number(tokens)
    if start is None:
        return segment, ""
    start = _extend_address_start(tokens, start)
    return " ".join(tokens[:start]), " ".join(tokens[start:])


def _is_street_token(token: str) -> bool:
    return bool(_STREET.search(token.lower().rstrip(",;:")))


def _street_before_number(tokens: list[str]) -> int | None:
    """Index of the street name in ``Büchel A 1079.`` or ``Zeil 63.``, if the segment ends so."""
    if not tokens or not _HOUSE_NUMBER.match(tokens[-1]):
        return None
    index = len(tokens) - 2
    while index >= 0 and (_HOUSE_NUMBER.match(tokens[index]) or _DISTRICT.match(tokens[index])):
        index -= 1
    if index < 0 or not tokens[index][0].isupper():
        return None
    return index


def _extend_address_start(tokens: list[str], start: int) -> int:
    """Move the address start back over prefixes: ``kl.``, ``auf der``, ``Friedberger``."""
    short_street = len(tokens[start].rstrip(".,")) <= 8
    while start > 0:
        previous = tokens[start - 1]
        lower = previous.lower()
        if lower in _STREET_PREFIXES or lower in _PLACE_WORDS or previous.endswith(_HYPHENS[:4]):
            start -= 1
        elif short_street and previous[0].isupper() and _is_place_adjective(previous):
            start -= 1
        else:
            break
    return start


def _is_place_adjective(token: str) -> bool:
    """``Friedberger``, ``Trierischer``, ``Darmst.``: words that name a street with the next."""
    core = token.rstrip(",")
    return core.endswith(("er", "ische", "ischen", "ischer")) or (
        core.endswith(".") and len(core) <= 10
    )
