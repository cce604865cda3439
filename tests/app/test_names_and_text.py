"""Names, file names and texts a client sends: checked at the edge, the same answer on SQLite
and PostgreSQL, and nothing half-stored when they are refused."""

import pytest

from tests.app.test_uploads import png_bytes, stored_blobs

API = "/api/v1"
BIDI_OVERRIDE = "\u202e"


def exercise(client, settings) -> None:
    for bad in ("Köln\x00 1822", "x" * 201, "two\nlines"):
        response = client.post(f"{API}/projects", json={"name": bad})
        assert response.status_code == 422, (bad, response.text)
    assert client.get(f"{API}/projects").json() == []
    project = client.post(f"{API}/projects", json={"name": "Köln 1822"}).json()

    run = client.post(f"{API}/projects/{project['id']}/runs", json={"name": "r" * 300})
    assert run.status_code == 422, run.text

    # A hostile file name is stored under a clean display name, never refused with a 500.
    raw = "..\\..\\etc/" + "a" * 600 + "\x00" + BIDI_OVERRIDE + "gnp.png"
    upload = client.post(
        f"{API}/projects/{project['id']}/documents",
        files=[("files", (raw, png_bytes(), "image/png"))],
    )
    assert upload.status_code == 201, upload.text
    name = upload.json()["documents"][0]["filename"]
    assert name.endswith(".png") and len(name) <= 200
    assert "\x00" not in name and BIDI_OVERRIDE not in name and "/" not in name
    document_id = upload.json()["documents"][0]["id"]

    before = stored_blobs(settings)
    truth = client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": ("gt.txt", "Förster,\x00 Christian\n".encode(), "text/plain")},
    )
    assert truth.status_code == 422 and "NUL" in truth.json()["detail"], truth.text
    assert stored_blobs(settings) == before
    assert client.get(f"{API}/documents/{document_id}/ground-truth").json() == []

    named = client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": ("..", "Förster, Christian\n".encode(), "text/plain")},
    )
    assert named.status_code == 201, named.text
    assert named.json()["filename"] == "ground-truth"


def test_sqlite(sqlite_settings, client_for):
    exercise(client_for(sqlite_settings), sqlite_settings)


@pytest.mark.postgres
def test_postgres(postgres_settings, client_for):
    exercise(client_for(postgres_settings), postgres_settings)
