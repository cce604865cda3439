"""Engine endpoints are server configuration: a run names one, never a URL, key or variable.

The attack this closes: a run that set `base_url` (or a key variable) made the web process's
preflight and the worker send `Authorization: Bearer <key>` to any host the client named.
"""

import json
import socket
import threading
from collections.abc import Iterator

import pytest
from pydantic import SecretStr, ValidationError
from sqlalchemy import select

from app.config import Settings
from app.db.session import session_scope
from app.db.tables import Run
from app.pipeline.engines import engine_environment
from models.openai_spec import EndpointSettings, client_config
from tests.fakes.openai_server import Reply
from tests.test_flow import wait_for_run

MODEL = "fake-vlm"
OTHER_MODEL = "fake-vlm-2"
KEY = "sk-default-0123456789"
OTHER_KEY = "sk-second-9876543210"
URL_PASSWORD = "pa55word-in-url"
LINES = "Meier, Anna, Naeherin, Markt 1.\nKoch, Carl, Schmied, Graben 2."


class Listener:
    """A TCP port that records every connection made to it (and answers nothing)."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.socket.settimeout(0.1)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.socket.getsockname()[1]}/v1"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.socket.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    heard = Listener()
    yield heard
    heard.close()


def with_endpoints(settings: Settings, default_url: str, **named: EndpointSettings) -> Settings:
    """`settings` whose default endpoint is `default_url` (key KEY) plus the named endpoints."""
    openai = settings.openai.model_copy(
        update={
            "base_url": default_url,
            "model": MODEL,
            "api_key": SecretStr(KEY),
            "endpoints": named,
        }
    )
    return settings.model_copy(update={"openai": openai})


def project_with_text(client) -> int:
    project = client.post("/api/v1/projects", json={"name": "endpoints"}).json()
    upload = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("page.txt", LINES.encode(), "text/plain")},
    )
    assert upload.status_code == 201, upload.text
    return int(project["id"])


def test_named_endpoints_come_from_histocr_endpoints_variables(monkeypatch) -> None:
    environment = {
        "HISTOCR_OPENAI_BASE_URL": "http://127.0.0.1:8001/v1",
        "HISTOCR_OPENAI_API_KEY": KEY,
        "HISTOCR_OPENAI_MODEL": MODEL,
        "HISTOCR_ENDPOINTS__gemini__BASE_URL": "https://generativelanguage.example/v1beta/openai",
        "HISTOCR_ENDPOINTS__gemini__API_KEY": OTHER_KEY,
        "HISTOCR_ENDPOINTS__gemini__MODEL": "gemini-2.0-flash",
        "HISTOCR_ENDPOINTS__gemini__MAX_IN_FLIGHT": "16",
        "HISTOCR_ENDPOINTS__gemini__TIMEOUT_S": "60",
        "HISTOCR_ENDPOINTS__local__BASE_URL": "http://127.0.0.1:11434/v1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings()

    gemini = settings.openai.endpoints["gemini"]
    assert gemini.base_url == "https://generativelanguage.example/v1beta/openai"
    assert gemini.api_key is not None and gemini.api_key.get_secret_value() == OTHER_KEY
    assert (gemini.model, gemini.max_in_flight, gemini.timeout_s) == ("gemini-2.0-flash", 16, 60)
    assert set(settings.openai.endpoints) == {"gemini", "local"}
    # What a worker makes of a run's endpoint name: that endpoint's URL, key and load settings.
    machine = engine_environment("openai", settings)
    chosen = client_config({"model": "gemini-2.0-flash", "endpoint": "gemini"}, machine)
    assert (chosen.base_url, chosen.api_key) == (gemini.base_url, OTHER_KEY)
    assert (chosen.max_in_flight, chosen.timeout_s) == (16, 60.0)
    local = client_config({"model": "qwen2.5vl:7b", "endpoint": "local"}, machine)
    assert local.api_key is None, "the default endpoint's key must not travel to another one"
    assert local.max_in_flight == settings.openai.max_in_flight
    default = client_config({"model": MODEL, "endpoint": "default"}, machine)
    assert (default.base_url, default.api_key) == ("http://127.0.0.1:8001/v1", KEY)
    # A run stored before endpoints had names still goes to the default endpoint, never its URL.
    legacy = client_config({"model": MODEL, "base_url": "http://elsewhere:1/v1"}, machine)
    assert legacy.base_url == "http://127.0.0.1:8001/v1"


def test_endpoints_may_be_configured_in_a_dotenv_file(monkeypatch, tmp_path) -> None:
    (tmp_path / ".env").write_text(
        f"HISTOCR_OPENAI_MODEL={MODEL}\n"
        "HISTOCR_ENDPOINTS__gemini__BASE_URL=https://g.example/v1\n"
        f"HISTOCR_ENDPOINTS__gemini__API_KEY={OTHER_KEY}\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    openai = Settings().openai
    assert openai.model == MODEL and openai.endpoints["gemini"].base_url == "https://g.example/v1"
    assert openai.endpoint_choices() == {"default": {"model": MODEL}, "gemini": {"model": None}}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("HISTOCR_ENDPOINTS__default__BASE_URL", "http://h/v1", "HISTOCR_OPENAI_"),
        ("HISTOCR_ENDPOINTS__two.words__BASE_URL", "http://h/v1", "lower-case letters"),
        ("HISTOCR_ENDPOINTS__box__BASE_URL", "file:///etc/passwd", "http:// or https://"),
    ],
)
def test_a_misconfigured_endpoint_stops_the_process_without_showing_its_key(
    monkeypatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv(variable.replace("BASE_URL", "API_KEY"), OTHER_KEY)
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert message in str(refused.value)
    assert OTHER_KEY not in str(refused.value)


def test_a_placeholder_key_of_a_named_endpoint_is_refused_outside_development(monkeypatch):
    monkeypatch.setenv("HISTOCR_ENDPOINTS__gemini__BASE_URL", "https://g.example/v1")
    monkeypatch.setenv("HISTOCR_ENDPOINTS__gemini__API_KEY", "changeme")
    assert Settings(environment="development").openai.endpoints["gemini"].api_key
    with pytest.raises(ValidationError, match="ENDPOINTS__GEMINI__API_KEY is a placeholder"):
        Settings(environment="production")


@pytest.mark.parametrize(
    "parameters",
    [
        {"base_url": "LISTENER"},
        {"api_key": "sk-chosen-by-the-client"},
        {"api_key_env": "HISTOCR_DATABASE_URL"},
        {"extra_headers": {"api-key": "x"}},
        {"endpoint": "LISTENER"},
        {"endpoint": "elsewhere"},
    ],
    ids=["base_url", "api_key", "api_key_env", "unknown", "endpoint-url", "endpoint-unknown"],
)
def test_a_run_naming_a_url_a_key_or_a_variable_is_refused_and_contacts_nobody(
    sqlite_settings, client_for, fake_openai, listener: Listener, parameters: dict
) -> None:
    default = fake_openai(model=MODEL, api_key=KEY)
    second = fake_openai(model=OTHER_MODEL, api_key=OTHER_KEY)
    settings = with_endpoints(
        sqlite_settings,
        default.base_url,
        second=EndpointSettings(
            base_url=second.base_url, api_key=SecretStr(OTHER_KEY), model=OTHER_MODEL
        ),
    )
    client = client_for(settings)
    project_id = project_with_text(client)
    given = {k: listener.url if v == "LISTENER" else v for k, v in parameters.items()}
    stages = [
        {"stage": "ocr", "engine": "import"},
        {"stage": "correct", "engine": "openai", "parameters": given},
    ]

    response = client.post(f"/api/v1/projects/{project_id}/runs", json={"stages": stages})

    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "default, second" in detail, "the refusal lists the endpoints a run may name"
    for secret in (KEY, OTHER_KEY, default.base_url, second.base_url, "127.0.0.1"):
        assert secret not in detail.replace(listener.url, ""), secret
    assert client.get(f"/api/v1/projects/{project_id}/runs").json() == []
    assert listener.connections == 0, "the web process contacted a host the client named"
    assert default.stats.unauthorized == second.stats.unauthorized == 0


@pytest.mark.e2e
def test_a_run_reaches_the_endpoint_it_names_with_that_endpoint_s_key(
    sqlite_settings, start_worker, client_for, fake_openai, monkeypatch
) -> None:
    def corrector(body: dict) -> Reply:
        assert "response_format" not in body, "extraction went to the default endpoint"
        return Reply(content=LINES)

    def extractor(body: dict) -> Reply:
        assert "response_format" in body, "the correction went to the second endpoint"
        record = {"first and middle names": "Anna", "surname": "Meier"}
        return Reply(content=json.dumps({"records": [{**record, "occupation": "", "address": ""}]}))

    default = fake_openai(model=MODEL, api_key=KEY, responder=corrector)
    second = fake_openai(model=OTHER_MODEL, api_key=OTHER_KEY, responder=extractor)
    # The same variables configure the web process (read here) and the worker (its own).
    environment = {
        "HISTOCR_OPENAI_BASE_URL": default.base_url,
        "HISTOCR_OPENAI_API_KEY": KEY,
        "HISTOCR_OPENAI_MODEL": MODEL,
        "HISTOCR_ENDPOINTS__second__BASE_URL": second.base_url,
        "HISTOCR_ENDPOINTS__second__API_KEY": OTHER_KEY,
        "HISTOCR_ENDPOINTS__second__MODEL": OTHER_MODEL,
        "HISTOCR_OPENAI_MAX_ATTEMPTS": "1",
        "HISTOCR_STAGE_MAX_ATTEMPTS": "1",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=sqlite_settings.data_dir)
    worker = start_worker(settings, **environment)
    client = client_for(settings)
    project_id = project_with_text(client)
    stages = [
        {"stage": "ocr", "engine": "import"},
        {"stage": "correct", "engine": "openai"},
        {"stage": "extract", "engine": "openai", "parameters": {"endpoint": "second"}},
    ]

    run = client.post(f"/api/v1/projects/{project_id}/runs", json={"stages": stages})

    assert run.status_code == 201, run.text
    correct, extract = run.json()["config"]["stages"][1:]
    assert (correct["parameters"]["endpoint"], correct["parameters"]["model"]) == (
        "default",
        MODEL,
    )
    assert (extract["parameters"]["endpoint"], extract["parameters"]["model"]) == (
        "second",
        OTHER_MODEL,
    ), "the stage takes the model its endpoint is configured with"
    finished = wait_for_run(client, run.json()["id"], timeout=180, workers=(worker,))
    assert finished["status"] == "done", finished
    assert len(default.received) == 1 and len(second.received) == 1
    assert default.received[0]["model"] == MODEL and second.received[0]["model"] == OTHER_MODEL
    # Each endpoint was asked with its own key only (a wrong key is counted as unauthorized).
    assert default.stats.unauthorized == second.stats.unauthorized == 0
    stored = client.get(f"/api/v1/runs/{finished['id']}").text
    for secret in (KEY, OTHER_KEY, default.base_url, second.base_url):
        assert secret not in stored


def test_keys_and_url_credentials_never_show(sqlite_settings, client_for, fake_openai) -> None:
    default = fake_openai(model=MODEL, api_key=KEY)
    # An endpoint whose URL carries credentials, and is wrong: its preflight fails (404).
    broken = fake_openai(model=OTHER_MODEL, api_key=OTHER_KEY, allow_violations=True)
    broken_url = f"http://admin:{URL_PASSWORD}@127.0.0.1:{broken.port}/wrong"
    settings = with_endpoints(
        sqlite_settings,
        default.base_url,
        broken=EndpointSettings(base_url=broken_url, api_key=SecretStr(OTHER_KEY)),
    )
    client = client_for(settings)
    project_id = project_with_text(client)
    secrets = (KEY, OTHER_KEY, URL_PASSWORD, "admin:", default.base_url, broken_url)

    def assert_clean(text: str, what: str) -> None:
        for secret in secrets:
            assert secret not in text, f"{what} shows {secret!r}"

    engines = client.get("/api/v1/engines")
    assert_clean(engines.text, "GET /engines")
    openai = next(e for e in engines.json() if e["name"] == "openai")
    endpoint = next(p for p in openai["parameters"] if p["name"] == "endpoint")
    assert endpoint["choices"] == ["default", "broken"]
    assert endpoint["choice_defaults"] == {"default": {"model": MODEL}, "broken": {"model": None}}

    refused = client.post(
        f"/api/v1/projects/{project_id}/runs",
        json={
            "stages": [
                {"stage": "ocr", "engine": "import"},
                {
                    "stage": "correct",
                    "engine": "openai",
                    "parameters": {"endpoint": "broken", "model": OTHER_MODEL},
                },
            ]
        },
    )
    assert refused.status_code == 503, refused.text
    detail = refused.json()["detail"]
    assert detail.startswith("correct stage: endpoint 'broken': HTTP 404"), detail
    assert f"127.0.0.1:{broken.port}/wrong" in detail  # where it is, for the administrator
    assert_clean(detail, "the preflight's error")

    stages = [{"stage": "ocr", "engine": "import"}, {"stage": "correct", "engine": "openai"}]
    started = client.post(f"/api/v1/projects/{project_id}/runs", json={"stages": stages})
    assert started.status_code == 201, started.text
    assert_clean(started.text, "the run API")
    assert_clean(client.get(f"/api/v1/projects/{project_id}/runs").text, "the run list")
    with session_scope(settings.resolved_database_url) as session:
        stored = session.scalars(select(Run)).one().config.model_dump_json()
    assert '"endpoint":"default"' in stored
    assert_clean(stored, "the stored run config")
