"""The API documentation works without internet: every asset comes from histocr itself."""

import re

import pytest

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
#: Where an asset of the page is loaded from in its inline script (Swagger UI's spec URL).
SCRIPT_URL = re.compile(r"""url:\s*["']([^"']+)["']""")


@pytest.fixture
def client(sqlite_settings, client_for):
    return client_for(sqlite_settings)


@pytest.mark.parametrize(
    ("page", "marker"),
    [("/docs", "SwaggerUIBundle"), ("/redoc", "Redoc")],
)
def test_documentation_pages_load_everything_from_the_app(client, page, marker):
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", html, re.IGNORECASE), html
    assets = ASSET.findall(html) + SCRIPT_URL.findall(html)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html
    for asset in assets:
        assert asset.startswith("/"), asset
        loaded = client.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.content, asset
    assert any(marker in client.get(s).text for s in scripts)


def test_the_openapi_schema_is_served(client):
    schema = client.get("/openapi.json").json()
    assert "/api/v1/projects" in schema["paths"]
