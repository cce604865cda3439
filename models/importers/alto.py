"""ALTO (v1–v4): each Page's TextLines, Strings joined by spaces, printed hyphens kept."""

import xml.etree.ElementTree as ET

from models.importers.safe_xml import pages_of, parse_xml, split_tag

ALTO_NAMESPACE_PREFIX = "http://www.loc.gov/standards/alto/"
# Schema order puts the margins before PrintSpace; on the printed page the footer comes last.
_PAGE_PARTS = ("TopMargin", "LeftMargin", "PrintSpace", "RightMargin", "BottomMargin")


def read_alto(data: bytes, source: str = "ALTO") -> list[list[str]]:
    """The lines of every Page in an ALTO file, one list per Page, in document order."""
    return alto_pages(parse_xml(data, source), source)


def alto_pages(root: ET.Element, source: str) -> list[list[str]]:
    """The lines of every Page under an already parsed `alto` root."""
    return pages_of(root, source, root_name="alto", label="ALTO", page_lines=_page_lines)


def _page_lines(page: ET.Element, ns: str) -> list[str]:
    parts = {split_tag(child.tag)[1]: child for child in page}
    lines: list[str] = []
    for name in _PAGE_PARTS:
        if name in parts:
            lines.extend(_line_text(line, ns) for line in parts[name].iter(f"{ns}TextLine"))
    return lines


def _line_text(line: ET.Element, ns: str) -> str:
    """A line's Strings; a HYP keeps its printed hyphen at the end of the word before it.

    Where a line has SP elements, they alone separate words (adjacent Strings without an SP are
    one word split by style); producers that write no SP at all get one space between Strings.
    """
    parts = [(split_tag(child.tag)[1], child) for child in line]
    spaced = any(local == "SP" for local, _ in parts)
    text = ""
    for local, child in parts:
        if local == "String":
            content = child.get("CONTENT", "")
            text = f"{text} {content}" if text and not spaced else text + content
        elif local == "SP" and text and not text.endswith(" "):
            text += " "
        elif local == "HYP":
            text = text.rstrip() + child.get("CONTENT", "-")
    return text.strip()
