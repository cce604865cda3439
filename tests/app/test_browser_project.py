"""The project and run pages in headless Chromium: what a first-time user tripped over (issue 11
§7) and housekeeping (issue 12 §4). The run form says what it would refuse before it is sent;
deleting asks first; failed pages are explained; nothing is wider than a 390 px phone.

Screenshots of the pages at 1366 and 390 px go to /tmp/shots/ (described in the closing note).
"""

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from models.openai_spec import EndpointSettings
from tests.helpers import inline_dispatcher
from tests.helpers import live_app as live_app_server

API = "/api/v1"
SHOTS = Path("/tmp/shots")
DIRECTORY = (
    "Foerster, Christian, Fabrikmeister, Grosskoelnstrasse A 391.\n"
    "Mueller, Peter Joseph, Baecker, Hochstrasse 12.\n"
)
RECORDS_CSV = (
    "first and middle names,surname,occupation,address\n"
    "Christian,Foerster,Fabrikmeister,Grosskoelnstrasse A 391.\n"
    "Peter Joseph,Mueller,Baecker,Hochstrasse 12.\n"
)
TIMEOUT = 20


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def site(sqlite_settings: Settings, fake_openai) -> Iterator[tuple[str, Settings]]:  # type: ignore[no-untyped-def]
    """The app on a real port with three mLLM endpoints: the default (model fake-vlm), one
    without a default model, and one nobody answers at."""
    endpoint = fake_openai(model="fake-vlm")
    named = {
        "nomodel": EndpointSettings(base_url=endpoint.base_url),
        "down": EndpointSettings(base_url=f"http://127.0.0.1:{_closed_port()}/v1", model="x"),
    }
    openai = sqlite_settings.openai.model_copy(
        update={"base_url": endpoint.base_url, "model": "fake-vlm", "endpoints": named}
    )
    settings = sqlite_settings.model_copy(update={"openai": openai})
    with live_app_server(settings) as base:
        yield base, settings


def _prepared(settings: Settings, *, documents: int = 2) -> dict[str, Any]:
    """A project with text documents and a finished run whose OCR failed on a page (a text
    document read by Tesseract: no image), made in process on the site's database."""
    app = create_app(settings)
    dispatcher = inline_dispatcher(settings)
    app.state.dispatcher = dispatcher
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 1)) as client:
        project = client.post(f"{API}/projects", json={"name": "Köln 1822"}).json()
        ids = []
        for number in range(documents):
            upload = client.post(
                f"{API}/projects/{project['id']}/documents",
                files={"files": (f"koeln-{number}.txt", DIRECTORY.encode() * (number + 1),
                                 "text/plain")},
            )  # fmt: skip
            ids.append(upload.json()["documents"][0]["id"])
        dispatcher.drain()
        # Ground truth for the first document, so that the run pages have score tables.
        for name, content, kind in (
            ("koeln-0-gt.txt", DIRECTORY, "text/plain"),
            ("koeln-0-gt.csv", RECORDS_CSV, "text/csv"),
        ):
            truth = client.post(
                f"{API}/documents/{ids[0]}/ground-truth", files={"file": (name, content, kind)}
            )
            assert truth.status_code == 201, truth.text
        good = client.post(
            f"{API}/projects/{project['id']}/runs",
            json={"stages": [{"stage": "ocr", "engine": "import"},
                             {"stage": "extract", "engine": "rules"}]},
        ).json()  # fmt: skip
        bad = client.post(f"{API}/projects/{project['id']}/runs", json={}).json()
        dispatcher.drain()
    return {"project": project["id"], "documents": ids, "good": good["id"], "bad": bad["id"]}


def _wait(driver: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, TIMEOUT)


def _choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def _no_horizontal_overflow(driver: Any, url: str, name: str) -> None:
    driver.get(url)
    _wait(driver).until(lambda d: d.execute_script("return document.readyState") == "complete")
    # What the scripts add (score tables, the review queue) counts too: wait for it.
    _wait(driver).until(lambda d: "Loading" not in d.find_element("tag name", "main").text)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    SHOTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(SHOTS / f"{name}-390.png"))
    assert width <= 390, f"{url} is {width} px wide at 390 px"


def test_the_run_form_says_what_it_would_refuse_before_it_is_sent(site, browser) -> None:
    from selenium.webdriver.common.by import By

    base, settings = site
    made = _prepared(settings)
    browser.set_window_size(1366, 900)
    browser.get(f"{base}/projects/{made['project']}")
    wait = _wait(browser)
    wait.until(lambda d: "openai" in d.find_element(By.ID, "correct-engine").text)
    hint = browser.find_element(By.ID, "llm-model-hint")
    check = browser.find_element(By.ID, "llm-check")
    assert "none is chosen" in hint.text

    # An mLLM stage on the default endpoint: the model may stay empty (its default is named),
    # and the endpoint is asked before anything is sent.
    _choose(browser, "correct-engine", "openai")
    wait.until(lambda _d: "fake-vlm" in hint.text and "optional" in hint.text)
    wait.until(lambda _d: check.text.startswith("✓"))
    assert "fake-vlm" in check.text

    # An endpoint without a default model: the field is required, and saying so is the form's.
    _choose(browser, "llm-endpoint", "nomodel")
    wait.until(lambda _d: "required" in hint.text)
    assert browser.find_element(By.ID, "llm-model").get_attribute("required") is not None
    wait.until(lambda _d: "no default model" in check.text)
    browser.find_element(By.CSS_SELECTOR, "#start-run-form button[type=submit]").click()
    error = browser.find_element(By.ID, "start-run-error")
    wait.until(lambda _d: "Name the mLLM model" in error.text)

    # An endpoint nobody answers at is found while the form is filled in.
    _choose(browser, "llm-endpoint", "down")
    wait.until(lambda _d: check.text.startswith("✗"))
    assert "'down'" in check.text
    runs_before = len(httpx.get(f"{base}{API}/projects/{made['project']}/runs").json())

    # "All documents" unticked: every document unticked, the run covers the one ticked.
    _choose(browser, "correct-engine", "")
    all_box = browser.find_element(By.ID, "run-all-documents")
    all_box.click()
    boxes = browser.find_elements(By.CSS_SELECTOR, '#run-document-choices input[name="document"]')
    assert len(boxes) == 2 and not any(box.is_selected() for box in boxes)
    browser.find_element(By.CSS_SELECTOR, "#start-run-form button[type=submit]").click()
    wait.until(lambda _d: "at least one document" in error.text)
    boxes[1].click()
    browser.find_element(By.CSS_SELECTOR, "#start-run-form button[type=submit]").click()
    wait.until(lambda d: "/runs/" in d.current_url)
    runs = httpx.get(f"{base}{API}/projects/{made['project']}/runs").json()
    assert len(runs) == runs_before + 1
    assert runs[0]["document_ids"] == [made["documents"][1]]


def test_housekeeping_and_failed_pages_in_the_browser(site, browser) -> None:
    from selenium.webdriver.common.by import By

    base, settings = site
    made = _prepared(settings)
    wait = _wait(browser)
    browser.set_window_size(1366, 900)
    SHOTS.mkdir(exist_ok=True)

    # The run page says which pages failed, why, and that they count as 100 % CER.
    browser.get(f"{base}/runs/{made['bad']}")
    card = browser.find_element(By.ID, "failed-pages")
    wait.until(lambda _d: card.is_displayed())
    assert "Tesseract needs a page image" in card.text
    assert "100 % CER" in card.text and "koeln-0.txt, page 1" in card.text
    link = card.find_element(By.CSS_SELECTOR, "a").get_attribute("href")
    assert link.endswith(f"/runs/{made['bad']}/documents/{made['documents'][0]}#page=1")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Run 2")
    browser.save_screenshot(str(SHOTS / "run-1366.png"))

    # The review queue links each page into the workspace, at the page.
    browser.get(f"{base}/runs/{made['good']}")
    queue = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#review-table a"))
    hrefs = [a.get_attribute("href") for a in queue]
    assert f"/runs/{made['good']}/documents/{made['documents'][0]}#page=1" in "".join(hrefs)

    # Project page: run numbers per project; a document's name opens it, not a download.
    browser.get(f"{base}/projects/{made['project']}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#runs tr[data-run-id]"))
    labels = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#runs td:first-child a")]
    assert labels == ["Run 2", "Run 1"]
    first = browser.find_element(By.CSS_SELECTOR, f'tr[data-document-id="{made["documents"][0]}"]')
    href = first.find_element(By.CSS_SELECTOR, "a.doc-link").get_attribute("href")
    assert href.endswith(f"/runs/{made['bad']}/documents/{made['documents'][0]}")
    browser.save_screenshot(str(SHOTS / "project-1366.png"))

    # Renaming a run asks for the name in a dialog.
    row = browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{made["good"]}"]')
    row.find_element(By.CSS_SELECTOR, '[data-action="rename-run"]').click()
    field = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "dialog[open] input"))
    field.clear()
    field.send_keys("Imported text\n")
    wait.until(lambda _d: httpx.get(f"{base}{API}/runs/{made['good']}").json()["name"])
    assert httpx.get(f"{base}{API}/runs/{made['good']}").json()["name"] == "Imported text"

    # Deleting a document asks first; Cancel keeps it, confirming deletes it.
    def delete_first_document() -> None:
        row = browser.find_element(
            By.CSS_SELECTOR, f'tr[data-document-id="{made["documents"][0]}"]'
        )
        row.find_element(By.CSS_SELECTOR, '[data-action="delete-document"]').click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "dialog[open]"))

    delete_first_document()
    dialog = browser.find_element(By.CSS_SELECTOR, "dialog[open]")
    assert "koeln-0.txt" in dialog.text and "cannot be undone" in dialog.text
    dialog.find_element(By.CSS_SELECTOR, "button[value=cancel]").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[open]"))
    document_url = f"{base}{API}/documents/{made['documents'][0]}"
    assert httpx.get(document_url).status_code == 200
    delete_first_document()
    browser.find_element(By.CSS_SELECTOR, "dialog[open] button[value=confirm]").click()
    wait.until(lambda _d: httpx.get(document_url).status_code == 404)
    gone = f'tr[data-document-id="{made["documents"][0]}"]'
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, gone))

    # The record fields: change them, a new version is shown.
    browser.find_element(By.ID, "edit-schema").click()
    names = browser.find_elements(By.CSS_SELECTOR, '#schema-editor input[name="field-name"]')
    assert [n.get_attribute("value") for n in names][:2] == ["first and middle names", "surname"]
    browser.find_elements(By.CSS_SELECTOR, "#schema-editor .remove-field")[0].click()
    browser.find_element(By.CSS_SELECTOR, "#schema-form button[type=submit]").click()
    version = browser.find_element(By.ID, "schema-version")
    wait.until(lambda _d: version.text == "version 2")
    schema = httpx.get(f"{base}{API}/projects/{made['project']}/schema").json()
    assert [f["name"] for f in schema["fields"]] == ["surname", "occupation", "address"]


def test_the_upload_list_shows_one_batch_and_nothing_is_wider_than_a_phone(
    site, browser, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    base, settings = site
    made = _prepared(settings, documents=1)
    wait = _wait(browser)
    browser.set_window_size(1366, 900)
    browser.get(f"{base}/projects/{made['project']}")
    start = browser.find_element(By.ID, "start-default-run")
    if start.is_selected():
        start.click()
    file_input = browser.find_element(By.ID, "file-input")
    for name in ("bonn.txt", "aachen.txt"):
        path = tmp_path / name
        path.write_text(f"{name}, Anna, Kauffrau, Marktstrasse 7.\n")
        file_input.send_keys(str(path))
        wait.until(lambda d, n=name: n in d.find_element(By.ID, "upload-list").text)
    items = browser.find_elements(By.CSS_SELECTOR, "#upload-list li")
    assert len(items) == 1 and "aachen.txt" in items[0].text

    browser.set_window_size(390, 844)
    for url, name in (
        (f"{base}/", "index"),
        (f"{base}/projects/{made['project']}", "project"),
        (f"{base}/runs/{made['bad']}", "run-failed"),
        (f"{base}/runs/{made['good']}", "run"),
        (f"{base}/documents/{made['documents'][0]}", "document-overview"),
    ):
        _no_horizontal_overflow(browser, url, name)


def test_ground_truth_that_does_not_belong_asks_before_it_is_attached(site, browser, tmp_path):
    """Issue 12 §3: text that plainly is not the document's (after a finished run) is refused
    with a question, and the browser attaches it only when the user says "Attach anyway"."""
    from selenium.webdriver.common.by import By

    base, settings = site
    prepared = _prepared(settings, documents=1)
    wrong = tmp_path / "other-city.txt"
    wrong.write_text("Zzyzx qwv plmk, Ütrbv, Xxxyy 99.\n" * 3, encoding="utf-8")
    browser.get(f"{base}/projects/{prepared['project']}")
    _wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "details.gt"))
    details = browser.find_element(By.CSS_SELECTOR, "details.gt")
    details.find_element(By.TAG_NAME, "summary").click()
    details.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(wrong))
    details.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    anyway = _wait(browser).until(
        lambda d: d.find_element(By.CSS_SELECTOR, ".gt-message button.gt-confirm")
    )
    message = details.find_element(By.CSS_SELECTOR, ".gt-message").text
    assert "does not look like" in message and "other-city.txt" in message
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8000",
                    client=("127.0.0.1", 1)) as client:  # fmt: skip
        truths = client.get(f"{API}/documents/{prepared['documents'][0]}/ground-truth").json()
        assert "other-city.txt" not in [t["filename"] for t in truths]
        anyway.click()
        _wait(browser).until(
            lambda d: (
                "Attached other-city.txt" in d.find_element(By.CSS_SELECTOR, ".gt-message").text
            )
        )
        truths = client.get(f"{API}/documents/{prepared['documents'][0]}/ground-truth").json()
        assert "other-city.txt" in [t["filename"] for t in truths]
