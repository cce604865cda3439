"""Attaching ground truth to a document through the HTTP API: text per document or page, records."""

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from tests.helpers import RecordingDispatcher
from workers.context import make_context
from workers.tasks.ingest import ingest_document

API = "/api/v1"
CSV_HEADER = "first and middle names,surname,occupation,address,id\n"
CSV_ROWS = (
    "Christian,Förster,Fabrikmeister,Großkölnstraße A 391.,1\n"
    "Johann,Förster,Schreiner,Großkölnstraße A 393.,2\n"
)
PAGE_TEXT = "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n"


def two_page_tiff() -> bytes:
    frames = []
    for number, size in ((1, (80, 60)), (2, (60, 90))):
        frame = Image.new("L", size, "white")
        ImageDraw.Draw(frame).text((5, 5), f"page {number}", fill="black")
        frames.append(frame)
    buffer = io.BytesIO()
    frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


@pytest.fixture
def client(sqlite_settings, client_for) -> TestClient:
    return client_for(sqlite_settings)


@pytest.fixture
def document(client) -> dict:
    """A 2-page TIFF, uploaded but not ingested yet."""
    project = client.post(f"{API}/projects", json={"name": "Leipzig 1790"}).json()
    response = client.post(
        f"{API}/projects/{project['id']}/documents",
        files=[("files", ("leipzig.tif", two_page_tiff(), "image/tiff"))],
    )
    assert response.status_code == 201, response.text
    return response.json()["documents"][0]


@pytest.fixture
def pages(client, sqlite_settings, document) -> list[dict]:
    """The document's pages, after ingesting it directly (no worker)."""
    ingest_document(make_context(sqlite_settings, RecordingDispatcher()), document["id"])
    detail = client.get(f"{API}/documents/{document['id']}").json()
    assert detail["status"] == "ready"
    assert [p["number"] for p in detail["pages"]] == [1, 2]
    return detail["pages"]


def attach(
    client: TestClient,
    document_id: int,
    filename: str,
    content: bytes,
    **form: str | int,
):
    return client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": (filename, content, "text/plain")},
        data={k: str(v) for k, v in form.items()},
    )


def listed(client: TestClient, document_id: int) -> list[dict]:
    response = client.get(f"{API}/documents/{document_id}/ground-truth")
    assert response.status_code == 200
    return response.json()


def flags(client: TestClient, document_id: int) -> tuple[bool, bool]:
    detail = client.get(f"{API}/documents/{document_id}").json()
    return detail["has_ground_truth_text"], detail["has_ground_truth_records"]


def test_document_transcription_is_attached(client, document):
    assert flags(client, document["id"]) == (False, False)
    content = PAGE_TEXT * 3
    response = attach(client, document["id"], "leipzig.txt", content.encode())
    assert response.status_code == 201, response.text
    truth = response.json()
    assert truth["kind"] == "text"
    assert truth["page_id"] is None
    assert truth["document_id"] == document["id"]
    assert truth["filename"] == "leipzig.txt"
    assert truth["characters"] == len(content)
    assert listed(client, document["id"]) == [truth]
    assert flags(client, document["id"]) == (True, False)


def test_windows_text_with_bom_is_read_as_utf8_with_unix_line_breaks(client, document):
    content = "Förster, Christian\r\nFörster, Johann\r\n"
    response = attach(client, document["id"], "windows.txt", "\ufeff".encode() + content.encode())
    assert response.status_code == 201, response.text
    assert response.json()["characters"] == len(content.replace("\r\n", "\n"))


def test_page_transcription_is_attached_to_that_page(client, document, pages):
    response = attach(client, document["id"], "page-2.txt", PAGE_TEXT.encode(), page=2)
    assert response.status_code == 201, response.text
    truth = response.json()
    assert truth["kind"] == "text"
    assert truth["page_id"] == pages[1]["id"]
    assert truth["characters"] == len(PAGE_TEXT)

    # A page's and the document's transcription are separate pieces of ground truth.
    whole = attach(client, document["id"], "all.txt", (PAGE_TEXT * 2).encode())
    assert whole.status_code == 201, whole.text
    listing = listed(client, document["id"])
    assert sorted((t["page_id"] or 0, t["characters"]) for t in listing) == [
        (0, 2 * len(PAGE_TEXT)),
        (pages[1]["id"], len(PAGE_TEXT)),
    ]


def test_records_csv_is_attached(client, document):
    content = CSV_HEADER + CSV_ROWS
    response = attach(client, document["id"], "leipzig.csv", content.encode())
    assert response.status_code == 201, response.text
    truth = response.json()
    assert truth["kind"] == "records" and truth["page_id"] is None
    assert truth["characters"] == len(content)
    assert flags(client, document["id"]) == (False, True)

    # The kind can be given when the file name does not tell it.
    fewer = CSV_HEADER + CSV_ROWS.splitlines(keepends=True)[0]
    named_txt = attach(client, document["id"], "records.txt", fewer.encode(), kind="records")
    assert named_txt.status_code == 201, named_txt.text
    assert named_txt.json()["kind"] == "records"
    assert named_txt.json()["version"] == 2


def test_wrong_page_number_is_refused(client, document, pages):
    response = attach(client, document["id"], "page-5.txt", PAGE_TEXT.encode(), page=5)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "no page 5" in detail and "2 page(s)" in detail, detail
    assert listed(client, document["id"]) == []


def test_page_transcription_before_ingest_is_refused(client, document):
    response = attach(client, document["id"], "page-1.txt", PAGE_TEXT.encode(), page=1)
    assert response.status_code == 422
    assert "no page 1" in response.json()["detail"]
    assert listed(client, document["id"]) == []


def test_records_for_a_page_are_refused(client, document, pages):
    response = attach(client, document["id"], "p1.csv", (CSV_HEADER + CSV_ROWS).encode(), page=1)
    assert response.status_code == 422
    assert "whole document" in response.json()["detail"]
    assert listed(client, document["id"]) == []


@pytest.mark.parametrize(
    ("filename", "content", "words"),
    [
        pytest.param(
            "names.csv",
            "first name,surname,street\nChristian,Förster,Großkölnstraße\n".encode(),
            ["names.csv", "'first and middle names'", "'occupation'", "'address'"],
            id="csv-missing-columns",
        ),
        pytest.param(
            "latin1.txt",
            PAGE_TEXT.encode("latin-1"),
            ["latin1.txt", "not UTF-8"],
            id="non-utf8-text",
        ),
        pytest.param(
            "latin1.csv",
            (CSV_HEADER + CSV_ROWS).encode("latin-1"),
            ["latin1.csv", "not UTF-8"],
            id="non-utf8-csv",
        ),
        pytest.param("empty.txt", b"", ["empty.txt", "empty"], id="empty"),
        pytest.param("blank.txt", b"\n  \n", ["blank.txt", "empty"], id="only-whitespace"),
    ],
)
def test_unusable_file_is_refused_with_a_message(client, document, filename, content, words):
    response = attach(client, document["id"], filename, content)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for word in words:
        assert word in detail, detail
    assert listed(client, document["id"]) == []
    assert flags(client, document["id"]) == (False, False)


def test_unknown_kind_is_refused(client, document):
    response = attach(client, document["id"], "x.txt", PAGE_TEXT.encode(), kind="tables")
    assert response.status_code == 422
    assert "'tables'" in response.json()["detail"]
    assert listed(client, document["id"]) == []


def test_unknown_document_is_404(client, sqlite_settings):
    response = attach(client, 999, "x.txt", PAGE_TEXT.encode())
    assert response.status_code == 404
    assert response.json()["detail"] == "document 999 not found"


def test_attaching_the_same_kind_again_adds_a_version(client, document, pages):
    """An upload never replaces ground truth (it used to: tests/app/test_ground_truth_versions.py
    says why); the listing shows the current version of each piece, `all=true` every one."""
    first = attach(client, document["id"], "v1.txt", PAGE_TEXT.encode())
    second = attach(client, document["id"], "v2.txt", (PAGE_TEXT * 2).encode())
    assert first.status_code == second.status_code == 201
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    listing = listed(client, document["id"])
    assert [(t["filename"], t["characters"], t["version"]) for t in listing] == [
        ("v2.txt", 2 * len(PAGE_TEXT), 2)
    ]

    for version in ("a", "b"):
        response = attach(client, document["id"], f"p1-{version}.txt", version.encode(), page=1)
        assert response.status_code == 201, response.text
    for version, rows in (("a", CSV_ROWS), ("b", CSV_ROWS.splitlines(keepends=True)[0])):
        response = attach(
            client, document["id"], f"rec-{version}.csv", (CSV_HEADER + rows).encode()
        )
        assert response.status_code == 201, response.text

    expected = [
        ("records", 0, "rec-b.csv", 2),
        ("text", 0, "v2.txt", 2),
        ("text", pages[0]["id"], "p1-b.txt", 2),
    ]
    listing = listed(client, document["id"])
    assert [
        (t["kind"], t["page_id"] or 0, t["filename"], t["version"]) for t in listing
    ] == expected
    history = client.get(f"{API}/documents/{document['id']}/ground-truth", params={"all": "true"})
    assert [(t["filename"], t["current"]) for t in history.json()] == [
        ("rec-a.csv", False),
        ("rec-b.csv", True),
        ("v1.txt", False),
        ("v2.txt", True),
        ("p1-a.txt", False),
        ("p1-b.txt", True),
    ]

    # A refused upload adds nothing.
    refused = attach(client, document["id"], "v3.txt", b"")
    assert refused.status_code == 422
    listing = listed(client, document["id"])
    assert [
        (t["kind"], t["page_id"] or 0, t["filename"], t["version"]) for t in listing
    ] == expected
