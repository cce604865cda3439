"""Accounts: who may reach what, tokens, browser sessions with CSRF, single-user mode, headers.

The anonymous checks are generated from the app's route table, so a new route cannot forget
authentication.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text
from starlette.routing import BaseRoute

from app.cli import cli
from app.config import Settings
from app.db.session import session_scope
from app.main import create_app
from app.services import accounts
from tests.conftest import settings_env

LOOPBACK = ("127.0.0.1", 50000)
PUBLIC = {"/healthz", "/login"}


def client(settings: Settings, host: tuple[str, int] = LOOPBACK, base: str = "") -> TestClient:
    return TestClient(
        create_app(settings), base_url=base or "http://127.0.0.1:8000", client=host,
        follow_redirects=False,
    )  # fmt: skip


def make_user(settings: Settings, name: str, *, admin: bool = False) -> str:
    with session_scope(settings.resolved_database_url) as session:
        _, password = accounts.create_user(session, name, admin=admin)
    return password


def make_token(settings: Settings, name: str, *, read_only: bool = False) -> str:
    with session_scope(settings.resolved_database_url) as session:
        user = accounts.user_named(session, name)
        _, secret = accounts.create_token(session, user, read_only=read_only)
    return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def route_table(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, bool]]:
    """(method, path, in the API) for every route of the app, through included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:  # FastAPI ≥ 0.13x keeps included routers as one route each
            yield from route_table(included.routes, prefix + route.include_context.prefix)
            continue
        path = prefix + getattr(route, "path", "")
        for method in sorted((getattr(route, "methods", None) or set()) - {"HEAD"}):
            yield method, path, path.startswith("/api/")


def test_every_route_refuses_anonymous_requests_when_auth_is_required(sqlite_settings):
    settings = sqlite_settings.model_copy(update={"auth_required": True})
    app = create_app(settings)
    anonymous = TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False)
    checked = 0
    for method, path, api in route_table(app.routes):
        if path in PUBLIC:
            continue
        url = _concrete(path)
        if api:
            answer = anonymous.request(method, url)
            assert answer.status_code == 401, (method, url, answer.text)
            assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        else:
            answer = anonymous.request(method, url, headers={"Accept": "text/html"})
            if method == "GET":
                assert answer.status_code == 303, (method, url)
                assert answer.headers["location"].startswith("/login?next=")
            else:
                assert answer.status_code == 401, (method, url)
        checked += 1
    assert checked > 40  # the API, its documentation and the pages
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/login").status_code == 200


def test_single_user_mode_only_on_loopback_and_only_without_users(sqlite_settings):
    assert client(sqlite_settings).get("/api/v1/projects").status_code == 200
    assert client(sqlite_settings).get("/api/v1/me").json()["mode"] == "single-user"
    # Another machine, or a page whose host name resolves to 127.0.0.1 (DNS rebinding).
    assert client(sqlite_settings, ("10.0.0.5", 4000)).get("/api/v1/projects").status_code == 401
    rebound = client(sqlite_settings, base="http://evil.example:8000")
    assert rebound.get("/api/v1/projects").status_code == 401
    # Listening on every address, or told to: accounts are required even from loopback.
    public = sqlite_settings.model_copy(update={"host": "0.0.0.0"})
    assert client(public).get("/api/v1/projects").status_code == 401
    forced = sqlite_settings.model_copy(update={"auth_required": True})
    assert client(forced).get("/api/v1/projects").status_code == 401
    # The first user ends single-user mode.
    make_user(sqlite_settings, "ada", admin=True)
    assert client(sqlite_settings).get("/api/v1/projects").status_code == 401


def test_cli_prints_password_and_token_alone_and_stores_only_a_hash(sqlite_settings):
    runner = CliRunner()
    env = settings_env(sqlite_settings)
    made = runner.invoke(cli, ["users", "create", "ada", "--admin"], env=env)
    assert made.exit_code == 0, made.output
    password = made.stdout.strip()
    assert len(password.splitlines()) == 1 and len(password) >= 12
    issued = runner.invoke(cli, ["tokens", "create", "ada", "--read-only"], env=env)
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip()
    assert token.startswith("hocr_") and "\n" not in token
    again = runner.invoke(cli, ["users", "create", "ada"], env=env)
    assert again.exit_code != 0 and "exists" in again.output
    unknown = runner.invoke(cli, ["tokens", "create", "nobody"], env=env)
    assert unknown.exit_code != 0 and "no user called 'nobody'" in unknown.output

    # Neither secret is anywhere in the database, in any table.
    with session_scope(sqlite_settings.resolved_database_url) as session:
        dump = "\n".join(
            str(row)
            for table in ("users", "api_tokens", "audit_events")
            for row in session.execute(text(f"SELECT * FROM {table}"))
        )
    assert token not in dump and token[5:] not in dump and password not in dump
    assert "ada" in dump  # the rows are there

    api = client(sqlite_settings)
    assert api.get("/api/v1/me", headers=bearer(token)).json()["name"] == "ada"
    assert api.get("/api/v1/projects", headers=bearer(token)).status_code == 200
    refused = api.post("/api/v1/projects", json={"name": "x"}, headers=bearer(token))
    assert refused.status_code == 403 and "read-only" in refused.json()["detail"]
    assert api.get("/api/v1/projects", headers=bearer(token + "x")).status_code == 401


def test_tokens_are_revocable_and_expire(sqlite_settings):
    make_user(sqlite_settings, "ada", admin=True)
    token = make_token(sqlite_settings, "ada")
    api = client(sqlite_settings)
    made = api.post(
        "/api/v1/tokens", json={"name": "harvest", "expires_days": 1}, headers=bearer(token)
    )
    assert made.status_code == 201
    second = made.json()["token"]
    listed = api.get("/api/v1/tokens", headers=bearer(token)).json()
    assert {t["name"] for t in listed} == {"", "harvest"}
    assert all("token" not in t and second not in str(t) for t in listed)
    assert api.get("/api/v1/projects", headers=bearer(second)).status_code == 200
    assert (
        api.delete(f"/api/v1/tokens/{made.json()['id']}", headers=bearer(token)).status_code == 204
    )
    assert api.get("/api/v1/projects", headers=bearer(second)).status_code == 401
    with session_scope(sqlite_settings.resolved_database_url) as session:
        session.execute(text("UPDATE api_tokens SET expires_at = '2020-01-01 00:00:00'"))
    fresh = client(sqlite_settings)  # a new process: nothing cached
    assert fresh.get("/api/v1/projects", headers=bearer(token)).status_code == 401


def _roles(settings: Settings) -> tuple[TestClient, dict[str, str], int]:
    for name in ("owner", "editor", "viewer", "stranger"):
        make_user(settings, name)
    tokens = {
        name: make_token(settings, name) for name in ("owner", "editor", "viewer", "stranger")
    }
    api = client(settings)
    project = api.post(
        "/api/v1/projects", json={"name": "Köln 1822"}, headers=bearer(tokens["owner"])
    )
    assert project.status_code == 201
    pid = project.json()["id"]
    for name, role in (("editor", "editor"), ("viewer", "viewer")):
        put = api.put(f"/api/v1/projects/{pid}/members/{name}", json={"role": role},
                      headers=bearer(tokens["owner"]))  # fmt: skip
        assert put.status_code == 200, put.text
    return api, tokens, pid


def check_roles(settings: Settings) -> None:
    api, tokens, pid = _roles(settings)
    as_ = {name: bearer(token) for name, token in tokens.items()}
    assert api.get(f"/api/v1/projects/{pid}", headers=as_["viewer"]).status_code == 200
    # A viewer cannot write: upload, ground truth, runs.
    scan = ("scan.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png")
    upload = api.post(
        f"/api/v1/projects/{pid}/documents", files={"files": scan}, headers=as_["viewer"]
    )
    assert upload.status_code == 403 and "editor" in upload.json()["detail"]
    run = api.post(f"/api/v1/projects/{pid}/runs", json={}, headers=as_["viewer"])
    assert run.status_code == 403
    # An editor can write but cannot manage members.
    manage = api.put(f"/api/v1/projects/{pid}/members/stranger", json={"role": "viewer"},
                     headers=as_["editor"])  # fmt: skip
    assert manage.status_code == 403 and "owner" in manage.json()["detail"]
    # A stranger does not even learn that the project exists.
    assert api.get(f"/api/v1/projects/{pid}", headers=as_["stranger"]).status_code == 404
    assert api.get("/api/v1/projects", headers=as_["stranger"]).json() == []
    assert [p["id"] for p in api.get("/api/v1/projects", headers=as_["viewer"]).json()] == [pid]
    members = api.get(f"/api/v1/projects/{pid}/members", headers=as_["viewer"]).json()
    assert {(m["name"], m["role"]) for m in members} == {
        ("owner", "owner"), ("editor", "editor"), ("viewer", "viewer"),
    }  # fmt: skip
    # The last owner cannot be removed; the audit trail names who did what.
    last = api.delete(f"/api/v1/projects/{pid}/members/owner", headers=as_["owner"])
    assert last.status_code == 409
    trail = api.get(f"/api/v1/projects/{pid}/audit", headers=as_["viewer"]).json()
    done = {(e["actor"], e["action"], e["target_type"]) for e in trail}
    assert ("owner", "create", "project") in done
    assert ("owner", "create", "membership") in done


def test_roles_sqlite(sqlite_settings):
    check_roles(sqlite_settings)


@pytest.mark.postgres
def test_roles_postgres(postgres_settings):
    check_roles(postgres_settings)


def _login(api: TestClient, name: str, password: str) -> str:
    answer = api.post("/login", data={"username": name, "password": password, "next": "/"})
    assert answer.status_code == 303, answer.text
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = api.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, "the page carries the CSRF token for its scripts"
    return match.group(1)


def test_browser_session_needs_the_csrf_token_and_cross_site_posts_are_refused(sqlite_settings):
    password = make_user(sqlite_settings, "ada", admin=True)
    api = client(sqlite_settings)
    wrong = api.post("/login", data={"username": "ada", "password": "nope"})
    assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    csrf = _login(api, "ada", password)
    assert api.get("/api/v1/me").json()["name"] == "ada"
    # A cross-site form (the attack of issue 9): the cookie rides along, the token cannot.
    forged = api.post("/api/v1/projects", json={"name": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
    attack = api.post(
        "/api/v1/projects/1/documents",
        files={"files": ("a.png", b"x", "image/png")},
        data={"start_run": "true"},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert attack.status_code == 403
    made = api.post("/api/v1/projects", json={"name": "mine"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    assert [p["name"] for p in api.get("/api/v1/projects").json()] == ["mine"]
    # Logging out ends the session on the server, not only in this browser.
    cookie = api.cookies.get("histocr_session")
    assert api.post("/logout", data={"csrf_token": csrf}).status_code == 303
    replay = client(sqlite_settings)
    replay.cookies.set("histocr_session", cookie)
    assert replay.get("/api/v1/me").status_code == 401


def test_cross_site_posts_are_refused_in_single_user_mode_and_store_nothing(sqlite_settings):
    api = client(sqlite_settings)
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://127.0.0.1:9999"}):  # fmt: skip
        answer = api.post("/api/v1/projects", json={"name": "forged"}, headers=headers)
        assert answer.status_code == 403, headers
    assert api.get("/api/v1/projects").json() == []
    same = api.post(
        "/api/v1/projects", json={"name": "ok"}, headers={"Origin": "http://127.0.0.1:8000"}
    )
    assert same.status_code == 201


def test_login_failures_are_rate_limited(sqlite_settings):
    settings = sqlite_settings.model_copy(update={"login_failures_per_5_min": 3})
    password = make_user(settings, "ada")
    api = client(settings)
    for _ in range(3):
        assert api.post("/login", data={"username": "ada", "password": "x"}).status_code == 401
    blocked = api.post("/login", data={"username": "ada", "password": password})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


def test_quota_counts_runs_and_uploads_per_user(sqlite_settings, tmp_path: Path):
    make_user(sqlite_settings, "ada")
    token = make_token(sqlite_settings, "ada")
    with session_scope(sqlite_settings.resolved_database_url) as session:
        session.execute(text("UPDATE users SET quota_uploads_per_day = 1"))
    api = client(sqlite_settings)
    pid = api.post("/api/v1/projects", json={"name": "q"}, headers=bearer(token)).json()["id"]
    from tests.helpers import render_page

    first = render_page(tmp_path / "a.png", ["Förster, Christian, Fabrikmeister"])
    second = render_page(tmp_path / "b.png", ["Müller, Peter, Bäcker"])
    ok = api.post(f"/api/v1/projects/{pid}/documents", headers=bearer(token),
                  files={"files": ("a.png", first.read_bytes(), "image/png")})  # fmt: skip
    assert ok.status_code == 201, ok.text
    over = api.post(f"/api/v1/projects/{pid}/documents", headers=bearer(token),
                    files={"files": ("b.png", second.read_bytes(), "image/png")})  # fmt: skip
    assert over.status_code == 429 and "quota" in over.json()["detail"]
    assert over.headers["Retry-After"]
    listed = api.get(f"/api/v1/projects/{pid}/documents", headers=bearer(token)).json()
    assert [d["filename"] for d in listed] == ["a.png"]


def test_security_headers_and_no_inline_script(sqlite_settings):
    api = client(sqlite_settings)
    for path in ("/", "/api/v1/projects", "/login"):
        answer = api.get(path)
        policy = answer.headers["Content-Security-Policy"]
        script = re.search(r"script-src ([^;]*)", policy).group(1)
        assert "unsafe-inline" not in script and "frame-ancestors 'none'" in policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["Referrer-Policy"] == "same-origin"
    # The API documentation's one inline script is allowed by its hash, nothing else.
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert re.search(
        r"script-src 'self' 'sha256-[A-Za-z0-9+/=]+';", docs.headers["Content-Security-Policy"]
    )
    assert (
        api.get("/docs").headers["Content-Security-Policy"]
        == docs.headers["Content-Security-Policy"]
    )


def check_concurrent_quota(settings: Settings, tmp_path: Path) -> None:
    """Two uploads of one user at the same moment with one upload left: exactly one is stored."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from tests.helpers import render_page

    make_user(settings, "ada")
    token = make_token(settings, "ada")
    api = client(settings)
    pid = api.post("/api/v1/projects", json={"name": "q"}, headers=bearer(token)).json()["id"]
    with session_scope(settings.resolved_database_url) as session:
        session.execute(text("UPDATE users SET quota_uploads_per_day = 1"))
    scans = [render_page(tmp_path / f"{n}.png", [f"Zeile {n}, Bäcker"]) for n in range(4)]
    barrier = Barrier(len(scans))

    def upload(path: Path) -> int:
        mine = client(settings)
        barrier.wait()
        files = {"files": (path.name, path.read_bytes(), "image/png")}
        answer = mine.post(f"/api/v1/projects/{pid}/documents", files=files, headers=bearer(token))
        return answer.status_code

    with ThreadPoolExecutor(len(scans)) as pool:
        statuses = sorted(pool.map(upload, scans))
    assert statuses == [201, 429, 429, 429]
    listed = api.get(f"/api/v1/projects/{pid}/documents", headers=bearer(token)).json()
    assert len(listed) == 1


def test_concurrent_uploads_respect_the_quota_sqlite(sqlite_settings, tmp_path):
    check_concurrent_quota(sqlite_settings, tmp_path)


@pytest.mark.postgres
def test_concurrent_uploads_respect_the_quota_postgres(postgres_settings, tmp_path):
    check_concurrent_quota(postgres_settings, tmp_path)
