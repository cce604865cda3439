"""Training records re-printed in other directory layouts, so the CRF learns what a field
looks like rather than where the training directories happened to print it.

Five documents are five layouts; a model trained on them alone learns "the second part is
the address" from the one directory that prints it so. Each training document's records are
therefore also set in other common layouts (surname or given names first, with or without a
comma, a title in front, address before or after the occupation, an address introduced by a
verb, a ditto mark for a repeated surname) as pseudo-documents of their own, so that the
document-layout features (:class:`models.crf_features.DocumentLayout`) are inferred from
each layout as they will be from a new directory. The words are the records' own; only the
arrangement is made up. Deterministic: the same records give the same documents.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Record = Mapping[str, str | None]

FIRST, SURNAME, OCCUPATION, ADDRESS = "first and middle names", "surname", "occupation", "address"


@dataclass(frozen=True)
class Layout:
    """How a directory prints an entry."""

    name: str
    surname_first: bool
    head_comma: bool  # "Fries, Joh." / "Joh. Fries, ..." rather than "Fries Joh. ..."
    address_first: bool
    title: str = ""
    address_intro: str = ""  # "wohnt", "in": a word that opens the address
    #: A word that opens the trade, as registers of merchants print it: ``in Seidenwaaren``.
    occupation_intro: str = ""
    #: The office before the name, after the title: ``Hr. Advokat, Heinr. Gotthelf Klette``.
    role_first: bool = False
    #: A firm: the address after a dash, the business after it (``Fries, Joh. - Zeil 6. Eisen``).
    firm: bool = False
    sorted_by_surname: bool = True
    #: The fields this directory does not print (an address given by a house heading, a
    #: list of officials without addresses, a register without trades).
    omits: tuple[str, ...] = ()


LAYOUTS = (
    Layout("surname-comma", surname_first=True, head_comma=True, address_first=False),
    Layout("surname-space", surname_first=True, head_comma=False, address_first=False),
    Layout("given-first", surname_first=False, head_comma=False, address_first=False),
    Layout(
        "titled-given-first",
        surname_first=False,
        head_comma=False,
        address_first=True,
        title="Hr.",
        sorted_by_surname=False,
    ),
    Layout("surname-address-first", surname_first=True, head_comma=True, address_first=True),
    Layout(
        "titled-surname-verb",
        surname_first=True,
        head_comma=True,
        address_first=False,
        title="Hr.",
        address_intro="wohnt",
    ),
    Layout(
        "given-first-verb",
        surname_first=False,
        head_comma=False,
        address_first=False,
        address_intro="wohnt",
        sorted_by_surname=False,
    ),
    Layout(
        "given-first-no-address",
        surname_first=False,
        head_comma=False,
        address_first=False,
        title="Hr.",
        sorted_by_surname=False,
        omits=(ADDRESS,),
    ),
    Layout(
        "given-first-goods-register",
        surname_first=False,
        head_comma=False,
        address_first=True,
        occupation_intro="in",
    ),
    Layout(
        "titled-role-first",
        surname_first=False,
        head_comma=False,
        address_first=False,
        title="Hr.",
        role_first=True,
        sorted_by_surname=False,
    ),
    Layout("firm-dash", surname_first=True, head_comma=True, address_first=True, firm=True),
    Layout(
        "surname-first-no-occupation",
        surname_first=True,
        head_comma=False,
        address_first=False,
        omits=(OCCUPATION,),
    ),
)
_DITTOS = ("—", "=", "„")
#: House numbers written with a marker: ``Zeil No. 63.``, ``Zeil, Nr. 63.``.
_HOUSE_NUMBER = re.compile(r"(\S)\s+(\d+[a-z]?\.?)$")
_NUMBER_MARKS = (" No. ", ", No. ", " Nr. ", ", Nr. ")
#: Share of addresses that go on to name the house by its owner (``auf der Petersstraße, in
#: Richters Hause``), and of entries that end with a cross-reference (``s. Richter``): both
#: common in the older directories; the house belongs to the address, the reference to none.
HOUSE_SHARE = 0.15
REFERENCE_SHARE = 0.1
_HOUSE_FORMS = ("in {}s Hause", "im {}ischen Hause", "in {}s Haus")


def synthetic_entries(
    records: Sequence[Record], layout: Layout, rng: random.Random
) -> list[tuple[str, Record]]:
    """The records printed in one layout: (entry text, record as printed) pairs."""
    usable = [r for r in records if (r.get(SURNAME) or "").strip()]
    if layout.sorted_by_surname:
        usable = sorted(usable, key=lambda r: (r.get(SURNAME) or "").lower())
    entries: list[tuple[str, Record]] = []
    previous = ""
    owners = [_bare_name(r.get(SURNAME) or "") for r in usable]
    owners = [name for name in owners if name] or ["Richter"]
    for record in usable:
        values = {name: " ".join((record.get(name) or "").split()) for name in record}
        values.update(dict.fromkeys(layout.omits, ""))
        if rng.random() < 0.2:  # many entries print no address, or no occupation
            values[rng.choice((ADDRESS, OCCUPATION))] = ""
        surname = values.get(SURNAME, "")
        ditto = layout.surname_first and surname == previous and rng.random() < 0.3
        previous = surname
        if values.get(ADDRESS) and rng.random() < 0.2:
            values[ADDRESS] = _HOUSE_NUMBER.sub(
                rf"\1{rng.choice(_NUMBER_MARKS)}\2", values[ADDRESS]
            )
        if values.get(ADDRESS) and rng.random() < HOUSE_SHARE:
            house = rng.choice(_HOUSE_FORMS).format(rng.choice(owners))
            values[ADDRESS] = f"{values[ADDRESS].rstrip('.')}, {house}."
        if values.get(OCCUPATION) and layout.occupation_intro:
            values[OCCUPATION] = f"{layout.occupation_intro} {values[OCCUPATION]}"
        text = _print(values, layout, ditto=ditto, rng=rng)
        if rng.random() < REFERENCE_SHARE:
            text = f"{text.rstrip('.')}, s. {rng.choice(owners)}."
        printed = {**values, SURNAME: "" if ditto else surname}
        entries.append((text, printed))
    return entries


def _bare_name(surname: str) -> str:
    """A surname as a house owner's name is built from: one capitalised word of letters."""
    words = [w for w in surname.split() if w.isalpha() and w[:1].isupper()]
    return words[-1] if words else ""


def _print(values: Mapping[str, str], layout: Layout, *, ditto: bool, rng: random.Random) -> str:
    first, surname = values.get(FIRST, ""), values.get(SURNAME, "")
    occupation = values.get(OCCUPATION, "").rstrip(".")
    address = values.get(ADDRESS, "")
    if ditto:
        head = " ".join(p for p in (rng.choice(_DITTOS), first) if p)
    elif layout.surname_first:
        head = f"{surname}{',' if layout.head_comma and first else ''} {first}".strip()
    else:
        head = f"{first} {surname}".strip()
    if layout.title and not ditto:
        head = f"{layout.title} {head}"
    glued = False
    if address and layout.address_intro and rng.random() < 0.7:
        address = f"{layout.address_intro} {address}"
        glued = rng.random() < 0.5  # "Joh. Wilh. wohnt am Markte": no comma before the verb
    if layout.firm and address and occupation and not ditto:
        return f"{head} - {address.rstrip('.')}. {occupation}."
    if layout.role_first and occupation and not ditto:
        head, occupation = f"{layout.title} {occupation}, {head.removeprefix(layout.title)}", ""
        head = " ".join(head.split())
    tail = [address, occupation] if layout.address_first else [occupation, address]
    parts = [p for p in (head, *tail) if p]
    text = ", ".join(parts)
    if glued and parts[-1] == address and len(parts) > 1:
        text = f"{', '.join(parts[:-1])} {address}"
    return text if text.endswith(".") else f"{text}."


def augment(
    documents: Sequence[Sequence[Record]], *, share: float = 0.4, seed: int = 12
) -> list[tuple[int, list[tuple[str, Record]]]]:
    """Pseudo-documents: (index of the source document, its entries in another layout).

    Every layout gets a random ``share`` of each document's records: all layouts are always
    represented (which ones a model saw must not depend on a dice roll), at a training cost
    of ``share * len(LAYOUTS)`` times the real records.
    """
    rng = random.Random(seed)
    result: list[tuple[int, list[tuple[str, Record]]]] = []
    for index, records in enumerate(documents):
        if not records or not all(
            name in records[0] for name in (FIRST, SURNAME, OCCUPATION, ADDRESS)
        ):
            continue
        for layout in LAYOUTS:
            chosen = [record for record in records if rng.random() < share]
            if chosen:
                result.append((index, synthetic_entries(chosen, layout, rng)))
    return result
