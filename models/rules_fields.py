"""Rules that split one city-directory entry into names, occupation and address."""

from __future__ import annotations

import re

TITLE = re.compile(
    r"^(?:Herren|Herrn|Herr|Hrn|Hr|Frau|Fr|Jungfer|Jgfr|Mad|Dem)\.?(?=\s|[A-ZÄÖÜ]|$)\s*"
)
DITTO = re.compile(r"^(?:[=〃„“\"»•·]\s*|[-–—]\s+)+")
HYPHENS = ("-", "=", "¬", "⸗")
HOUSE_NUMBER = re.compile(r"^(?:\d+[a-z]?[½¼¾]?|\d+/\d+)\.?$")
DISTRICT = re.compile(r"^(?:[A-Z]\.?|[IVXL]+\.|Nr\.?)$")
PARTICLES = frozenset("v. von de van zu la le du vom zum".split())

_CONNECTORS = frozenset({"und", "u.", "&"})
_JUNIOR = frozenset("jun. sen. jr. sr. jun sen".split())
_STATUS = frozenset("wwe wwe. wittwe witwe wittib wittib. seel. sel.".split())
_STATUS_ALONE = _STATUS | {"w", "w.", "frau"}
_ACADEMIC = frozenset("m. d. dr. prof. mag. lic.".split())
_STREET_PREFIXES = frozenset(
    "kl. gr. alte alten neue neuen große grosse großen kleine kleinen lange langen obere "
    "untere hohe hohen heilig st. sankt".split()
)
_PLACE_WORDS = frozenset(
    "am im an auf in unter hinter neben bey bei vor der dem den des die das zum zur "
    "außerhalb ausserhalb extra".split()
)
_ORGANISATION = re.compile(
    r"(?:handlung|erben|compagnie|gesellschaft|verein|commission|fabrik|anstalt|druckerei)\.?$",
    re.IGNORECASE,
)
_STATUS_SEGMENT = re.compile(r"^(?:geb\.|geborne|seel\.\s*Frau)\s", re.IGNORECASE)
_FIRM_SUFFIX = re.compile(r"\s+(?:u\.|und|&)\s+(?:Sohn|Söhne|Comp\.?|Co\.?|Cie\.?|C\.)(?:\s.*)?$")
_BRACKETED = re.compile(r"\s*(?:\([^()]*\)|\[[^\]]*\])[.;]?")
_GLUED_INITIAL = re.compile(r"(?<=[a-zäöü]\.)(?=[A-ZÄÖÜ][a-zäöü])")
_DASH = re.compile(r"\s[-–—]\s")
_NUMBER_THEN_REST = re.compile(r"^(.*?\d[\d½¼¾/a-z]*\.)\s*(.*)$")
_SEGMENT_SPLIT = re.compile(r"\s*[,;]\s*")
_NOTE = re.compile(
    r"^(?:Be=?\s*si[tz]|Eigenth|dessen\s|deren\s|Letztere\s|schenkt\s"
    r"|hat\s+(?:seinen|den|ihren|einen)\s+Laden)"
)
_CROSS_REFERENCE = re.compile(r"^(?:s\.|siehe|vide|vid\.)(?:\s|$)", re.IGNORECASE)
LOCATIVE_START = re.compile(
    r"^(?:(?:in|auf|an|unter|hinter|neben|bey|bei|vor|über|zwischen|nächst|ohnweit|gegenüber)"
    r"\s+(?:der|dem|den|des|die|das)\b|(?:im|am|beym|beim|vorm|aufm|außerhalb|ausserhalb"
    r"|extra|eben)\b)",
    re.IGNORECASE,
)
_IN_SOMEONES_HOUSE = re.compile(r"^(?:in|im|bey|bei|auf)\s.*Hause?[-.]*$")
_WEAK_PLACE = re.compile(r"^in\s+[A-ZÄÖÜ]\w+\.?$")
# Street words at the end of a token; "meistr." (Meister) is not a "str." (Straße).
_STREET = re.compile(
    r"(?:(?<!m)(?<!mei)str\.|stra(?:ß|ss)e|gasse|gaß|gass|gas|g[äåa](?:ß|ss)chen|platz|markte?"
    r"|graben|wege?|thor(?:e|es)?|anlage|quai|brücke|bach|allee|wall|pforte?|zwinger|hofe?"
    r"|[^aeiouäöüy\W]g\.|\wgr\.|\wanl\.)[\d½¼¾/.]*$"
)

Names = tuple[str, str, str, list[str]]  # first names, surname, occupation prefix, rest


def is_street_token(token: str) -> bool:
    """Whether a word names a street: ``Großkölnstraße``, ``Mainzerg.``, ``Fahrthor``."""
    return bool(_STREET.search(token.lower().rstrip(",;:")))


def is_name_token(token: str) -> bool:
    """Whether a word can belong to a personal name: capitalised, an initial, a particle."""
    if token in PARTICLES or token in _CONNECTORS or token in _JUNIOR or token == "gen.":
        return True
    if not token[0].isupper() or any(c.isdigit() for c in token):
        return False
    return not token.endswith(".") or len(token) <= 8


def parse_entry(text: str, *, given_first: bool, previous_surname: str | None) -> dict[str, str]:
    """Split an entry into the default fields ("" where absent); {} when nothing is left."""
    body = TITLE.sub("", DITTO.sub("", text), count=1)
    if DITTO.match(text) and not given_first and previous_surname:
        body = f"{previous_surname}, {body}"
    body = " ".join(_GLUED_INITIAL.sub(" ", _BRACKETED.sub(",", body)).split())
    dash = _DASH.split(body, maxsplit=1)
    firm_tail: list[str] = []
    if len(dash) == 2 and not any(c.isdigit() for c in dash[0]):
        firm_tail = _split_firm_tail(dash[1])
        body = dash[0] if firm_tail else body
    segments = [s for s in _SEGMENT_SPLIT.split(body) if s.strip(" .")]
    if len(segments) == 1 and not firm_tail:
        head, address = split_address(segments[0])
        segments = [head, address] if head and address else segments
    if not segments:
        return {}
    names = _names_given_first(segments) if given_first else _names_surname_first(segments)
    first, surname, occupation_prefix, rest = names
    occupations, addresses, occupation_last = _classify_segments(rest)
    if firm_tail:
        addresses, occupations = firm_tail[:1], [t for t in firm_tail[1:] if t]
    occupations = [o for o in [occupation_prefix, *occupations] if o]
    if occupations and occupation_last:
        occupations[-1] = _drop_final_period(occupations[-1])
    return {
        "first and middle names": first,
        "surname": _drop_final_period(surname),
        "occupation": ", ".join(occupations),
        "address": ", ".join(addresses),
    }


def _drop_final_period(value: str) -> str:
    """Drop the period that ends an entry, but not one that ends an abbreviation."""
    words = value.split()
    if value.endswith(".") and not value.endswith("..") and len(words[-1]) > 5:
        return value[:-1]
    return value


def _split_firm_tail(tail: str) -> list[str]:
    """``Street 5. Business, goods`` after a firm's dash: [address, business], or []."""
    match = _NUMBER_THEN_REST.match(tail)
    if match is None or len(match.group(1).split()) > 6:
        return []
    return [match.group(1).strip(" ,"), match.group(2).strip(" ,")]


def _names_given_first(segments: list[str]) -> Names:
    """Names as ``Firstnames Surname``; a lone word before a full name is a rank or trade."""
    prefix = ""
    name, rest = segments[0], segments[1:]
    if rest and _is_name_segment(rest[0]) and len(rest[0].split()) >= 2:
        if len(name.split()) == 1 or "und" in name.split():
            prefix, name, rest = name, rest[0], rest[1:]
    tokens, junior_rest = _name_tokens(_FIRM_SUFFIX.sub("", name))
    while len(tokens) > 2 and (tokens[0].lower() in _ACADEMIC or tokens[0] in _CONNECTORS):
        tokens = tokens[1:]
    if not tokens:
        return "", "", prefix, rest
    start = _firm_start(tokens)
    if start is None:
        start = len(tokens) - 1
        while start > 0 and tokens[start - 1].lower() in PARTICLES:
            start -= 1
    return " ".join(tokens[:start]), " ".join(tokens[start:]), prefix or junior_rest, rest


def _firm_start(tokens: list[str]) -> int | None:
    """Where a firm name starts: ``David [Behaghe und Schild]``, ``[Beinische Erben]``."""
    if len(tokens) > 1 and _ORGANISATION.search(tokens[-1]):
        return 0
    for index in range(1, len(tokens) - 1):
        if tokens[index] in _CONNECTORS and all(
            len(word) > 2 and word[0].isupper() and not word.endswith(".")
            for word in (tokens[index - 1], tokens[index + 1])
        ):
            return index - 1
    return None


def _names_surname_first(segments: list[str]) -> Names:
    """Names as ``Surname Firstnames`` or ``Surname, Firstnames``."""
    tokens = segments[0].split()
    rest = segments[1:]
    size = 2 if len(tokens) > 1 and tokens[0] in PARTICLES else 1
    surname, given = " ".join(tokens[:size]), tokens[size:]
    if given[:1] == ["gen."]:  # "Fritz gen. Huth Heinrich": drop the alias
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
    return 0 < len(tokens) <= 6 and all(
        is_name_token(t) or t.lower() in _STATUS_ALONE for t in tokens
    )


def _classify_segments(segments: list[str]) -> tuple[list[str], list[str], bool]:
    """Occupation and address parts of what follows the name; and whether the occupation
    ends the entry."""
    occupations: list[str] = []
    addresses: list[str] = []
    occupation_last = False
    for segment in segments:
        if _NOTE.match(segment):  # "Besitzer dieses Hauses", "dessen Ehefrau ...": a remark
            occupations += [] if occupations else [segment]
            occupation_last = not occupations[:-1]
            break
        if _CROSS_REFERENCE.match(segment) or _is_status(segment) or segment in _CONNECTORS:
            continue
        head, address = split_address(segment)
        occupations += [head] if head else []
        addresses += [address] if address else []
        occupation_last = not address
    if not addresses and occupations and _WEAK_PLACE.match(occupations[-1]):
        addresses.append(occupations.pop())
        occupation_last = False
    return occupations, addresses, occupation_last


def _is_status(segment: str) -> bool:
    tokens = segment.lower().split()
    return all(t in _STATUS_ALONE for t in tokens) or bool(_STATUS_SEGMENT.match(segment))


def split_address(segment: str) -> tuple[str, str]:
    """Split a segment into (leading text, trailing address); either may be empty."""
    if LOCATIVE_START.match(segment) or _IN_SOMEONES_HOUSE.match(segment):
        return "", segment
    if "daselbst" in segment:
        return "", segment
    tokens = segment.split()
    start = next((i for i, token in enumerate(tokens) if is_street_token(token)), None)
    if start is None:
        start = _street_before_number(tokens)
    if start is None:
        return segment, ""
    start = _extend_address_start(tokens, start)
    return " ".join(tokens[:start]), " ".join(tokens[start:])


def _street_before_number(tokens: list[str]) -> int | None:
    """Index of the street name in ``Büchel A 1079.`` or ``Zeil 63.``, if the segment ends so."""
    if not tokens or not HOUSE_NUMBER.match(tokens[-1]):
        return None
    index = len(tokens) - 2
    while index >= 0 and (HOUSE_NUMBER.match(tokens[index]) or DISTRICT.match(tokens[index])):
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
        if lower in _STREET_PREFIXES or lower in _PLACE_WORDS or previous.endswith(HYPHENS):
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
