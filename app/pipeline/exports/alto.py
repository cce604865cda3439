"""One page as ALTO v4 (Library of Congress; what digital libraries and eScriptorium read).

The page's lines in reading order (ALTO's order is document order), grouped into text blocks by
kind like the PAGE XML export, each line with its box as HPOS/VPOS/WIDTH/HEIGHT in pixels and
its words as `String`s separated by `SP`. ALTO keeps words, not spaces: a line reads back with
single spaces between its words and none at its ends. A line the engine gave no box has no
position attributes (ALTO allows that). Valid against the official `alto-4-2.xsd`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime

from app.pipeline.exports.pagexml import regions, root_element, xml_text
from app.pipeline.exports.records import Box, union_box
from app.pipeline.exports.text import ExportLine, PageContent

ALTO_NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
SCHEMA_VERSION = "4.2"
SCHEMA_LOCATION = f"{ALTO_NAMESPACE} http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
SOFTWARE = "histocr"


def _child(parent: ET.Element, name: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, name, attributes)


def _position(element: ET.Element, box: Box | None) -> None:
    if box is None:
        return
    x0, y0, x1, y1 = box
    element.set("HPOS", str(x0))
    element.set("VPOS", str(y0))
    element.set("WIDTH", str(max(x1 - x0, 0)))
    element.set("HEIGHT", str(max(y1 - y0, 0)))


def alto_xml(content: PageContent, changed: datetime) -> bytes:
    """The ALTO file of one page (UTF-8, with an XML declaration)."""
    root = root_element("alto", ALTO_NAMESPACE, SCHEMA_LOCATION, SCHEMAVERSION=SCHEMA_VERSION)
    description = _child(root, "Description")
    _child(description, "MeasurementUnit").text = "pixel"
    source = _child(description, "sourceImageInformation")
    _child(source, "fileName").text = content.image_filename
    processing = _child(description, "Processing", ID="processing1")
    _child(processing, "processingDateTime").text = changed.isoformat()
    _child(processing, "processingStepDescription").text = xml_text(content.comment)
    _child(_child(processing, "processingSoftware"), "softwareName").text = SOFTWARE
    page = _child(
        _child(root, "Layout"),
        "Page",
        ID=f"page{content.number}",
        PHYSICAL_IMG_NR=str(content.number),
        WIDTH=str(content.width),
        HEIGHT=str(content.height),
    )
    space = _child(page, "PrintSpace")
    _position(space, (0, 0, content.width, content.height))
    for index, (_kind, lines) in enumerate(regions(content.lines)):
        block_id = f"block{index + 1}"
        block = _child(space, "TextBlock", ID=block_id)
        _position(block, union_box([line.bbox for line in lines if line.bbox is not None]))
        for number, line in enumerate(lines):
            _text_line(block, f"{block_id}line{number + 1}", line)
    ET.indent(root)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _text_line(block: ET.Element, line_id: str, line: ExportLine) -> None:
    element = _child(block, "TextLine", ID=line_id)
    _position(element, line.bbox)
    words = xml_text(line.text).split()
    for index, word in enumerate(words or [""]):
        if index:
            _child(element, "SP")
        _child(element, "String", CONTENT=word)
