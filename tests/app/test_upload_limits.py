"""Upload limits: bodies are refused while they stream in (or on Content-Length, before), files
and form fields are counted, PDF pages are checked against the pixel limit, and hostile names
and CSV fields get a 4xx; on both databases, and nothing is stored when a request is refused."""

import asyncio
import io
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from PIL import Image
from sqlalchemy import select

from app.config import Settings
from app.db.session import get_sessionmaker
from app.db.tables import Document
from app.main import create_app
from app.pipeline.media import MIN_RENDER_DPI, fitting_dpi, page_pixels, pdf_page_sizes
from tests.app.test_uploads import (
    API,
    new_project,
    png_bytes,
    stored_blobs,
    tiff_bytes,
    upload,
)
from tests.helpers import RecordingDispatcher
from workers.context import make_context
from workers.tasks.ingest import ingest_document

MB = 1024 * 1024
CHUNK = 64 * 1024
BOUNDARY = "histocr-test-boundary"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_settings(request: pytest.FixtureRequest) -> Settings:
    """Each test on SQLite and on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the multipart parser spools files to, watched by the tests."""
    folder = tmp_path / "spool"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def held_in(folder: Path) -> int:
    """Bytes this process holds open in files under `folder` (unlinked ones included)."""
    total = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if os.readlink(fd).startswith(str(folder)):
                total += os.stat(fd).st_size
        except OSError:
            continue  # closed meanwhile
    return total


def limited(settings: Settings, **limits: object) -> Settings:
    return settings.model_copy(update=limits)


# --- streaming: a raw ASGI client that sends a body chunk by chunk --------------------------


class Streamed:
    """One streamed request's outcome: its answer, how much of the body the app read, and the
    most it held in spooled files at once."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.read = 0
        self.peak_spooled = 0

    @property
    def detail(self) -> str:
        return str(json.loads(self.body)["detail"])


def multipart_file(
    field: str, filename: str, size: int, head: bytes = b"%PDF-1.4\n"
) -> Iterator[bytes]:
    """A multipart part with a `size`-byte file, in CHUNK pieces (made as they are read)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode() + head
    sent = len(head)
    while sent < size:
        piece = min(CHUNK, size - sent)
        sent += piece
        yield b"\0" * piece
    yield b"\r\n"


def stream_post(
    app: FastAPI,
    path: str,
    parts: Iterator[bytes],
    *,
    content_length: int | None = None,
    spool: Path | None = None,
) -> Streamed:
    """POST a multipart body to the app chunk by chunk, as a server hands it over."""
    outcome = Streamed()

    def body() -> Iterator[bytes]:
        yield from parts
        yield f"--{BOUNDARY}--\r\n".encode()

    chunks = body()
    headers = [
        (b"host", b"127.0.0.1:8000"),  # a loopback client: single-user mode, no login needed
        (b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode()),
    ]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    done = False

    async def receive() -> dict[str, object]:
        nonlocal done
        if spool is not None:
            outcome.peak_spooled = max(outcome.peak_spooled, held_in(spool))
        if done:
            await asyncio.sleep(3600)  # a client waiting for the answer
        chunk = next(chunks, None)
        if chunk is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        outcome.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            outcome.status = int(message["status"])  # type: ignore[call-overload]
        elif message["type"] == "http.response.body":
            outcome.body += message.get("body", b"")  # type: ignore[operator]

    asyncio.run(app(scope, receive, send))
    return outcome


def upload_paths(client, settings: Settings) -> dict[str, str]:
    """The three upload routes, for a fresh project and a one-page document."""
    project_id = new_project(client)
    document = upload(client, project_id, ("scan.png", png_bytes("limits"), "image/png"))
    assert document.status_code == 201, document.text
    document_id = document.json()["documents"][0]["id"]
    return {
        "documents": f"{API}/projects/{project_id}/documents",
        "ground-truth": f"{API}/documents/{document_id}/ground-truth",
        "imported-text": f"{API}/documents/{document_id}/imported-text",
    }


FIELD = {"documents": "files", "ground-truth": "file", "imported-text": "files"}


def assert_nothing_more_stored(client, settings: Settings, before: list[Path]) -> None:
    """No new blob, no spool or render file left, no ground truth, no imported text."""
    assert stored_blobs(settings) == before
    with get_sessionmaker(settings.resolved_database_url)() as session:
        documents = list(session.scalars(select(Document)))
    assert len(documents) == 1 and documents[0].imported_text_key is None
    assert client.get(f"{API}/documents/{documents[0].id}/ground-truth").json() == []


# --- size limits, checked while the body streams in ------------------------------------------


@pytest.mark.parametrize("route", ["documents", "ground-truth", "imported-text"])
def test_declared_content_length_over_the_request_limit_is_refused_before_reading(
    db_settings, client_for, route
):
    settings = limited(db_settings, max_request_mb=2)
    app = create_app(settings)
    client = client_for(settings)
    paths = upload_paths(client, settings)
    before = stored_blobs(settings)

    answer = stream_post(
        app,
        paths[route],
        multipart_file(FIELD[route], "huge.pdf", 1024 * MB),
        content_length=1024 * MB + 300,
    )
    assert answer.status == 413, answer.body
    assert "larger than the limit of 2 MB for one request" in answer.detail
    assert f"{1024 * MB + 300:,} bytes" in answer.detail
    assert answer.read == 0  # not one byte of the body was read
    assert_nothing_more_stored(client, settings, before)


@pytest.mark.parametrize("route", ["documents", "ground-truth", "imported-text"])
def test_streamed_file_over_the_file_limit_stops_at_the_limit(
    db_settings, client_for, spool_dir, route
):
    settings = limited(db_settings, max_upload_mb=3)  # over the parser's 1 MB in memory
    app = create_app(settings)
    client = client_for(settings)
    paths = upload_paths(client, settings)
    before = stored_blobs(settings)

    # 1 GiB announced by nobody (a chunked body): the parser must stop at the limit.
    answer = stream_post(
        app, paths[route], multipart_file(FIELD[route], "big-scan.pdf", 1024 * MB), spool=spool_dir
    )
    assert answer.status == 413, answer.body
    assert answer.detail == "big-scan.pdf: larger than the upload limit of 3 MB"
    print(
        f"\n{route}: read {answer.read / MB:.2f} MB of 1024 MB; spooled at most "
        f"{answer.peak_spooled / MB:.2f} MB"
    )
    assert answer.read <= 3 * MB + 2 * CHUNK
    assert MB < answer.peak_spooled <= 3 * MB  # it was spooled to disk, never over the limit
    assert held_in(spool_dir) == 0  # the spooled file is closed, so deleted
    assert list(spool_dir.iterdir()) == []
    assert_nothing_more_stored(client, settings, before)


def test_streamed_request_over_the_request_limit_stops_at_the_limit(
    db_settings, client_for, spool_dir
):
    settings = limited(db_settings, max_upload_mb=2, max_request_mb=5)
    app = create_app(settings)
    client = client_for(settings)
    paths = upload_paths(client, settings)
    before = stored_blobs(settings)

    ten_files = itertools.chain.from_iterable(  # each under the file limit, 15 MB in all
        multipart_file("files", f"part-{number}.pdf", 3 * MB // 2) for number in range(10)
    )
    answer = stream_post(app, paths["documents"], ten_files, spool=spool_dir)
    assert answer.status == 413, answer.body
    assert "larger than the limit of 5 MB for one request" in answer.detail
    assert answer.read <= 5 * MB + 2 * CHUNK
    assert MB < answer.peak_spooled <= 5 * MB
    assert held_in(spool_dir) == 0
    assert_nothing_more_stored(client, settings, before)


def test_uploads_under_the_limits_pass_through_the_streaming_parser(db_settings, client_for):
    settings = limited(db_settings, max_upload_mb=1, max_request_mb=2)
    client = client_for(settings)
    project_id = new_project(client)
    response = upload(
        client,
        project_id,
        ("a.png", png_bytes("a"), "image/png"),
        ("b.tif", tiff_bytes(), "image/tiff"),
    )
    assert response.status_code == 201, response.text
    assert [d["filename"] for d in response.json()["documents"]] == ["a.png", "b.tif"]


# --- files and form fields per request -------------------------------------------------------


def test_more_files_than_the_limit_are_refused_and_nothing_is_stored(db_settings, client_for):
    settings = limited(db_settings, max_files_per_upload=3)
    client = client_for(settings)
    project_id = new_project(client)
    files = [(f"p{n}.png", png_bytes(f"page {n}"), "image/png") for n in range(4)]

    response = upload(client, project_id, *files)
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == (
        "more than 3 files in one upload; send them in several uploads"
    )
    assert client.get(f"{API}/projects/{project_id}/documents").json() == []
    assert stored_blobs(settings) == []

    assert upload(client, project_id, *files[:3]).status_code == 201


def test_imported_text_may_have_a_file_per_page_beyond_the_files_limit(db_settings, client_for):
    settings = limited(db_settings, max_files_per_upload=1, max_pages_per_document=3)
    client = client_for(settings)
    project_id = new_project(client)
    scan = tiff_bytes(((90, 60), (70, 110), (80, 80)))
    document = upload(client, project_id, ("three.tif", scan, "image/tiff")).json()
    document_id = document["documents"][0]["id"]
    pages = [("files", (f"page-{n}.txt", f"Seite {n}\n".encode(), "text/plain")) for n in (1, 2, 3)]

    response = client.post(f"{API}/documents/{document_id}/imported-text", files=pages)
    assert response.status_code == 200, response.text

    too_many = pages + [("files", ("page-4.txt", b"Seite 4\n", "text/plain"))]
    response = client.post(f"{API}/documents/{document_id}/imported-text", files=too_many)
    assert response.status_code == 413, response.text
    assert response.json()["detail"].startswith("more than 3 files in one upload")


def test_more_form_fields_than_the_limit_are_refused(db_settings, client_for):
    settings = limited(db_settings, max_form_fields=5)
    client = client_for(settings)
    project_id = new_project(client)
    response = client.post(
        f"{API}/projects/{project_id}/documents",
        files=[("files", ("a.png", png_bytes(), "image/png"))],
        data={f"field{n}": "x" for n in range(6)},
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "more than 5 form fields in one upload"
    assert client.get(f"{API}/projects/{project_id}/documents").json() == []
    assert stored_blobs(settings) == []


def test_a_form_field_over_a_megabyte_is_refused(db_settings, client_for):
    client = client_for(db_settings)
    project_id = new_project(client)
    response = client.post(
        f"{API}/projects/{project_id}/documents",
        files=[("files", ("a.png", png_bytes(), "image/png"))],
        data={"start_run": "x" * (MB + 1)},
    )
    assert response.status_code == 413, response.text
    assert response.json()["detail"] == "form field 'start_run' is longer than 1,048,576 bytes"
    assert stored_blobs(db_settings) == []


# --- PDF pages: size × DPI against the pixel limit -------------------------------------------


def pdf_with_pages(*sizes_pt: tuple[int, int]) -> bytes:
    """A PDF whose pages measure `sizes_pt` points (white images placed at 72 dpi)."""
    pages = [Image.new("L", size, "white") for size in sizes_pt]
    out = io.BytesIO()
    pages[0].save(out, format="PDF", resolution=72.0, save_all=True, append_images=pages[1:])
    return out.getvalue()


def test_fitting_dpi_keeps_every_page_within_the_pixel_limit():
    for size in ((595.0, 842.0), (4800.0, 4800.0), (14400.0, 200.0), (100.0, 100.0)):
        for limit in (1_000_000, 20_000_000, 200_000_000):
            dpi = fitting_dpi(size, 300, limit)
            if dpi:
                assert MIN_RENDER_DPI <= dpi <= 300
                assert page_pixels(size, dpi) <= limit
                assert dpi == 300 or page_pixels(size, dpi + 1) > limit
            else:
                assert page_pixels(size, MIN_RENDER_DPI) > limit
    assert fitting_dpi((4800.0, 4800.0), 300, 200_000_000) == 212


def test_page_too_large_even_at_the_lowest_resolution_is_refused_at_upload(db_settings, client_for):
    settings = limited(db_settings, max_image_pixels=1_000_000)
    client = client_for(settings)
    project_id = new_project(client)
    poster = pdf_with_pages((200, 300), (2000, 2000))

    response = upload(client, project_id, ("poster.pdf", poster, "application/pdf"))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "poster.pdf: page 2 is 2,000 × 2,000 pt (71 × 71 cm); even at 50 dpi it would be "
        "1,932,100 pixels, more than the limit of 1,000,000"
    )
    assert client.get(f"{API}/projects/{project_id}/documents").json() == []
    assert stored_blobs(settings) == []


def test_large_pdf_page_is_rendered_at_the_resolution_that_fits_and_records_it(
    db_settings, client_for
):
    settings = limited(db_settings, max_image_pixels=2_000_000)
    client = client_for(settings)
    project_id = new_project(client)
    pdf = pdf_with_pages((200, 300), (1000, 1000))
    response = upload(client, project_id, ("mixed.pdf", pdf, "application/pdf"))
    assert response.status_code == 201, response.text
    document_id = response.json()["documents"][0]["id"]

    ingest_document(make_context(settings, RecordingDispatcher()), document_id)
    document = client.get(f"{API}/documents/{document_id}").json()
    assert document["status"] == "ready", document["error"]
    small, large = document["pages"]
    assert small["dpi"] == 300 and (small["width"], small["height"]) == (834, 1250)
    assert large["dpi"] == fitting_dpi((1000.0, 1000.0), 300, 2_000_000) == 101
    assert large["width"] * large["height"] <= 2_000_000
    for page in (small, large):
        with Image.open(io.BytesIO(client.get(page["image_url"]).content)) as image:
            assert image.size == (page["width"], page["height"])
    # Nothing of the rendering is left beside the store.
    assert [p for p in (settings.resolved_storage_dir / "tmp").rglob("*") if p.is_file()] == []


def test_page_sizes_come_from_the_pages_not_from_forged_metadata(tmp_path):
    from pypdf import PdfReader, PdfWriter

    reader = PdfReader(io.BytesIO(pdf_with_pages((600, 400))))
    writer = PdfWriter()
    writer.add_page(reader.pages[0])
    writer.add_metadata({"/Title": "x\nPage    1 MediaBox:      0.00     0.00    10.00    10.00"})
    path = tmp_path / "forged.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    assert pdf_page_sizes(path, "forged.pdf", 1) == [(600.0, 400.0)]


# --- ground truth CSV and imported-text names ------------------------------------------------


def test_csv_ground_truth_with_a_field_over_the_csv_limit_is_a_422(db_settings, client_for):
    client = client_for(db_settings)
    paths = upload_paths(client, db_settings)
    before = stored_blobs(db_settings)
    header = "first and middle names,surname,occupation,address\n"
    content = header + 'Christian,Förster,"' + "Fabrikmeister " * 10_000 + '",Hochstr. 1\n'

    response = client.post(
        paths["ground-truth"], files={"file": ("records.csv", content.encode(), "text/csv")}
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("records.csv: ") and "131,072 characters" in detail, detail
    assert_nothing_more_stored(client, db_settings, before)


def test_unclosed_quote_in_csv_ground_truth_is_named_in_the_422(db_settings, client_for):
    client = client_for(db_settings)
    paths = upload_paths(client, db_settings)
    header = "first and middle names,surname,occupation,address\n"
    content = header + 'Christian,"Förster,Fabrikmeister,Hochstr. 1\n' + "Anna,Schmitz,,\n" * 12_000

    response = client.post(
        paths["ground-truth"], files={"file": ("records.csv", content.encode(), "text/csv")}
    )
    assert response.status_code == 422, response.text
    assert "quote" in response.json()["detail"]


HOSTILE_NAMES = [
    pytest.param("..", "page-1.txt", id="dot-dot"),
    pytest.param("a/..", "page-1.txt", id="a-slash-dot-dot"),
    pytest.param("../../../../etc/passwd.txt", "passwd.txt", id="traversal"),
    pytest.param("a" * 300, "a" * 200, id="300-ascii"),
    pytest.param("ä" * 300 + ".txt", "ä" * 98 + ".txt", id="300-umlauts-800-bytes"),
]


@pytest.mark.parametrize(("raw", "written"), HOSTILE_NAMES)
def test_imported_text_with_a_hostile_file_name_is_stored_inside_the_temp_folder(
    db_settings, client_for, raw, written
):
    from app.services.imports import page_file_name

    assert page_file_name(raw, 1) == written
    assert len(written.encode()) <= 200
    client = client_for(db_settings)
    paths = upload_paths(client, db_settings)
    store = db_settings.resolved_storage_dir

    def files() -> set[Path]:
        return {p for p in db_settings.data_dir.rglob("*") if p.is_file()}

    before = files()
    response = client.post(
        paths["imported-text"],
        files=[("files", (raw, "Förster, Christian\n".encode(), "text/plain"))],
    )
    assert response.status_code == 200, response.text
    with get_sessionmaker(db_settings.resolved_database_url)() as session:
        (document,) = session.scalars(select(Document))
        assert document.imported_text_key is not None
    # One new file, the stored texts; nothing left in the temp folder, nothing written elsewhere.
    new = {p for p in files() - before if not p.name.startswith("histocr.db")}
    assert new == {store / document.imported_text_key}, new


def test_imported_text_files_whose_names_clean_to_the_same_are_a_422(db_settings, client_for):
    settings = db_settings
    client = client_for(settings)
    project_id = new_project(client)
    scan = tiff_bytes(((90, 60), (70, 110)))
    document_id = upload(client, project_id, ("two.tif", scan, "image/tiff")).json()["documents"][
        0
    ]["id"]
    before = stored_blobs(settings)
    files = [
        ("files", ("x/page-1.txt", b"Seite 1\n", "text/plain")),
        ("files", ("y/page-1.txt", b"Seite 2\n", "text/plain")),
    ]
    response = client.post(f"{API}/documents/{document_id}/imported-text", files=files)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "two files are named 'page-1.txt'; give each page file its own name"
    )
    assert stored_blobs(settings) == before
    with get_sessionmaker(settings.resolved_database_url)() as session:
        assert session.get_one(Document, document_id).imported_text_key is None


def check_json_body_limit(client) -> None:
    """Bodies that are not uploads are limited too (HISTOCR_MAX_BODY_KB), declared or not."""
    big = b'{"name": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    declared = client.post(
        "/api/v1/projects", content=big, headers={"content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["detail"] == "the request body is larger than the limit of 1024 KB"

    def chunks():
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = client.post(
        "/api/v1/projects", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.get("/api/v1/projects").json() == []
    small = client.post("/api/v1/projects", json={"name": "Köln 1822"})
    assert small.status_code == 201


def test_json_body_limit_sqlite(sqlite_settings, client_for):
    check_json_body_limit(client_for(sqlite_settings))
