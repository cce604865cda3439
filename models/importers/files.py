"""One transcription file, whatever its format: detected from its content, read into pages."""

import codecs
import re
from dataclasses import dataclass

from models.importers.alto import alto_pages
from models.importers.errors import ImportFormatError
from models.importers.page_breaks import trim_blank_lines
from models.importers.page_xml import page_xml_pages
from models.importers.safe_xml import parse_xml, split_tag

PAGE_BREAK = "\f"
_XML_START = re.compile(r"<(\?xml|!|[A-Za-z_][\w.:-]*[\s/>])")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_NOT_TEXT = (  # files people pick by mistake, recognised by their first bytes
    (b"%PDF", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive (unpack a Transkribus export and give its folder)"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
)


@dataclass(frozen=True)
class TranscriptionFile:
    """What one file holds: its format and its pages' texts (one line per printed line)."""

    format: str  # "page-xml", "alto" or "text"
    pages: list[str]
    explicit_pages: bool  # False for plain text without form feeds: page breaks are unknown


def read_transcription(data: bytes, source: str) -> TranscriptionFile:
    """Read PAGE XML, ALTO or plain text, telling them apart by content, not by file name."""
    if not data.strip(b" \t\r\n\f\x00") or data in {bom for bom, _ in _BOMS}:
        raise ImportFormatError(f"{source}: the file is empty")
    for magic, what in _NOT_TEXT:
        if data.startswith(magic):
            raise ImportFormatError(f"{source}: this is {what}, not a transcription")
    if _looks_like_xml(data):
        return _read_xml(data, source)
    if source.lower().endswith(".xml"):
        raise ImportFormatError(f"{source}: named .xml but its content is not XML")
    text = decode_text(data, source)
    if not text.strip():
        raise ImportFormatError(f"{source}: the file is empty")
    return _read_text(text)


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 (with or without BOM; UTF-16 with a BOM is accepted too), with \\n line ends."""
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        text = data.decode("utf-8-sig" if encoding == "utf-8" else "utf-16")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(
            f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
            "save the transcription as UTF-8"
        ) from None
    if "\x00" in text:
        raise ImportFormatError(f"{source}: holds NUL characters, so it is not UTF-8 text")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _looks_like_xml(data: bytes) -> bool:
    head = data[:1024]
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            start = head[len(bom) :].decode(encoding, errors="ignore")
            break
    else:
        start = head.decode("utf-8", errors="ignore")
    return _XML_START.match(start.lstrip()) is not None


def _read_xml(data: bytes, source: str) -> TranscriptionFile:
    root = parse_xml(data, source)
    namespace, local = split_tag(root.tag)
    if local == "PcGts":
        pages, kind = page_xml_pages(root, source), "page-xml"
    elif local == "alto":
        pages, kind = alto_pages(root, source), "alto"
    else:
        hint = " (METS: give the folder of PAGE XML files it lists)" if local == "mets" else ""
        shown = f"{{{namespace}}}{local}" if namespace else local
        raise ImportFormatError(
            f"{source}: unknown XML root element <{shown}>{hint}; expected PAGE XML (<PcGts>) "
            "or ALTO (<alto>)"
        )
    return TranscriptionFile(kind, ["\n".join(lines) for lines in pages], explicit_pages=True)


def _read_text(text: str) -> TranscriptionFile:
    if PAGE_BREAK not in text:
        return TranscriptionFile("text", [trim_blank_lines(text)], explicit_pages=False)
    pages = text.split(PAGE_BREAK)
    if not pages[-1].strip():
        pages.pop()  # a trailing form feed ends the last page rather than starting a new one
    return TranscriptionFile("text", [trim_blank_lines(page) for page in pages], True)
