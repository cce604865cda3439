"""Ids outside the databases' integer range are a 422 that names the limit, never a 500."""

import pytest

TOO_BIG = [2_147_483_648, 9_223_372_036_854_775_808, 2**70]


def routes(big: int) -> list[str]:
    return [
        f"/api/v1/runs/{big}",
        f"/api/v1/runs/{big}/metrics",
        f"/api/v1/pages/{big}/image",
        f"/api/v1/projects/{big}/documents",
        f"/api/v1/documents/{big}",
    ]


def check(client, big: int) -> None:
    for route in routes(big):
        response = client.get(route)
        assert response.status_code == 422, (route, response.status_code, response.text)
        assert "2147483647" in response.text, response.text
    project = client.post("/api/v1/projects", json={"name": f"ids {big}"}).json()
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"document_ids": [big]})
    assert run.status_code == 422, run.text
    # With an unknown run first, the run's 404 comes before the page id's limit: never a 500.
    assert client.get(f"/api/v1/runs/1/pages/{big}").status_code in (404, 422)
    assert client.get("/api/v1/runs/0").status_code == 422
    assert client.get("/api/v1/runs/2147483647").status_code == 404  # in range, just not there


@pytest.mark.parametrize("big", TOO_BIG)
def test_sqlite(sqlite_settings, client_for, big):
    check(client_for(sqlite_settings), big)


@pytest.mark.postgres
@pytest.mark.parametrize("big", TOO_BIG[:1])
def test_postgres(postgres_settings, client_for, big):
    check(client_for(postgres_settings), big)
