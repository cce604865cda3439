"""`histocr process --formats`: a scan read by the real Tesseract, exported in every format into
--out; the PAGE XML and ALTO files validate and are read back by `--import-from`."""

import csv
import io
import json

from models.importers import import_pages, read_transcription
from tests.app.test_cli import FIELDS, histocr
from tests.app.test_exports import assert_valid
from tests.helpers import PRINTED_LINES, render_page


def test_process_writes_every_format_and_they_read_back(tmp_path):
    scan = render_page(tmp_path / "adressbuch-1822.png", PRINTED_LINES)
    out = tmp_path / "out"
    result = histocr(
        "process",
        scan,
        "--formats",
        "txt,csv,jsonl,page,alto",
        "--csv-dialect",
        "excel-de",
        "--out",
        out,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert sorted(p.name for p in out.iterdir()) == [
        "adressbuch-1822.txt",
        "alto",
        "metrics.json",
        "page",
        "records.csv",
        "records.jsonl",
    ]
    text = (out / "adressbuch-1822.txt").read_text(encoding="utf-8")
    assert "Foerster, Christian, Fabrikmeister" in text

    page_xml = (out / "page" / "adressbuch-1822" / "adressbuch-1822-0001.xml").read_bytes()
    root = assert_valid(page_xml, "pagecontent-2019-07-15.xsd")
    coords = [c.get("points") for c in root.iterfind(".//{*}TextLine/{*}Coords")]
    width, height = root.find("{*}Page").get("imageWidth"), root.find("{*}Page").get("imageHeight")
    # Tesseract's lines keep their own boxes, inside the page (not the page's box).
    assert coords and f"0,0 {width},0 {width},{height} 0,{height}" not in coords
    alto = (out / "alto" / "adressbuch-1822" / "adressbuch-1822-0001.xml").read_bytes()
    assert_valid(alto, "alto-4-2.xsd")

    (page,) = read_transcription(text.encode(), "t.txt").pages
    assert read_transcription(page_xml, "p.xml").pages == [page]
    assert import_pages(out / "page" / "adressbuch-1822", 1) == [page]
    assert import_pages(out / "alto" / "adressbuch-1822", 1) == [
        "\n".join(" ".join(line.split()) for line in page.split("\n"))
    ]

    raw = (out / "records.csv").read_bytes()
    assert raw.startswith("\ufeff".encode()) and b"\r\n" in raw
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0]["surname"] == "Foerster" and list(rows[0])[: len(FIELDS)] == FIELDS
    assert rows[0]["x0"] and rows[0]["y1"]  # the box of the line the record came from
    jsonl = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(jsonl) == len(rows) == summary["records_written"]
    assert json.loads(jsonl[0])["bbox"] == [int(rows[0][k]) for k in ("x0", "y0", "x1", "y1")]


def test_an_unknown_format_is_a_usage_error(tmp_path):
    scan = render_page(tmp_path / "scan.png", PRINTED_LINES[:1])
    result = histocr("process", scan, "--formats", "txt,docx", "--out", tmp_path / "out")
    assert result.returncode == 2 and "docx" in result.stderr and "alto" in result.stderr
    assert "Traceback" not in result.stderr
