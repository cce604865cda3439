"""The browser UI in headless Chromium: the run form starts the pipeline the user chose."""

from collections.abc import Iterator

import pytest

from app.config import Settings
from models.openai_spec import EndpointSettings
from tests.helpers import RecordingDispatcher
from tests.helpers import live_app as live_app_server
from workers.context import make_context
from workers.tasks.ingest import ingest_document


@pytest.fixture
def live_app(sqlite_settings: Settings, fake_openai) -> Iterator[tuple[str, Settings]]:  # type: ignore[no-untyped-def]
    """The real app on a real port, two mLLM endpoints configured (no worker: the started runs
    wait in the broker)."""
    endpoint = fake_openai(model="fake-vlm")
    second = fake_openai(model="second-vlm")
    named = {"second": EndpointSettings(base_url=second.base_url, model="second-vlm")}
    settings = sqlite_settings.model_copy(
        update={
            "openai": sqlite_settings.openai.model_copy(
                update={"base_url": endpoint.base_url, "model": "fake-vlm", "endpoints": named}
            )
        }
    )
    with live_app_server(settings) as base:
        yield base, settings


def _project_with_a_page(base: str, settings: Settings) -> int:
    import httpx

    with httpx.Client(base_url=base, timeout=30) as client:
        project = client.post("/api/v1/projects", json={"name": "Köln 1822"}).json()
        text = "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n".encode()
        upload = client.post(
            f"/api/v1/projects/{project['id']}/documents",
            files={"files": ("page.txt", text, "text/plain")},
        )
        assert upload.status_code == 201, upload.text
    context = make_context(settings, RecordingDispatcher())
    ingest_document(context, upload.json()["documents"][0]["id"])
    return int(project["id"])


def _choose(driver, select_id: str, value: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def test_the_run_form_starts_the_chosen_pipeline_and_shows_refusals(live_app, browser):
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, settings = live_app
    project_id = _project_with_a_page(base, settings)
    browser.get(f"{base}/projects/{project_id}")
    wait = WebDriverWait(browser, 20)
    # The engine lists come from /api/v1/engines.
    options = "#correct-engine option"
    wait.until(
        lambda d: (
            "openai"
            in [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, options)]
        )
    )

    # An extraction the engine cannot do: the API's refusal shows in the form, nothing starts.
    _choose(browser, "ocr-engine", "tesseract")
    _choose(browser, "extract-engine", "rules")
    _choose(browser, "extract-inputs", "image")
    browser.find_element(By.CSS_SELECTOR, "#start-run-form button[type=submit]").click()
    error = browser.find_element(By.ID, "start-run-error")
    wait.until(lambda _d: error.text.strip())
    assert "rules" in error.text and "/runs/" not in browser.current_url
    assert httpx.get(f"{base}/api/v1/projects/{project_id}/runs").json() == []

    # Post-correction by the mLLM, extraction from the OCR text (not the corrected one, the
    # default): the run records the choices, and the browser goes to the run's page.
    _choose(browser, "correct-engine", "openai")
    _choose(browser, "extract-inputs", "text")
    _choose(browser, "extract-source", "ocr")
    browser.find_element(By.CSS_SELECTOR, "#start-run-form button[type=submit]").click()
    wait.until(lambda d: "/runs/" in d.current_url)
    run_id = int(browser.current_url.rstrip("/").rsplit("/", 1)[-1])
    run = httpx.get(f"{base}/api/v1/runs/{run_id}").json()
    stages = {s["stage"]: s for s in run["config"]["stages"]}
    assert [stages[s]["engine"] for s in ("ocr", "correct", "extract")] == [
        "tesseract",
        "openai",
        "rules",
    ]
    assert stages["correct"]["parameters"]["model"] == "fake-vlm"
    assert stages["correct"]["parameters"]["endpoint"] == "default"
    assert stages["extract"]["source"] == "ocr" and stages["extract"]["inputs"] == "text"
    assert "tesseract" in browser.page_source

    # The endpoints the administrator configured are offered by name (no URL in the page);
    # the run goes to the one chosen, with that endpoint's default model.
    browser.get(f"{base}/projects/{project_id}")
    endpoints = "#llm-endpoint option"
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, endpoints)) == 2)
    wait.until(lambda d: "openai" in d.find_element(By.ID, "correct-engine").text)
    names = [o.get_attribute("value") for o in browser.find_elements(By.CSS_SELECTOR, endpoints)]
    assert names == ["default", "second"]
    _choose(browser, "correct-engine", "openai")
    _choose(browser, "llm-endpoint", "second")
    placeholder = browser.find_element(By.ID, "llm-model").get_attribute("placeholder")
    assert placeholder.startswith("second-vlm")
    assert settings.openai.endpoints["second"].base_url not in browser.page_source
    browser.find_element(By.CSS_SELECTOR, "#start-run-form button[type=submit]").click()
    wait.until(lambda d: "/runs/" in d.current_url and not d.current_url.endswith(f"/{run_id}"))
    second_run = int(browser.current_url.rstrip("/").rsplit("/", 1)[-1])
    correct = httpx.get(f"{base}/api/v1/runs/{second_run}").json()["config"]["stages"][1]
    assert (correct["parameters"]["endpoint"], correct["parameters"]["model"]) == (
        "second",
        "second-vlm",
    )
