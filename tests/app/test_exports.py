"""Exports a researcher takes away (issue 12 §3): records as CSV for German Excel and as JSON
Lines, with provenance; texts with page breaks; PAGE XML and ALTO valid against the official
schemas (tests/data/xsd) and read back by the import engine; a run's zip; `latest` and `engine`.

A run is stored as the workers store one: page texts from the benchmark's ground truth, lines
with boxes and confidences, records on those lines; reviewers' edits through the review service.
"""

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from lxml import etree
from sqlalchemy import insert

from app.config import Settings
from app.db.session import session_scope
from app.db.tables import (
    Document,
    DocumentStatus,
    Line,
    Page,
    Project,
    Record,
    Run,
    RunStatus,
    StageResult,
    StageStatus,
)
from app.metrics.records import read_records_csv
from app.pipeline.run_config import RunConfig, StageConfig
from app.services import review
from models.importers import import_pages, read_transcription
from tests.conftest import benchmark_file

API = "/api/v1"
XSD = Path(__file__).resolve().parents[1] / "data" / "xsd"
FIELDS = ("first and middle names", "surname", "occupation", "address")
PROVENANCE = ["document", "page", "line", "last_line", "x0", "y0", "x1", "y1", "run", "version"]
PROVENANCE += ["verified"]
#: Values a spreadsheet would run as formulas, and the ditto mark that is data.
FORMULAS = {"=": "'=", '=HYPERLINK("x")': '\'=HYPERLINK("x")', "+49 221": "'+49 221"}
FORMULAS |= {"-": "'-", "@home": "'@home", "\tTab": "'\tTab"}


class _LocalXsd(etree.Resolver):
    """The schemas' imports (ALTO's xlink.xsd) from tests/data/xsd: no network."""

    def resolve(self, url, public_id, context):  # type: ignore[no-untyped-def]
        return self.resolve_filename(str(XSD / Path(url).name), context)


def schema(name: str) -> etree.XMLSchema:
    """An official schema shipped with the tests."""
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXsd())
    return etree.XMLSchema(etree.parse(str(XSD / name), parser))


def assert_valid(data: bytes, name: str) -> etree._Element:
    """Parse and validate; the schema's own message on failure."""
    document = etree.fromstring(data)
    checker = schema(name)
    assert checker.validate(document), checker.error_log
    return document


# --- a stored run -----------------------------------------------------------------------------


@dataclass
class Seeded:
    client: TestClient
    settings: Settings
    project_id: int
    run_id: int
    documents: dict[str, int]  # file name → id
    pages: dict[tuple[str, int], int]  # (file name, number) → page id
    texts: dict[tuple[str, int], str]  # (file name, number) → page text


def _page_texts(name: str, pages: int) -> list[str]:
    """A benchmark ground truth cut into `pages` pages."""
    lines = benchmark_file("ground_truth", "txt", f"{name}.txt").read_text().splitlines()
    size = -(-len(lines) // pages)
    return ["\n".join(lines[i * size : (i + 1) * size]) for i in range(pages)]


def _entry(line: str) -> dict[str, str] | None:
    """A directory line `Surname, First, Occupation, Address` as a record (others: none)."""
    parts = [part.strip() for part in line.split(",", 3)]
    if len(parts) < 3:
        return None
    surname, first, occupation, *rest = parts
    return dict(zip(FIELDS, (first, surname, occupation, rest[0] if rest else ""), strict=True))


def store_run(
    session,
    project: Project,
    documents: list[Document],
    texts: dict[int, str],
    status: str = RunStatus.DONE,
) -> Run:
    """A run with OCR lines (boxes 20 px apart, the first line a header) and records on them."""
    config = RunConfig(
        schema_fields=FIELDS,
        stages=(
            StageConfig(stage="ocr", engine="tesseract"),
            StageConfig(stage="extract", engine="rules", source="ocr", fields=FIELDS),
        ),
    )
    run = Run(project_id=project.id, config=config, status=status, documents=documents)
    session.add(run)
    session.flush()
    for document in documents:
        for page in document.pages:
            text = texts[page.id]
            ocr = StageResult(
                run_id=run.id,
                page_id=page.id,
                stage="ocr",
                position=0,
                status=StageStatus.DONE,
                engine="tesseract",
                text=text,
            )
            extract = StageResult(
                run_id=run.id,
                page_id=page.id,
                stage="extract",
                position=1,
                status=StageStatus.DONE,
                engine="rules",
            )
            session.add_all([ocr, extract])
            session.flush()
            lines = text.split("\n")
            session.execute(
                insert(Line),
                [
                    {
                        "run_id": run.id,
                        "page_id": page.id,
                        "stage_result_id": ocr.id,
                        "position": n,
                        "text": line,
                        "x0": 40 + n,
                        "y0": 30 + 20 * n,
                        "x1": 900 - n,
                        "y1": 48 + 20 * n,
                        "confidence": 80.0 + n % 10,
                        "kind": "header" if n == 0 else "body",
                    }
                    for n, line in enumerate(lines)
                ],
            )
            records = [(n, fields) for n, line in enumerate(lines) if (fields := _entry(line))]
            session.execute(
                insert(Record),
                [
                    {
                        "run_id": run.id,
                        "page_id": page.id,
                        "stage_result_id": extract.id,
                        "position": position,
                        "line_number": n + 1,
                        "source_line": lines[n],
                        "fields": fields,
                    }
                    for position, (n, fields) in enumerate(records)
                ],
            )
    return run


def add_document(session, project: Project, name: str, pages: int) -> Document:
    document = Document(
        project=project,
        filename=f"{name}.pdf",
        media_type="application/pdf",
        sha256=name.encode().hex().ljust(64, "0"),
        size_bytes=1000,
        storage_key=f"documents/{name}",
        status=DocumentStatus.READY,
        page_count=pages,
    )
    document.pages = [
        Page(number=n, image_key=f"pages/{name}-{n}.png", width=1000, height=1500)
        for n in range(1, pages + 1)
    ]
    session.add(document)
    session.flush()
    return document


@pytest.fixture
def seeded(sqlite_settings: Settings, client_for) -> Seeded:
    """A project with type-1 (2 pages) and type-2 (1 page) and a finished run over both."""
    with session_scope(sqlite_settings.resolved_database_url) as session:
        project = Project(name="Köln 1822")
        session.add(project)
        session.flush()
        documents = {}
        texts = {}
        pages = {}
        for name, count in (("type-1", 2), ("type-2", 1)):
            document = add_document(session, project, name, count)
            documents[document.filename] = document
            for page, text in zip(document.pages, _page_texts(name, count), strict=True):
                texts[page.id] = text
                pages[(document.filename, page.number)] = page.id
        run = store_run(session, project, list(documents.values()), texts)
        seeded = Seeded(
            client=client_for(sqlite_settings),
            settings=sqlite_settings,
            project_id=project.id,
            run_id=run.id,
            documents={name: d.id for name, d in documents.items()},
            pages=pages,
            texts={key: texts[page_id] for key, page_id in pages.items()},
        )
    return seeded


def get(client: TestClient, path: str, **params) -> bytes:
    answer = client.get(f"{API}{path}", params=params)
    assert answer.status_code == 200, answer.text
    return answer.content


# --- records -----------------------------------------------------------------------------------


def test_excel_de_csv_opens_in_the_right_columns(seeded):
    data = get(seeded.client, f"/runs/{seeded.run_id}/records.csv", dialect="excel-de")
    assert data.startswith("\ufeff".encode()) and b"\r\n" in data and b";" in data
    table = pd.read_csv(io.BytesIO(data), sep=";", encoding="utf-8-sig", keep_default_na=False)
    assert list(table.columns) == [*FIELDS, *PROVENANCE]
    first = table.iloc[0]
    # type-1's first page: line 1 is the running header, line 2 the first entry.
    assert (first["surname"], first["first and middle names"]) == ("Förster", "Christian")
    assert first["address"] == "Großkölnstraße A 391."
    assert (first["document"], first["page"], first["line"], first["last_line"]) == (
        "type-1.pdf",
        1,
        2,
        2,
    )
    assert [first[c] for c in ("x0", "y0", "x1", "y1")] == [41, 50, 899, 68]
    assert (first["run"], first["version"], bool(first["verified"])) == (
        seeded.run_id,
        "latest",
        False,
    )
    assert set(table["document"]) == {"type-1.pdf", "type-2.pdf"}
    assert set(table.loc[table["document"] == "type-1.pdf", "page"]) == {1, 2}


def test_delimiter_and_bom_can_be_chosen_apart_from_the_dialect(seeded):
    path = f"/runs/{seeded.run_id}/records.csv"
    plain = get(seeded.client, path)
    assert not plain.startswith("\ufeff".encode()) and b"\r\n" not in plain
    assert plain.decode().splitlines()[0] == ",".join([*FIELDS, *PROVENANCE])
    semicolon = get(seeded.client, path, delimiter="semicolon")
    assert semicolon.decode().splitlines()[0] == ";".join([*FIELDS, *PROVENANCE])
    assert get(seeded.client, path, bom="true").startswith("\ufeff".encode())
    no_bom = get(seeded.client, path, dialect="excel-de", bom="false")
    assert no_bom.startswith(b"first and middle names;")
    wrong = seeded.client.get(f"{API}{path}", params={"delimiter": "pipe"})
    assert wrong.status_code == 422


def _set_fields(settings: Settings, run_id: int, values: list[str]) -> None:
    """Give the run's first records formula-like surnames (as the engine wrote them)."""
    with session_scope(settings.resolved_database_url) as session:
        records = session.query(Record).filter_by(run_id=run_id).order_by(Record.id).all()
        for record, value in zip(records, values, strict=False):
            record.fields = {**record.fields, "surname": value}


def test_formulas_are_neutralised_in_csv_and_kept_raw_in_json_lines(seeded):
    values = list(FORMULAS)
    _set_fields(seeded.settings, seeded.run_id, values)
    data = get(seeded.client, f"/runs/{seeded.run_id}/records.csv", dialect="excel-de")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert [row["surname"] for row in rows[: len(values)]] == list(FORMULAS.values())
    assert not any(
        cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values()
    )
    lines = get(seeded.client, f"/runs/{seeded.run_id}/records.jsonl").decode().splitlines()
    objects = [json.loads(line) for line in lines]
    assert [o["fields"]["surname"] for o in objects[: len(values)]] == values
    # The exported CSV, given back as ground truth, reads as the values themselves.
    _, records = read_records_csv(data.decode("utf-8-sig"), list(FIELDS))
    assert [r["surname"] for r in records[: len(values)]] == values


def test_json_lines_carry_provenance_and_multi_line_records_their_lines_box(seeded):
    page_id = seeded.pages[("type-1.pdf", 1)]
    with session_scope(seeded.settings.resolved_database_url) as session:
        record = session.query(Record).filter_by(run_id=seeded.run_id, page_id=page_id).first()
        assert record is not None and record.line_number == 2
        record.source_line += "\nFortsetzung der Zeile"  # the entry runs over lines 2 and 3
        run = session.get_one(Run, seeded.run_id)
        review.verify_page(session, run, page_id, "historian")
    lines = get(seeded.client, f"/runs/{seeded.run_id}/records.jsonl").decode().splitlines()
    first, second = (json.loads(line) for line in lines[:2])
    assert first["document"] == "type-1.pdf" and first["page"] == 1
    assert (first["line"], first["last_line"]) == (2, 3)
    assert first["bbox"] == [41, 50, 899, 88]  # lines 2 and 3 together
    assert first["verified"] is True and first["version"] == "latest"
    assert first["run"] == seeded.run_id and first["record_version"] == 1
    assert (second["line"], second["last_line"], second["bbox"]) == (3, 3, [42, 70, 898, 88])
    other = [json.loads(line) for line in lines if '"type-2.pdf"' in line]
    assert other and not any(o["verified"] for o in other)


def test_latest_and_engine_differ_exactly_by_the_reviewers_changes(seeded):
    page_id = seeded.pages[("type-1.pdf", 1)]
    with session_scope(seeded.settings.resolved_database_url) as session:
        first, second = (
            session.query(Record)
            .filter_by(run_id=seeded.run_id, page_id=page_id)
            .order_by(Record.position)
            .limit(2)
        )
        review.edit_record(session, first, {"occupation": "Fabrikant"}, 1, "historian")
        review.delete_record(session, second, 1, "historian")
        line = session.query(Line).filter_by(run_id=seeded.run_id, page_id=page_id, position=3)
        review.edit_line(session, line.one(), "Förster, Johann, ohne Gewerbe", 1, "historian")
        second_id = second.id
    path = f"/runs/{seeded.run_id}/records.jsonl"
    engine = [json.loads(x) for x in get(seeded.client, path, version="engine").splitlines()]
    latest = [json.loads(x) for x in get(seeded.client, path).splitlines()]
    assert len(engine) == len(latest) + 1
    assert [o["record_id"] for o in engine if o["record_id"] != second_id] == [
        o["record_id"] for o in latest
    ]
    assert engine[0]["fields"]["occupation"] == "Fabrikmeister"
    assert latest[0]["fields"]["occupation"] == "Fabrikant" and latest[0]["record_version"] == 2
    assert {o["version"] for o in engine} == {"engine"}
    changed = [(e, la) for e, la in zip(engine[2:], latest[1:], strict=True) if e != la]
    assert all(e | {"version": "latest"} == la for e, la in changed)

    document = seeded.documents["type-1.pdf"]
    text_path = f"/runs/{seeded.run_id}/documents/{document}/text.txt"
    before = get(seeded.client, text_path, version="engine").decode().split("\n")
    after = get(seeded.client, text_path).decode().split("\n")
    assert [(b, a) for b, a in zip(before, after, strict=True) if b != a] == [
        ("Förster, Johann, ohne Gewerb, Seilgraben A 422.", "Förster, Johann, ohne Gewerbe")
    ]


def test_a_thousand_records_export_and_parse(seeded):
    with session_scope(seeded.settings.resolved_database_url) as session:
        result = session.query(StageResult).filter_by(run_id=seeded.run_id, stage="extract")
        extract = result.first()
        assert extract is not None
        existing = session.query(Record).filter_by(run_id=seeded.run_id).count()
        session.execute(
            insert(Record),
            [
                {
                    "run_id": seeded.run_id,
                    "page_id": extract.page_id,
                    "stage_result_id": extract.id,
                    "position": 1000 + n,
                    "line_number": None,
                    "source_line": "",
                    "fields": {"surname": f"Name {n}", "address": f"Hochstraße {n}"},
                }
                for n in range(1000 - existing)
            ],
        )
    data = get(seeded.client, f"/runs/{seeded.run_id}/records.csv", dialect="excel-de")
    table = pd.read_csv(io.BytesIO(data), sep=";", encoding="utf-8-sig", keep_default_na=False)
    assert len(table) == 1000 and list(table.columns) == [*FIELDS, *PROVENANCE]
    assert table["surname"].str.len().min() > 0
    lines = get(seeded.client, f"/runs/{seeded.run_id}/records.jsonl").decode().splitlines()
    frame = pd.json_normalize([json.loads(line) for line in lines])
    assert len(frame) == 1000 and "fields.surname" in frame.columns
    assert frame["record_id"].is_unique


# --- project-level records ---------------------------------------------------------------------


def test_project_export_takes_each_documents_latest_finished_run(seeded):
    url = seeded.settings.resolved_database_url
    with session_scope(url) as session:
        project = session.get_one(Project, seeded.project_id)
        one = session.get_one(Document, seeded.documents["type-1.pdf"])
        two = session.get_one(Document, seeded.documents["type-2.pdf"])
        texts = {page.id: "Neumann, Karl, Bäcker, Hochstraße 1." for page in one.pages + two.pages}
        newer = store_run(session, project, [one], texts).id
        running = store_run(session, project, [two], texts, status=RunStatus.RUNNING).id
        other = Project(name="elsewhere")
        session.add(other)
        session.flush()
        foreign = store_run(session, other, [], {}).id
    path = f"/projects/{seeded.project_id}/records.jsonl"
    rows = [json.loads(line) for line in get(seeded.client, path).splitlines()]
    runs = {(row["document"], row["run"]) for row in rows}
    assert runs == {("type-1.pdf", newer), ("type-2.pdf", seeded.run_id)}
    assert [row["document"] for row in rows] == sorted(row["document"] for row in rows)
    assert {row["fields"]["surname"] for row in rows if row["run"] == newer} == {"Neumann"}

    chosen = get(seeded.client, path, run=[running, seeded.run_id]).splitlines()
    runs = {(json.loads(x)["document"], json.loads(x)["run"]) for x in chosen}
    assert runs == {("type-1.pdf", seeded.run_id), ("type-2.pdf", running)}

    csv_rows = get(seeded.client, f"/projects/{seeded.project_id}/records.csv", dialect="excel-de")
    table = pd.read_csv(io.BytesIO(csv_rows), sep=";", encoding="utf-8-sig")
    assert len(table) == len(rows) and list(table.columns) == [*FIELDS, *PROVENANCE]
    for wrong, status in ((foreign, 404), (999_999, 404)):
        answer = seeded.client.get(f"{API}{path}", params={"run": wrong})
        assert answer.status_code == status, answer.text


# --- texts -------------------------------------------------------------------------------------


def test_text_has_form_feeds_between_pages_and_reads_back_page_for_page(seeded):
    document = seeded.documents["type-1.pdf"]
    data = get(seeded.client, f"/runs/{seeded.run_id}/documents/{document}/text.txt")
    text = data.decode()
    assert text.count("\f") == 1
    assert text == seeded.texts[("type-1.pdf", 1)] + "\n\f" + seeded.texts[("type-1.pdf", 2)] + "\n"
    imported = read_transcription(data, "type-1.txt")
    assert imported.explicit_pages and imported.pages == [
        seeded.texts[("type-1.pdf", 1)],
        seeded.texts[("type-1.pdf", 2)],
    ]


@pytest.mark.parametrize("xsd", ["pagecontent-2019-07-15.xsd"])
def test_page_xml_validates_keeps_boxes_and_reads_back_to_the_same_text(seeded, xsd):
    page_id = seeded.pages[("type-1.pdf", 2)]
    data = get(seeded.client, f"/runs/{seeded.run_id}/pages/{page_id}/page.xml")
    root = assert_valid(data, xsd)
    ns = {"pc": root.nsmap[None]}
    page = root.find("pc:Page", ns)
    assert (page.get("imageWidth"), page.get("imageHeight")) == ("1000", "1500")
    assert page.get("imageFilename") == "type-1-0002.png"
    regions = page.findall("pc:TextRegion", ns)
    order = [ref.get("regionRef") for ref in page.iterfind(".//pc:RegionRefIndexed", ns)]
    assert order == [region.get("id") for region in regions]
    assert [region.get("type") for region in regions] == ["header", "paragraph"]
    lines = page.findall(".//pc:TextLine", ns)
    text = seeded.texts[("type-1.pdf", 2)]
    assert len(lines) == len(text.split("\n"))
    third = lines[2].find("pc:Coords", ns).get("points")
    assert third == "42,70 898,70 898,88 42,88"
    assert read_transcription(data, "page.xml").pages == [text]


@pytest.mark.parametrize("xsd", ["alto-4-2.xsd", "alto-4-3.xsd"])
def test_alto_validates_keeps_boxes_and_reads_back_to_the_same_text(seeded, xsd):
    page_id = seeded.pages[("type-2.pdf", 1)]
    data = get(seeded.client, f"/runs/{seeded.run_id}/pages/{page_id}/alto.xml")
    root = assert_valid(data, xsd)
    ns = {"a": root.nsmap[None]}
    lines = root.findall(".//a:TextLine", ns)
    text = seeded.texts[("type-2.pdf", 1)]
    assert len(lines) == len(text.split("\n"))
    second = lines[1]
    assert [second.get(k) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")] == ["41", "50", "858", "18"]
    words = [s.get("CONTENT") for s in second.findall("a:String", ns)]
    assert words == text.split("\n")[1].split()
    # ALTO keeps words, not spaces: a line comes back with single spaces between its words and
    # none at its end (type-2 has one line ending in a space); everything else is the text.
    words_only = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    assert words_only != text
    assert read_transcription(data, "alto.xml").pages == [words_only]


def test_page_files_of_a_document_outside_the_run_or_an_unknown_stage_are_not_found(seeded):
    page_id = seeded.pages[("type-1.pdf", 1)]
    path = f"{API}/runs/{seeded.run_id}/pages/{page_id}/page.xml"
    assert seeded.client.get(path, params={"stage": "correct"}).status_code == 404
    assert seeded.client.get(path, params={"version": "newest"}).status_code == 422


# --- the zip -----------------------------------------------------------------------------------


def test_the_zip_holds_every_format_a_manifest_and_reads_back(seeded, tmp_path):
    data = get(seeded.client, f"/runs/{seeded.run_id}/export.zip", dialect="excel-de")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path)
    assert {"manifest.json", "records.csv", "records.jsonl", "type-1.txt", "type-2.txt"} <= names
    assert {"page/type-1/type-1-0001.xml", "page/type-1/type-1-0002.xml"} <= names
    assert {"alto/type-1/type-1-0002.xml", "alto/type-2/type-2-0001.xml"} <= names
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["run"]["id"] == seeded.run_id and manifest["version"] == "latest"
    assert [s["stage"] for s in manifest["config"]["stages"]] == ["ocr", "extract"]
    assert manifest["config"]["schema_fields"] == list(FIELDS)
    assert manifest["records"]["csv"]["delimiter"] == ";" and manifest["records"]["csv"]["bom"]
    rows = pd.read_csv(tmp_path / "records.csv", sep=";", encoding="utf-8-sig")
    assert len(rows) == manifest["records"]["count"] > 0
    for kind, xsd in (("page", "pagecontent-2019-07-15.xsd"), ("alto", "alto-4-2.xsd")):
        for path in (tmp_path / kind / "type-1").iterdir():
            assert_valid(path.read_bytes(), xsd)
        # The folder of page files is what --import-from reads: the same pages come back.
        pages = import_pages(tmp_path / kind / "type-1", 2)
        assert pages == [seeded.texts[("type-1.pdf", 1)], seeded.texts[("type-1.pdf", 2)]]
    assert import_pages(tmp_path / "type-1.txt", 2) == pages
