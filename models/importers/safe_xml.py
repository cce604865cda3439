"""Parse untrusted XML with the standard library, refusing DTDs (and with them entity bombs)."""

import xml.etree.ElementTree as ET
from collections.abc import Callable
from xml.parsers import expat

from models.importers.errors import ImportFormatError


class _DoctypeFound(Exception):
    pass


class _RootReached(Exception):
    pass


def _refuse_doctype(*_args: object) -> None:
    raise _DoctypeFound


def _stop(*_args: object) -> None:
    raise _RootReached


def _refuse_dtd(data: bytes, source: str) -> None:
    """Read the prolog only: any DOCTYPE or ENTITY declaration is refused before it can expand.

    Entities can only be declared inside a DOCTYPE, so a document without one cannot hold an
    entity bomb or reference an external entity; expat stops this pass at the root element.
    """
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.StartElementHandler = _stop
    try:
        parser.Parse(data, True)
    except _DoctypeFound:
        raise ImportFormatError(
            f"{source}: the XML declares a DOCTYPE; DTDs and entity declarations are refused "
            "(PAGE XML and ALTO exports do not need them)"
        ) from None
    except _RootReached:
        return
    except expat.ExpatError as exc:
        raise ImportFormatError(f"{source}: not well-formed XML ({exc})") from None


def parse_xml(data: bytes, source: str) -> ET.Element:
    """The document's root element; a DTD or malformed XML is an `ImportFormatError`."""
    _refuse_dtd(data, source)
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise ImportFormatError(f"{source}: not well-formed XML ({exc})") from None


def split_tag(tag: str) -> tuple[str, str]:
    """`{namespace}local` as (namespace, local); no namespace gives ''."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def pages_of(
    root: ET.Element,
    source: str,
    *,
    root_name: str,
    label: str,
    page_lines: Callable[[ET.Element, str], list[str]],
) -> list[list[str]]:
    """The lines of every <Page> under a parsed root, checked to be `root_name` and to hold text."""
    namespace, local = split_tag(root.tag)
    if local != root_name:
        raise ImportFormatError(f"{source}: root element is <{local}>, not {label}'s <{root_name}>")
    ns = f"{{{namespace}}}" if namespace else ""
    pages = [page_lines(page, ns) for page in root.iter(f"{ns}Page")]
    if not pages:
        raise ImportFormatError(f"{source}: {label} without a <Page> element")
    if not any(pages):
        raise ImportFormatError(f"{source}: {label} without text lines (no TextLine elements)")
    return pages
