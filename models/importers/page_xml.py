"""PAGE XML (PRImA, as Transkribus exports it): each Page's text lines in reading order."""

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from models.importers.errors import ImportFormatError
from models.importers.safe_xml import pages_of, parse_xml, split_tag

PAGE_NAMESPACE_PREFIX = "http://schema.primaresearch.org/PAGE/gts/pagecontent/"
_CUSTOM_INDEX = re.compile(r"readingOrder\s*\{[^}]*\bindex\s*:\s*(\d+)")


def read_page_xml(data: bytes, source: str = "PAGE XML") -> list[str]:
    """The lines of a one-page PAGE XML file, in reading order."""
    pages = read_page_xml_pages(data, source)
    if len(pages) != 1:
        raise ImportFormatError(f"{source}: holds {len(pages)} Page elements, expected one")
    return pages[0]


def read_page_xml_pages(data: bytes, source: str = "PAGE XML") -> list[list[str]]:
    """The lines of every Page in a PAGE XML file, one list per Page, in reading order."""
    return page_xml_pages(parse_xml(data, source), source)


def page_xml_pages(root: ET.Element, source: str) -> list[list[str]]:
    """The lines of every Page under an already parsed `PcGts` root."""
    return pages_of(root, source, root_name="PcGts", label="PAGE XML", page_lines=_page_lines)


def _page_lines(page: ET.Element, ns: str) -> list[str]:
    """Each line container's lines in reading order; lines outside any container come last."""
    lines: list[ET.Element] = []
    for container in _containers_in_reading_order(page, ns):
        lines += _by_custom_index([child for child in container if child.tag == f"{ns}TextLine"])
    emitted = {id(line) for line in lines}
    lines += [line for line in page.iter(f"{ns}TextLine") if id(line) not in emitted]
    return [_line_text(line, ns) for line in lines]


def _containers_in_reading_order(page: ET.Element, ns: str) -> list[ET.Element]:
    """Text regions (and Transkribus table cells) as ReadingOrder lists them, then the rest.

    A listed element brings the containers nested in it along (a TableRegion its cells).
    Without a ReadingOrder, Transkribus's `readingOrder {index:N;}` attributes order the regions.
    """
    reading_order = page.find(f"{ns}ReadingOrder")
    if reading_order is not None:
        by_id = {element.get("id"): element for element in page.iter() if element.get("id")}
        listed = [by_id[ref] for ref in _ordered_refs(reading_order) if ref in by_id]
    else:
        listed = _by_custom_index([child for child in page if child.tag in _regions(ns)])
    ordered: list[ET.Element] = []
    seen: set[int] = set()
    for element in [*listed, page]:
        for container in _nested_containers(element, ns):
            if id(container) not in seen:
                seen.add(id(container))
                ordered.append(container)
    return ordered


def _regions(ns: str) -> set[str]:
    return {f"{ns}TextRegion", f"{ns}TableRegion"}


def _nested_containers(element: ET.Element, ns: str) -> list[ET.Element]:
    """Elements under `element` (itself included) that hold TextLines, table cells by row/col."""
    kinds = {f"{ns}TextRegion", f"{ns}TableCell"}
    found = [child for child in element.iter() if child.tag in kinds]
    if element.tag == f"{ns}TableRegion" and all(
        cell.tag == f"{ns}TableCell" and cell.get("row") and cell.get("col") for cell in found
    ):
        found.sort(key=lambda cell: (_int(cell.get("row")), _int(cell.get("col"))))
    return found


def _ordered_refs(group: ET.Element) -> Iterable[str]:
    """Region ids of a (nested) ReadingOrder group: ordered groups by @index, others as written."""
    children = [child for child in group if split_tag(child.tag)[1] != "Labels"]
    if split_tag(group.tag)[1].startswith("OrderedGroup"):
        children.sort(key=lambda child: _int(child.get("index")))
    for child in children:
        local = split_tag(child.tag)[1]
        if local.startswith("RegionRef"):
            ref = child.get("regionRef")
            if ref:
                yield ref
        elif local.endswith("Group") or local.endswith("GroupIndexed"):
            if child.get("regionRef"):
                yield child.get("regionRef", "")
            yield from _ordered_refs(child)


def _by_custom_index(elements: list[ET.Element]) -> list[ET.Element]:
    """Transkribus writes `custom="readingOrder {index:N;}"`; use it when every element has it."""
    keys: list[int] = []
    for element in elements:
        match = _CUSTOM_INDEX.search(element.get("custom", ""))
        if match is None:
            return elements
        keys.append(int(match.group(1)))
    order = sorted(range(len(elements)), key=keys.__getitem__)
    return [elements[i] for i in order]


def _line_text(line: ET.Element, ns: str) -> str:
    """The line's own TextEquiv; without one, its Words (or their Glyphs) joined."""
    text = _text_equiv(line, ns)
    if text:
        return text
    words = [child for child in line if child.tag == f"{ns}Word"]
    if not words:
        return ""
    return " ".join(_word_text(word, ns) for word in _by_custom_index(words)).strip()


def _word_text(word: ET.Element, ns: str) -> str:
    text = _text_equiv(word, ns)
    if text:
        return text
    glyphs = [child for child in word if child.tag == f"{ns}Glyph"]
    return "".join(_text_equiv(glyph, ns) for glyph in _by_custom_index(glyphs))


def _text_equiv(element: ET.Element, ns: str) -> str:
    """The main TextEquiv's Unicode: the lowest @index (PAGE's rule), else the first."""
    equivs = [child for child in element if child.tag == f"{ns}TextEquiv"]
    if not equivs:
        return ""
    main = min(equivs, key=lambda equiv: _int(equiv.get("index"), default=1 << 30))
    unicode = main.find(f"{ns}Unicode")
    text = unicode.text if unicode is not None and unicode.text is not None else ""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
