"""Starting runs: every stage checked, recorded in full, endpoints asked before anything runs."""

import socket

import pytest

from tests.helpers import PRINTED_LINES, render_page

MODEL = "fake-vlm"


@pytest.fixture
def project_with_page(sqlite_settings, client_for, tmp_path):
    def make(settings=None):
        client = client_for(settings or sqlite_settings)
        project = client.post("/api/v1/projects", json={"name": "runs"}).json()
        page = render_page(tmp_path / "page.png", PRINTED_LINES[:1])
        client.post(
            f"/api/v1/projects/{project['id']}/documents",
            files={"files": ("page.png", page.read_bytes(), "image/png")},
        )
        return client, project

    return make


def with_endpoint(settings, base_url: str, model: str = MODEL):
    openai = settings.openai.model_copy(update={"base_url": base_url, "model": model})
    return settings.model_copy(update={"openai": openai})


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([], "at least one stage"),
        ([{"stage": "ocr", "engine": "rules"}], "cannot run stage 'ocr'"),
        ([{"stage": "extract", "engine": "rules"}], "first stage must be ocr"),
        (
            [{"stage": "ocr", "engine": "tesseract"}, {"stage": "ocr", "engine": "tesseract"}],
            "appears twice",
        ),
        ([{"stage": "ocr", "engine": "tesseract", "parameters": {"psm": "many"}}], "must be int"),
        ([{"stage": "ocr", "engine": "tesseract", "parameters": {"colour": 1}}], "no parameter"),
        (
            [{"stage": "ocr", "engine": "tesseract"}, {"stage": "correct", "engine": "openai"}],
            "needs a model",
        ),
        (
            [
                {"stage": "ocr", "engine": "tesseract"},
                {"stage": "extract", "engine": "rules", "source": "correct"},
            ],
            "cannot read 'correct'",
        ),
        (
            [
                {"stage": "ocr", "engine": "tesseract"},
                {
                    "stage": "correct",
                    "engine": "openai",
                    "prompt_version": "v99",
                    "parameters": {"model": "m"},
                },
            ],
            "no prompt 'correct' version 'v99'",
        ),
        (
            [
                {"stage": "ocr", "engine": "tesseract"},
                {"stage": "extract", "engine": "rules", "inputs": "image"},
            ],
            "extracts from text only",
        ),
    ],
)
def test_bad_pipelines_are_refused_with_a_message(project_with_page, stages, message):
    client, project = project_with_page()
    response = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": stages})
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert client.get(f"/api/v1/projects/{project['id']}/runs").json() == []


def test_an_unreachable_endpoint_is_reported_before_the_run_starts(
    sqlite_settings, project_with_page
):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    client, project = project_with_page(
        with_endpoint(sqlite_settings, f"http://127.0.0.1:{port}/v1")
    )
    stages = [{"stage": "ocr", "engine": "openai"}]
    response = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": stages})
    assert response.status_code == 503
    assert response.json()["detail"].startswith("ocr stage:")
    assert f"127.0.0.1:{port}" in response.json()["detail"]
    assert client.get(f"/api/v1/projects/{project['id']}/runs").json() == []


def test_a_model_the_endpoint_does_not_serve_is_reported(
    sqlite_settings, project_with_page, fake_openai
):
    server = fake_openai(model=MODEL)
    client, project = project_with_page(with_endpoint(sqlite_settings, server.base_url, "other"))
    stages = [{"stage": "ocr", "engine": "openai"}]
    response = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": stages})
    assert response.status_code == 503
    assert "other" in response.json()["detail"] and MODEL in response.json()["detail"]


def test_a_run_records_everything_that_decides_its_output(
    sqlite_settings, project_with_page, fake_openai
):
    server = fake_openai(model=MODEL)
    client, project = project_with_page(with_endpoint(sqlite_settings, server.base_url))
    stages = [
        {"stage": "ocr", "engine": "tesseract", "parameters": {"psm": 6}},
        {"stage": "correct", "engine": "openai", "parameters": {"image_max_side": 2000}},
        {"stage": "extract", "engine": "rules"},
    ]
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": stages})
    assert run.status_code == 201, run.text
    config = run.json()["config"]
    ocr, correct, extract = config["stages"]
    assert ocr["parameters"] == {
        "languages": "frak2021",
        "psm": 6,
        "oem": 1,
        "timeout_s": 300.0,
        "orientation": False,
        "crop": True,
        "deskew": True,
        "contrast": "normalise",
        "upscale_below_pitch": 48,
        "transcription": "normalised",
        "reading": "page",
        "recognizer": "base",  # the project has no trained version: the shipped model
    }
    assert correct["parameters"]["model"] == MODEL
    assert correct["parameters"]["image_max_side"] == 2000
    # The endpoint by name: where it is and its key stay this installation's settings.
    assert correct["parameters"]["endpoint"] == "default"
    assert server.base_url not in run.text
    assert correct["source"] == "ocr" and correct["prompt_version"] == "v1"
    assert correct["prompt"].startswith("You are correcting")
    assert extract["source"] == "correct" and extract["prompt"] is None
    assert config["schema_fields"] == ["first and middle names", "surname", "occupation", "address"]
    # The resolution is a fact of the rendered pages, not of the web process's settings.
    assert "render_dpi" not in config and run.json()["page_dpi"] == []
    assert correct["message_format"] == "openai-chat-v1" and ocr["message_format"] is None
