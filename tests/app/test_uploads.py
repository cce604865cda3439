"""Uploading scans through the HTTP API: good files are stored once, bad ones leave nothing."""

import hashlib
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from app.config import Settings
from app.pipeline.celery_app import create_celery
from tests.helpers import RecordingDispatcher
from workers.context import make_context
from workers.tasks.ingest import ingest_document

API = "/api/v1"


def page_image(size: tuple[int, int], label: str, mode: str = "L") -> Image.Image:
    """A small white page with a black bar and a label, distinct per label."""
    image = Image.new(mode, size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((5, 5, size[0] // 2, 12), fill="black")
    draw.text((5, 20), label, fill="black")
    return image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_bytes(label: str = "png", size: tuple[int, int] = (120, 80)) -> bytes:
    return encode(page_image(size, label), "PNG")


def jpeg_bytes(label: str = "jpeg", size: tuple[int, int] = (100, 140)) -> bytes:
    return encode(page_image(size, label, "RGB"), "JPEG", quality=90)


def tiff_bytes(sizes: tuple[tuple[int, int], ...] = ((90, 60), (70, 110))) -> bytes:
    frames = [page_image(size, f"page {n}") for n, size in enumerate(sizes, start=1)]
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def new_project(client: TestClient, name: str = "Köln 1822") -> int:
    response = client.post(f"{API}/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def upload(client: TestClient, project_id: int, *files: tuple[str, bytes, str]):
    return client.post(
        f"{API}/projects/{project_id}/documents",
        files=[("files", (name, data, content_type)) for name, data, content_type in files],
    )


def stored_blobs(settings: Settings) -> list[Path]:
    """Every file in the store, ignoring empty folders (such as the spool folder `tmp/`)."""
    root = settings.resolved_storage_dir
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_nothing_stored(client: TestClient, settings: Settings, project_id: int) -> None:
    listing = client.get(f"{API}/projects/{project_id}/documents")
    assert listing.status_code == 200
    assert listing.json() == []
    assert stored_blobs(settings) == []


@pytest.fixture
def client(sqlite_settings, client_for) -> TestClient:
    return client_for(sqlite_settings)


# --- refused uploads -------------------------------------------------------------------------

TRUNCATED_PNG = png_bytes("truncated", (400, 300))[:-200]


def encrypted_pdf() -> bytes:
    """A one-page PDF that opens only with a user password (RC4: no crypto library needed)."""
    from pypdf import PdfReader, PdfWriter

    plain = io.BytesIO()
    Image.new("L", (200, 300), "white").save(plain, format="PDF")
    writer = PdfWriter()
    writer.add_page(PdfReader(io.BytesIO(plain.getvalue())).pages[0])
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BAD_UPLOADS = [
    pytest.param("empty.pdf", b"", "application/pdf", "empty", id="empty"),
    pytest.param(
        "broken.pdf",
        b"%PDF-1.4\n" + bytes(range(256)) * 8,
        "application/pdf",
        "not a readable PDF",
        id="corrupt-pdf",
    ),
    pytest.param(
        "notes.png",
        "Förster, Christian, Fabrikmeister\n".encode() * 20,
        "image/png",
        "not a PDF, PNG, JPEG or TIFF",
        id="text-named-png",
    ),
    pytest.param("cut.png", TRUNCATED_PNG, "image/png", "not a readable image", id="truncated-png"),
    pytest.param(
        "locked.pdf",
        encrypted_pdf(),
        "application/pdf",
        "encrypted and needs a password",
        id="encrypted-pdf",
    ),
]


@pytest.mark.parametrize(("name", "data", "content_type", "reason"), BAD_UPLOADS)
def test_bad_file_is_refused_with_its_name_and_reason_and_nothing_is_stored(
    client, sqlite_settings, name, data, content_type, reason
):
    project_id = new_project(client)
    response = upload(client, project_id, (name, data, content_type))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert name in detail and reason in detail, detail
    assert "Traceback" not in response.text
    assert_nothing_stored(client, sqlite_settings, project_id)


def test_one_bad_file_refuses_the_whole_upload(client, sqlite_settings):
    project_id = new_project(client)
    response = upload(
        client,
        project_id,
        ("good-1.png", png_bytes("one"), "image/png"),
        ("good-2.jpg", jpeg_bytes("two"), "image/jpeg"),
        ("bad.tif", b"II*\x00" + b"\x00" * 64, "image/tiff"),
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "bad.tif" in detail and "not a readable image" in detail
    assert "good-1.png" not in detail
    assert_nothing_stored(client, sqlite_settings, project_id)


def test_file_over_the_size_limit_is_refused_with_413(sqlite_settings, client_for):
    settings = sqlite_settings.model_copy(update={"max_upload_mb": 0.01})  # 10,485 bytes
    client = client_for(settings)
    project_id = new_project(client)
    small = png_bytes("small")
    assert len(small) < settings.max_upload_bytes
    noise = Image.effect_noise((200, 200), 64).convert("L")
    big = encode(noise, "PNG")
    assert settings.max_upload_bytes < len(big) < 1024 * 1024

    response = upload(
        client, project_id, ("small.png", small, "image/png"), ("big.png", big, "image/png")
    )
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "big.png" in detail and "limit" in detail and "0.01 MB" in detail, detail
    assert_nothing_stored(client, settings, project_id)

    # The same limit lets a small file through.
    assert upload(client, project_id, ("small.png", small, "image/png")).status_code == 201


def test_request_far_over_the_size_limit_is_refused_with_413_naming_the_file(
    sqlite_settings, client_for
):
    settings = sqlite_settings.model_copy(update={"max_upload_mb": 0.01})
    client = client_for(settings)
    project_id = new_project(client)
    huge = encode(Image.effect_noise((1200, 1200), 64).convert("L"), "PNG")
    assert len(huge) > settings.max_upload_bytes + 1024 * 1024

    response = upload(client, project_id, ("huge-scan.png", huge, "image/png"))
    assert response.status_code == 413, response.text
    detail = response.json()["detail"]
    assert "limit" in detail
    assert "huge-scan.png" in detail, detail
    assert_nothing_stored(client, settings, project_id)


def test_upload_to_unknown_project_is_404_with_a_message(client, sqlite_settings):
    response = upload(client, 4711, ("page.png", png_bytes(), "image/png"))
    assert response.status_code == 404
    assert response.json()["detail"] == "project 4711 not found"
    assert stored_blobs(sqlite_settings) == []


def test_upload_without_files_is_refused(client):
    project_id = new_project(client)
    response = client.post(f"{API}/projects/{project_id}/documents", data={"start_run": "false"})
    assert response.status_code == 422
    assert "files" in response.text


# --- accepted uploads ------------------------------------------------------------------------

GOOD_UPLOADS = [
    pytest.param("scan.png", png_bytes, "image/png", ".png", 1, id="png"),
    pytest.param("scan.jpeg", jpeg_bytes, "image/jpeg", ".jpg", 1, id="jpeg"),
    pytest.param("scan.tiff", tiff_bytes, "image/tiff", ".tif", 2, id="tiff-2-pages"),
]


@pytest.mark.parametrize(("name", "make", "media_type", "suffix", "pages"), GOOD_UPLOADS)
def test_good_upload_is_stored_once_and_a_reupload_finds_it(
    client, sqlite_settings, name, make, media_type, suffix, pages
):
    project_id = new_project(client)
    data = make()
    # The content decides the type, not the name or the declared content type.
    response = upload(client, project_id, (name, data, "application/octet-stream"))
    assert response.status_code == 201, response.text
    (document,) = response.json()["documents"]
    assert document["media_type"] == media_type
    assert document["page_count"] == pages
    assert document["filename"] == name
    assert document["size_bytes"] == len(data)
    assert document["sha256"] == hashlib.sha256(data).hexdigest()
    assert document["status"] == "uploaded"
    assert document["duplicate"] is False

    blobs = stored_blobs(sqlite_settings)
    assert [b.name for b in blobs] == [document["sha256"] + suffix]
    assert blobs[0].read_bytes() == data
    download = client.get(f"{API}/documents/{document['id']}/file")
    assert download.status_code == 200 and download.content == data

    again = upload(client, project_id, ("renamed" + suffix, data, media_type))
    assert again.status_code == 201, again.text
    (second,) = again.json()["documents"]
    assert second["id"] == document["id"]
    assert second["duplicate"] is True
    assert stored_blobs(sqlite_settings) == blobs
    listing = client.get(f"{API}/projects/{project_id}/documents").json()
    assert [d["id"] for d in listing] == [document["id"]]


def test_several_files_in_one_upload_each_become_a_document(client, sqlite_settings):
    project_id = new_project(client)
    response = upload(
        client,
        project_id,
        ("a.png", png_bytes("a"), "image/png"),
        ("b.jpg", jpeg_bytes("b"), "image/jpeg"),
    )
    assert response.status_code == 201, response.text
    documents = response.json()["documents"]
    assert [d["filename"] for d in documents] == ["a.png", "b.jpg"]
    assert len({d["id"] for d in documents}) == 2
    assert len(stored_blobs(sqlite_settings)) == 2


def test_upload_queues_ingest_and_ingest_stores_pages_with_their_size(
    client, sqlite_settings, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    project_id = new_project(client)
    response = upload(
        client,
        project_id,
        ("two-pages.tif", tiff_bytes(((90, 60), (70, 110))), "image/tiff"),
        ("one-page.png", png_bytes("single", (120, 80)), "image/png"),
    )
    assert response.status_code == 201, response.text
    tiff_doc, png_doc = response.json()["documents"]
    # The ingest messages wait in the filesystem broker for a worker.
    queued = list((sqlite_settings.broker_folder / "queue").glob("*.msg"))
    assert len(queued) == 2
    # The broker keeps all its files in its own folder (its exchange tables too, written when
    # a process first declares the queues), none in the current directory.
    options = create_celery(sqlite_settings).conf.broker_transport_options
    assert Path(options["control_folder"]).parent == sqlite_settings.broker_folder
    assert not (tmp_path / "control").exists()

    dispatcher = RecordingDispatcher()
    context = make_context(sqlite_settings, dispatcher)
    for document in (tiff_doc, png_doc):
        ingest_document(context, document["id"])
    assert dispatcher.sent == []  # no run was waiting for these documents

    tiff = client.get(f"{API}/documents/{tiff_doc['id']}").json()
    assert tiff["status"] == "ready" and tiff["error"] is None
    assert tiff["page_count"] == tiff["pages_ingested"] == 2
    assert [(p["number"], p["width"], p["height"]) for p in tiff["pages"]] == [
        (1, 90, 60),
        (2, 70, 110),
    ]
    png = client.get(f"{API}/documents/{png_doc['id']}").json()
    assert [(p["number"], p["width"], p["height"]) for p in png["pages"]] == [(1, 120, 80)]

    for page in tiff["pages"] + png["pages"]:
        image = client.get(page["image_url"])
        assert image.status_code == 200
        with Image.open(io.BytesIO(image.content)) as rendered:
            assert rendered.format == "PNG"
            assert rendered.size == (page["width"], page["height"])
        preview = client.get(page["preview_url"])
        assert preview.status_code == 200
        with Image.open(io.BytesIO(preview.content)) as small:
            assert small.format == "JPEG"

    # Ingest is idempotent: running it again for a ready document changes nothing.
    ingest_document(context, tiff_doc["id"])
    again = client.get(f"{API}/documents/{tiff_doc['id']}").json()
    assert [p["id"] for p in again["pages"]] == [p["id"] for p in tiff["pages"]]


def test_same_file_twice_in_one_upload_is_one_document(client, sqlite_settings):
    project_id = new_project(client)
    data = png_bytes("twice")
    response = upload(
        client, project_id, ("first.png", data, "image/png"), ("second.png", data, "image/png")
    )
    assert response.status_code == 201, response.text
    first, second = response.json()["documents"]
    assert first["id"] == second["id"]
    assert (first["duplicate"], second["duplicate"]) == (False, True)
    assert len(stored_blobs(sqlite_settings)) == 1
    assert len(client.get(f"{API}/projects/{project_id}/documents").json()) == 1


def test_same_file_in_two_projects_is_a_document_in_each(client, sqlite_settings):
    data = png_bytes("shared")
    ids = []
    for name in ("Bonn 1800", "Bonn 1801"):
        response = upload(client, new_project(client, name), ("scan.png", data, "image/png"))
        assert response.status_code == 201, response.text
        (document,) = response.json()["documents"]
        assert document["duplicate"] is False
        ids.append(document["id"])
    assert ids[0] != ids[1]
    assert len(stored_blobs(sqlite_settings)) == 1  # the bytes are stored once all the same


def test_document_with_more_pages_than_the_limit_is_refused(sqlite_settings, client_for):
    settings = sqlite_settings.model_copy(update={"max_pages_per_document": 1})
    client = client_for(settings)
    project_id = new_project(client)
    response = upload(client, project_id, ("two.tif", tiff_bytes(), "image/tiff"))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "two.tif" in detail and "2 pages" in detail and "limit of 1" in detail, detail
    assert_nothing_stored(client, settings, project_id)


def test_image_over_the_pixel_limit_is_refused(sqlite_settings, client_for):
    settings = sqlite_settings.model_copy(update={"max_image_pixels": 1_000_000})
    client = client_for(settings)
    project_id = new_project(client)
    large = encode(Image.new("L", (1100, 1000), "white"), "PNG")  # 1.1 million pixels
    response = upload(client, project_id, ("large.png", large, "image/png"))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "large.png" in detail and "too large" in detail, detail
    assert_nothing_stored(client, settings, project_id)


def test_ingest_prepares_pages_for_a_configured_mllm_endpoint(sqlite_settings, client_for):
    # With an endpoint configured, each page is encoded once at ingest as the endpoint wants
    # it, so runs only read files; without one, nothing is prepared.
    for model, expected in (("", 0), ("qwen2.5-vl", 2)):
        settings = sqlite_settings.model_copy(
            update={"openai": sqlite_settings.openai.model_copy(update={"model": model})}
        )
        client = client_for(settings)
        project_id = new_project(client, f"prepared {model}")
        response = upload(
            client, project_id, ("two.tif", tiff_bytes(((90, 60), (70, 110))), "image/tiff")
        )
        context = make_context(settings, RecordingDispatcher())
        ingest_document(context, response.json()["documents"][0]["id"])
        kept = list(settings.image_cache_dir.rglob("*.jpeg"))
        assert len(kept) == expected
