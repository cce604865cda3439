"""Text produced elsewhere (Transkribus/PAGE XML, ALTO, plain text) as per-page transcriptions."""

from models.importers.alto import read_alto
from models.importers.errors import ImportFormatError
from models.importers.files import TranscriptionFile, decode_text, read_transcription
from models.importers.page_breaks import split_document_text
from models.importers.page_xml import read_page_xml, read_page_xml_pages
from models.importers.pages import import_pages, page_files

__all__ = [
    "ImportFormatError",
    "TranscriptionFile",
    "decode_text",
    "import_pages",
    "page_files",
    "read_alto",
    "read_page_xml",
    "read_page_xml_pages",
    "read_transcription",
    "split_document_text",
]
