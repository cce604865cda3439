"""One page as PAGE XML 2019 (PRImA; what Transkribus and eScriptorium import and export).

The page's lines in reading order, grouped into text regions by kind (a running header is a
`header` region, the entries a `paragraph` region), each line with its box as `Coords`, its text
as `TextEquiv/Unicode` (the text exactly, spaces included) and the engine's confidence as
`conf` (0–1). The regions are listed in a `ReadingOrder`. A line the engine gave no box (an
mLLM's) carries the page's box: PAGE requires coordinates, and the page is all that is known.
Written with the standard library; valid against the official `pagecontent.xsd`
(tests/data/xsd).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from itertools import groupby

from app.pipeline.exports.records import Box, union_box
from app.pipeline.exports.text import ExportLine, PageContent

PAGE_NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
SCHEMA_LOCATION = f"{PAGE_NAMESPACE} {PAGE_NAMESPACE}/pagecontent.xsd"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
CREATOR = "histocr"
_REGION_TYPES = {"header": "header"}  # anything else is a paragraph of entries
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def root_element(name: str, namespace: str, schema_location: str, **attributes: str) -> ET.Element:
    """A document's root that declares its namespace and schema itself: all elements are in
    that default namespace, which ElementTree would otherwise write with `ns0:` prefixes."""
    declarations = {
        "xmlns": namespace,
        "xmlns:xsi": XSI_NAMESPACE,
        "xsi:schemaLocation": schema_location,
    }
    return ET.Element(name, {**declarations, **attributes})


def _child(parent: ET.Element, name: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, name, attributes)


def points(box: Box) -> str:
    """A box as PAGE's polygon: corners clockwise from the top left."""
    x0, y0, x1, y1 = box
    return f"{x0},{y0} {x1},{y0} {x1},{y1} {x0},{y1}"


def regions(lines: Sequence[ExportLine]) -> list[tuple[str, list[ExportLine]]]:
    """Runs of consecutive lines of one kind, in reading order: the page's text regions."""
    return [(kind, list(group)) for kind, group in groupby(lines, key=lambda line: line.kind)]


def xml_text(text: str) -> str:
    """The text with the characters XML 1.0 cannot hold (control characters) as U+FFFD."""
    return _NOT_XML.sub("\ufffd", text)


def page_xml(content: PageContent, created: datetime, changed: datetime) -> bytes:
    """The PAGE XML file of one page (UTF-8, with an XML declaration)."""
    root = root_element("PcGts", PAGE_NAMESPACE, SCHEMA_LOCATION)
    metadata = _child(root, "Metadata")
    _child(metadata, "Creator").text = CREATOR
    _child(metadata, "Created").text = created.isoformat()
    _child(metadata, "LastChange").text = changed.isoformat()
    _child(metadata, "Comments").text = xml_text(content.comment)
    page = _child(
        root,
        "Page",
        imageFilename=content.image_filename,
        imageWidth=str(content.width),
        imageHeight=str(content.height),
    )
    page_box = (0, 0, content.width, content.height)
    grouped = regions(content.lines)
    order = _child(_child(page, "ReadingOrder"), "OrderedGroup", id="ro1", caption="Regions")
    for index in range(len(grouped)):
        _child(order, "RegionRefIndexed", index=str(index), regionRef=f"r{index + 1}")
    for index, (kind, lines) in enumerate(grouped):
        region_id = f"r{index + 1}"
        region = _child(
            page,
            "TextRegion",
            id=region_id,
            type=_REGION_TYPES.get(kind, "paragraph"),
            custom=f"readingOrder {{index:{index};}}",
        )
        boxes = [line.bbox for line in lines if line.bbox is not None]
        _child(region, "Coords", points=points(union_box(boxes) or page_box))
        for number, line in enumerate(lines):
            _text_line(region, f"{region_id}l{number + 1}", number, line, page_box)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _text_line(
    region: ET.Element, line_id: str, index: int, line: ExportLine, page_box: Box
) -> None:
    element = _child(region, "TextLine", id=line_id, custom=f"readingOrder {{index:{index};}}")
    _child(element, "Coords", points=points(line.bbox or page_box))
    equiv = _child(element, "TextEquiv")
    if line.confidence is not None:
        equiv.set("conf", f"{min(max(line.confidence / 100, 0.0), 1.0):.4f}")
    _child(equiv, "Unicode").text = xml_text(line.text)
