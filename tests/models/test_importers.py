"""Importers: PAGE XML, ALTO and plain text become per-page transcriptions of a scan."""

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from models.importers import (
    ImportFormatError,
    import_pages,
    page_files,
    read_alto,
    read_page_xml,
    read_page_xml_pages,
    read_transcription,
    split_document_text,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "import"
BENCHMARK = Path(
    os.environ.get(
        "HISTOCR_BENCHMARK_DIR", Path(__file__).resolve().parents[3] / "shared" / "benchmark"
    )
)
TRANSKRIBUS = ("reference_outputs", "transkribus")
TYPES = [1, 2, 3, 4, 5]


def benchmark_path(*parts: str) -> Path:
    path = BENCHMARK.joinpath(*parts)
    if not path.is_file():
        pytest.fail(f"benchmark file missing: {path} (set HISTOCR_BENCHMARK_DIR)")
    return path


def benchmark_text(*parts: str) -> str:
    return benchmark_path(*parts).read_text(encoding="utf-8")


def transkribus_pages(number: int) -> list[str]:
    return [
        benchmark_text(*TRANSKRIBUS, f"type-{number}", f"page-{page}.txt") for page in (1, 2, 3)
    ]


def without_blank_lines(text: str) -> str:
    return re.sub(r"\n\s*\n", "\n", text)


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- PAGE XML -----------------------------------------------------------------------------


def test_page_xml_follows_the_reading_order_not_the_document_order() -> None:
    lines = read_page_xml(fixture("page-2019-reading-order.xml"))
    assert lines == [
        # ReadingOrder index 0: the header region, written fourth in the file
        "Alphabetisches Verzeichniß der Bewohner.",
        "37",
        # index 1: a nested ordered group, column 1 (its index 0) before column 2;
        # column 1's lines come in their `readingOrder {index:N;}` order, not as written
        "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.",
        # two TextEquivs: the one with the lowest @index is the main text
        "Förster, Johann, Schreiner, Großkölnstraße A 393.",
        # a line with Words only (one of them Glyphs only): joined with spaces
        "Frantzen, Aloisa, Lehrerin, Hartmannstraße B 1266.",
        "Zimmermann & Sohn, Weber, Borngasse B 527.",
        # a region the ReadingOrder leaves out is kept, after the listed ones
        "Digitized by Google",
    ]


def test_transkribus_2013_page_xml_orders_regions_lines_and_table_cells() -> None:
    lines = read_page_xml(fixture("page-2013-transkribus.xml"))
    assert lines == [
        "Friedberg — Fries 95",
        "Fries Georg Friedrich, Handelsmann",  # table cell row 0, col 0 (written second)
        "Zeil 24.",
        "Fries Heinrich Remigius (s. J. S. Fries Sohn) Schulstrasse 13.",
        "Fries Joh. Carl, Handelsmann, Metzgergasse 3.",
    ]


def test_page_xml_with_two_page_elements_gives_two_pages() -> None:
    data = fixture("page-2019-two-pages.xml")
    assert read_page_xml_pages(data) == [
        ["88 Kirchen und Schulen.", "Herr M. Joh Gotthelf Lange, in der Catharinenstraße."],
        ["Kirchen und Schulen. 89", "Priester."],
    ]
    with pytest.raises(ImportFormatError, match="2 Page elements, expected one"):
        read_page_xml(data, "two.xml")


def test_page_xml_without_text_lines_is_refused() -> None:
    data = b"""<?xml version="1.0" encoding="UTF-8"?>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15">
  <Metadata><Creator>x</Creator><Created>2025-01-01T00:00:00</Created>
  <LastChange>2025-01-01T00:00:00</LastChange></Metadata>
  <Page imageFilename="blank.jpg" imageWidth="10" imageHeight="10"/>
</PcGts>"""
    with pytest.raises(ImportFormatError, match=r"blank\.xml: PAGE XML without text lines"):
        read_page_xml(data, "blank.xml")


# --- ALTO ---------------------------------------------------------------------------------


ALTO_V4_LINES = [
    "Friedberg — Fries 95",  # TopMargin
    "Fries Christoph Jacob, Bleich-",  # HYP: the printed hyphen stays at the line end
    "gärtner, kl. Eschenheimerstrasse 7.",
    "Fries Georg Friedrich, Handelsmann, Zeil 24.",  # two Strings without SP: one word
    "Wittib, in Specerey⸗",  # a Fraktur double hyphen
    "Digitized by Google",  # BottomMargin: written before PrintSpace, printed after it
]


@pytest.mark.parametrize("version", ["ns-v2#", "ns-v3#", "ns-v4#"])
def test_alto_lines_with_spaces_and_hyphens_in_every_namespace(version: str) -> None:
    data = fixture("alto-v4-hyphens.xml").replace(b"ns-v4#", version.encode())
    assert read_alto(data) == [ALTO_V4_LINES]


def test_alto_with_two_pages_and_no_sp_elements() -> None:
    assert read_alto(fixture("alto-v2-two-pages.xml")) == [
        ["3", "Hr. Joh. Gottfr. Richter, Schneider¬", "meister."],
        ["4", "Hr. Advokat, Heinr. Gotthelf Klette."],
    ]


# --- one file: format by content ----------------------------------------------------------


def test_format_is_detected_by_content_not_by_name(tmp_path: Path) -> None:
    disguised = tmp_path / "page-1.txt"
    disguised.write_bytes(fixture("page-2013-transkribus.xml"))
    assert import_pages(disguised, 1) == [read_transcription(disguised.read_bytes(), "x").pages[0]]
    assert read_transcription(disguised.read_bytes(), "x").format == "page-xml"
    assert read_transcription(fixture("alto-v4-hyphens.xml"), "scan.txt").format == "alto"
    not_xml = tmp_path / "page-1.xml"
    not_xml.write_text("Förster, Christian, Fabrikmeister\n", encoding="utf-8")
    with pytest.raises(ImportFormatError, match=r"page-1\.xml: named \.xml but its content"):
        import_pages(not_xml, 1)


def test_multi_page_xml_files_map_one_page_element_per_page(tmp_path: Path) -> None:
    page_xml = tmp_path / "export.xml"
    page_xml.write_bytes(fixture("page-2019-two-pages.xml"))
    assert import_pages(page_xml, 2) == [
        "88 Kirchen und Schulen.\nHerr M. Joh Gotthelf Lange, in der Catharinenstraße.",
        "Kirchen und Schulen. 89\nPriester.",
    ]
    alto = tmp_path / "export.alto"
    alto.write_bytes(fixture("alto-v2-two-pages.xml"))
    assert import_pages(alto, 2)[1] == "4\nHr. Advokat, Heinr. Gotthelf Klette."
    with pytest.raises(ImportFormatError, match="holds 2 Page elements but the scan has 3 pages"):
        import_pages(page_xml, 3)


def test_plain_text_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "scan.txt"
    path.write_bytes("\ufeffAlphabetisches Verzeichniß\r\nFörster, Christian\r\n\r\n".encode())
    assert import_pages(path, 1) == ["Alphabetisches Verzeichniß\nFörster, Christian"]
    path.write_bytes("Straße\r\nGasse".encode("utf-16"))
    assert import_pages(path, 1) == ["Straße\nGasse"]


def test_plain_text_is_split_at_form_feeds(tmp_path: Path) -> None:
    path = tmp_path / "scan.txt"
    path.write_text("37\nFörster\n\f38\nFrantzen\n\f39\nFriedrich\n\f", encoding="utf-8")
    assert import_pages(path, 3) == ["37\nFörster", "38\nFrantzen", "39\nFriedrich"]
    with pytest.raises(ImportFormatError, match="holds 3 form-feed-separated pages but the scan"):
        import_pages(path, 2)


# --- a folder of page files ---------------------------------------------------------------


@pytest.mark.parametrize("number", TYPES)
def test_folder_of_transkribus_page_files(tmp_path: Path, number: int) -> None:
    for page in (1, 2, 3):
        name = f"page-{page}.txt"
        shutil.copy(benchmark_path(*TRANSKRIBUS, f"type-{number}", name), tmp_path / name)
    assert import_pages(tmp_path, 3) == transkribus_pages(number)


def test_folder_mixes_formats_in_natural_order_and_skips_what_is_not_a_page(
    tmp_path: Path,
) -> None:
    (tmp_path / "page-1.xml").write_bytes(fixture("page-2013-transkribus.xml"))
    (tmp_path / "p2.alto.xml").write_bytes(
        fixture("alto-v2-two-pages.xml").split(b'<Page ID="p2"')[0] + b"</Layout></alto>"
    )
    for page in range(3, 12):
        (tmp_path / f"page-{page}.txt").write_text(f"Seite {page}\n", encoding="utf-8")
    (tmp_path / ".page-12.txt").write_text("hidden", encoding="utf-8")
    (tmp_path / "mets.xml").write_text("<mets/>", encoding="utf-8")
    (tmp_path / "page-1.jpg").write_bytes(b"\xff\xd8\xff")
    pages = import_pages(tmp_path, 11)
    assert pages[0].startswith("Friedberg — Fries 95\n")
    assert pages[1] == "3\nHr. Joh. Gottfr. Richter, Schneider¬\nmeister."
    assert pages[2:] == [f"Seite {page}" for page in range(3, 12)]  # page-10 after page-9
    assert [p.name for p in page_files(tmp_path)][-3:] == [
        "page-9.txt",
        "page-10.txt",
        "page-11.txt",
    ]


def test_transkribus_export_folder_uses_its_page_subfolder(tmp_path: Path) -> None:
    (tmp_path / "mets.xml").write_text("<mets/>", encoding="utf-8")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "0001_type-4_1.xml").write_bytes(fixture("page-2013-transkribus.xml"))
    (tmp_path / "page" / "0002_type-4_2.xml").write_bytes(fixture("page-2019-reading-order.xml"))
    pages = import_pages(tmp_path, 2)
    assert pages[0].startswith("Friedberg — Fries 95")
    assert pages[1].startswith("Alphabetisches Verzeichniß der Bewohner.\n37")


def test_folder_page_count_mismatch_names_missing_and_extra_pages(tmp_path: Path) -> None:
    for page in (1, 2, 4, 5):
        (tmp_path / f"page-{page}.txt").write_text(f"Seite {page}", encoding="utf-8")
    with pytest.raises(ImportFormatError) as raised:
        import_pages(tmp_path, 4)
    message = str(raised.value)
    assert "4 page files for a scan of 4 pages" in message
    assert "no file for page 3" in message
    assert "page-5.txt beyond the scan's last page" in message
    with pytest.raises(ImportFormatError, match="no file for page 3, 6"):
        import_pages(tmp_path, 6)


def test_folder_with_two_files_for_one_page_is_refused(tmp_path: Path) -> None:
    (tmp_path / "page-1.txt").write_text("eins", encoding="utf-8")
    (tmp_path / "page-1.xml").write_bytes(fixture("page-2013-transkribus.xml"))
    (tmp_path / "page-2.txt").write_text("zwei", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="more than one file for the same page"):
        import_pages(tmp_path, 2)


def test_folder_without_page_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "scan.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ImportFormatError, match="no transcription files in this folder"):
        import_pages(tmp_path, 1)


def test_page_file_holding_several_pages_is_refused(tmp_path: Path) -> None:
    (tmp_path / "page-1.xml").write_bytes(fixture("page-2019-two-pages.xml"))
    with pytest.raises(ImportFormatError, match="holds 2 pages, but a page file must hold one"):
        import_pages(tmp_path, 1)


# --- an explicit mapping ------------------------------------------------------------------


def test_explicit_mapping(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_bytes(fixture("page-2013-transkribus.xml"))
    (tmp_path / "b.txt").write_text("Seite zwei\n", encoding="utf-8")
    pages = import_pages(tmp_path, 2, mapping={1: "b.txt", 2: "a.xml"})
    assert pages[0] == "Seite zwei"
    assert pages[1].startswith("Friedberg — Fries 95")
    # relative to the folder of a file given as the path, too
    assert import_pages(tmp_path / "b.txt", 1, mapping={1: "b.txt"}) == ["Seite zwei"]


def test_mapping_errors(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Seite", encoding="utf-8")
    with pytest.raises(ImportFormatError, match="no file for page 2; page 3 is not in the scan"):
        import_pages(tmp_path, 2, mapping={1: "a.txt", 3: "a.txt"})
    with pytest.raises(ImportFormatError, match=r"page 1: \.\./outside\.txt lies outside"):
        import_pages(tmp_path, 1, mapping={1: "../outside.txt"})
    with pytest.raises(ImportFormatError, match="page 1: missing.txt is not a file"):
        import_pages(tmp_path, 1, mapping={1: "missing.txt"})


# --- document-level text: page-break detection --------------------------------------------


@pytest.mark.parametrize("number", TYPES)
def test_transkribus_document_text_is_split_into_its_pages(tmp_path: Path, number: int) -> None:
    path = tmp_path / f"type-{number}.txt"
    shutil.copy(benchmark_path(*TRANSKRIBUS, f"type-{number}.txt"), path)
    assert import_pages(path, 3) == transkribus_pages(number)


@pytest.mark.parametrize("number", [1, 3, 4, 5])
def test_page_breaks_found_from_headers_and_footers_alone(number: int) -> None:
    """Without the blank lines between pages: page numbers (1, 3, 4) or a footer line (5)."""
    text = without_blank_lines(benchmark_text(*TRANSKRIBUS, f"type-{number}.txt"))
    expected = [without_blank_lines(page) for page in transkribus_pages(number)]
    assert split_document_text(text, 3) == expected


def test_no_page_breaks_without_a_signal_raises_instead_of_guessing() -> None:
    """Transkribus lost type 2's page numbers 3 and 5 and there is no running title."""
    text = without_blank_lines(benchmark_text(*TRANSKRIBUS, "type-2.txt"))
    with pytest.raises(ImportFormatError) as raised:
        split_document_text(text, 3, "type-2.txt")
    message = str(raised.value)
    assert message.startswith("type-2.txt: 3 pages expected but the text has no form feeds")
    assert "one file per page" in message and "form feeds" in message


def test_disagreeing_signals_raise() -> None:
    text = benchmark_text(*TRANSKRIBUS, "type-1.txt")
    lines = without_blank_lines(text).split("\n")
    lines.insert(30, "")  # a blank line in mid-page, none between the pages
    lines.insert(90, "")
    with pytest.raises(ImportFormatError, match="page breaks are uncertain.*page numbers put"):
        split_document_text("\n".join(lines), 3)


@pytest.mark.parametrize(
    ("number", "first_lines"),
    [
        (1, ["Alphabetisches Verzeichnis der Bewohner. 37", "38 Alphabetisches", "Alphabetisches"]),
        (2, ["3", "4", "5"]),
        (3, ["88 Kirchen und Schulen.", "Kirchen und Schule 89", "90 Buchhändler"]),
        (4, ["Friedberg — Fries 95", "96 Fries — Fritz", "Fritz — Fucke 97"]),
    ],
)
def test_ground_truth_pages_start_at_their_running_headers(
    number: int, first_lines: list[str]
) -> None:
    text = without_blank_lines(benchmark_text("ground_truth", "txt", f"type-{number}.txt"))
    pages = split_document_text(text, 3)
    assert [
        page.split("\n")[0][: len(start)] for page, start in zip(pages, first_lines, strict=True)
    ] == (first_lines)


def test_ground_truth_type_5_has_no_page_headers_and_raises() -> None:
    text = benchmark_text("ground_truth", "txt", "type-5.txt")
    with pytest.raises(ImportFormatError, match="cannot be found with confidence"):
        split_document_text(text, 3)


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_mllm_document_text_is_split_like_its_page_files(number: int) -> None:
    """A different producer (Gemini 2.0 Flash), running titles above the page number included."""
    system = "gemini-2.0-flash"
    text = benchmark_text("reference_outputs", system, f"type-{number}.txt")
    expected = [
        benchmark_text("reference_outputs", system, f"type-{number}", f"page-{p}.txt").strip("\n")
        for p in (1, 2, 3)
    ]
    assert split_document_text(without_blank_lines(text), 3) == [
        without_blank_lines(page) for page in expected
    ]


def test_too_little_text_for_the_pages_raises() -> None:
    with pytest.raises(ImportFormatError, match="3 lines of text cannot be 2 pages"):
        split_document_text("eins\nzwei\ndrei", 2)


def test_single_page_text_is_taken_whole(tmp_path: Path) -> None:
    path = tmp_path / "scan.txt"
    path.write_text("\n\nFörster\n\nFrantzen\n\n", encoding="utf-8")
    assert import_pages(path, 1) == ["Förster\n\nFrantzen"]


# --- bad input: clear errors --------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"  \r\n\n", b"\xef\xbb\xbf", b"\xef\xbb\xbf\n \n"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "page-1.txt"
    path.write_bytes(content)
    with pytest.raises(ImportFormatError, match=r"page-1\.txt: the file is empty"):
        import_pages(path, 1)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Großkölnstraße".encode("latin-1"))
    with pytest.raises(ImportFormatError, match=r"latin1\.txt: not UTF-8 text .* at byte 3"):
        import_pages(path, 1)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<PcGts xmlns="http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"><Page>
<TextRegion id="r"><TextLine id="l"><TextEquiv><Unicode>&lol9;</Unicode></TextEquiv>
</TextLine></TextRegion></Page></PcGts>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE alto [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#"><Layout><Page><PrintSpace>
<TextBlock><TextLine><String CONTENT="&secret;"/></TextLine></TextBlock>
</PrintSpace></Page></Layout></alto>"""


@pytest.mark.parametrize("data", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "external"])
def test_doctype_and_entities_are_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "page-1.xml"
    path.write_bytes(data)
    started = time.perf_counter()
    with pytest.raises(ImportFormatError, match=r"page-1\.xml: the XML declares a DOCTYPE"):
        import_pages(path, 1)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"<html><body>37</body></html>", "unknown XML root element <html>"),
        (
            b'<mets:mets xmlns:mets="http://www.loc.gov/METS/"/>',
            r"<\{http://www.loc.gov/METS/\}mets> \(METS: give the folder",
        ),
        (b'<?xml version="1.0"?>\n<PcGts><Page>', "not well-formed XML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "this is a PDF, not a transcription"),
        (b"PK\x03\x04zip", "unpack a Transkribus export and give its folder"),
    ],
)
def test_unreadable_inputs(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "page-1.xml"
    path.write_bytes(data)
    with pytest.raises(ImportFormatError, match=r"page-1\.xml: .*" + expected):
        import_pages(path, 1)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="no such file or folder"):
        import_pages(tmp_path / "nowhere", 1)


def test_import_format_error_is_a_value_error() -> None:
    assert issubclass(ImportFormatError, ValueError)
