"""The review workspace (document page) in headless Chromium (issue 11): the scan with zoom and
line boxes beside the lines, a line corrected with the keyboard and kept as a version, its diff
matching the ground truth afterwards, a conflict with another reviewer, the phone layout, and a
text-only document opened while it is still being read in.

Runs happen in process (tests/helpers.inline_dispatcher): a printed page read by Tesseract and
parsed by the rules extractor, served to the browser by the real app on a real port.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from app.config import Settings
from app.main import create_app
from tests.helpers import PRINTED_LINES, finished_run_on_a_page, inline_dispatcher, live_app

API = "/api/v1"
SHOTS = Path("/tmp/shots")
#: The page as printed, with a misprint the reviewer corrects ("Schrciner"): the ground truth
#: has the right word, so at least one line differs from it whatever Tesseract reads.
PRINTED = [PRINTED_LINES[0], PRINTED_LINES[1].replace("Schreiner", "Schrciner"), *PRINTED_LINES[2:]]


@dataclass
class Workspace:
    """A finished run over one scanned page with document ground truth, served on `base`."""

    client: TestClient
    base: str
    run_id: int
    page_id: int
    document_id: int

    @property
    def url(self) -> str:
        return f"{self.base}/runs/{self.run_id}/documents/{self.document_id}"

    def page(self) -> dict[str, Any]:
        answer = self.client.get(f"{API}/runs/{self.run_id}/pages/{self.page_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def line(self, line_id: int) -> dict[str, Any]:
        return next(x for x in self.page()["lines"] if x["id"] == line_id)


@pytest.fixture
def workspace(sqlite_settings: Settings, tmp_path: Path) -> Iterator[Workspace]:
    with finished_run_on_a_page(sqlite_settings, tmp_path, PRINTED, PRINTED_LINES) as run:
        with live_app(sqlite_settings) as base:
            yield Workspace(run.client, base, run.run_id, run.page_id, run.document_id)


#: Run in every page before its own scripts: collects script errors, failed loads (a 404 image)
#: and Content-Security-Policy violations (an inline handler), which the page must have none of.
WATCH = """
window.__problems = [];
window.addEventListener("error", (e) => window.__problems.push(
  e.message || ("failed to load " + (e.target && (e.target.src || e.target.href)))), true);
window.addEventListener("unhandledrejection", (e) => window.__problems.push(String(e.reason)));
document.addEventListener("securitypolicyviolation", (e) => window.__problems.push(
  "CSP: " + e.violatedDirective + " " + e.blockedURI));
"""


def _watch(browser) -> None:  # type: ignore[no-untyped-def]
    browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})


def _problems(browser) -> list[str]:  # type: ignore[no-untyped-def]
    return browser.execute_script("return window.__problems || []")


def _zoom(browser) -> int:  # type: ignore[no-untyped-def]
    """The zoom the viewer shows, in percent of the scan's pixels."""
    text = browser.find_element(By.ID, "zoom-level").text
    return int(re.sub(r"\D", "", text))


def _wait(browser, condition, timeout: float = 20):  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, timeout).until(condition)


def _still(browser, element) -> None:  # type: ignore[no-untyped-def]
    """Wait until the element stops moving (the viewer glides to a new zoom in 0.18 s)."""
    last: list[Any] = [None]

    def same(_d: Any) -> bool:
        now = element.rect
        settled = now == last[0]
        last[0] = now
        return settled

    WebDriverWait(browser, 10, poll_frequency=0.25).until(same)


def _open(browser, ws: Workspace, page: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    _watch(browser)
    browser.get(ws.url)
    boxed = sum(1 for line in page["lines"] if line["bbox"])
    assert boxed, page["lines"]
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#overlay rect.ws-box")) == boxed)
    _wait(browser, lambda d: d.find_element(By.ID, "page-image").is_displayed())


def test_a_line_is_selected_on_the_scan_corrected_with_the_keyboard_and_kept(workspace, browser):
    ws = workspace
    page = ws.page()
    wrong = [x for x in page["lines"] if x["gt_text"] and x["text"] != x["gt_text"]]
    assert wrong, [(x["text"], x["gt_text"]) for x in page["lines"]]
    target = wrong[0]
    errors_before = page["gt_cer"]["cer_distance"]
    browser.set_window_size(1366, 900)
    _open(browser, ws, page)
    width = browser.execute_script("return window.innerWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width

    # Zoom: the buttons, the mouse wheel over the scan, and back to the whole page.
    start = _zoom(browser)
    browser.find_element(By.ID, "zoom-in").click()
    _wait(browser, lambda d: _zoom(d) > start)
    zoomed = _zoom(browser)
    viewport = browser.find_element(By.ID, "viewport")
    ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(viewport), 0, -300).perform()
    _wait(browser, lambda d: _zoom(d) > zoomed)
    browser.find_element(By.ID, "zoom-fit").click()
    _wait(browser, lambda d: _zoom(d) < zoomed)

    # A click on the line's box on the scan selects its line in the list and focuses it.
    box = browser.find_element(By.CSS_SELECTOR, f'#overlay rect[data-line-id="{target["id"]}"]')
    _still(browser, box)
    ActionChains(browser).move_to_element(box).click().perform()
    item = browser.find_element(By.ID, f"line-{target['position'] + 1}")
    _wait(browser, lambda d: "selected" in item.get_attribute("class"))
    assert "selected" in box.get_attribute("class")
    assert browser.switch_to.active_element == item
    assert f"line={target['position'] + 1}" in browser.current_url  # deep-linkable
    assert item.find_elements(By.CSS_SELECTOR, ".ws-diff ins, .ws-diff del")  # marked wrong

    # Enter edits it; the corrected text is typed; Enter saves.
    item.send_keys(Keys.ENTER)
    field = _wait(browser, lambda d: item.find_element(By.CSS_SELECTOR, "input.ws-input"))
    assert field.get_attribute("value") == target["text"]
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(target["gt_text"], Keys.ENTER)
    _wait(browser, lambda _d: "✓ matches" in item.text)
    assert not item.find_elements(By.CSS_SELECTOR, ".ws-diff ins, .ws-diff del")
    saved = ws.line(target["id"])
    assert (saved["text"], saved["version"], saved["edited"]) == (target["gt_text"], 2, True)
    after = ws.page()["gt_cer"]
    assert after["cer_distance"] < errors_before
    scores = browser.find_element(By.ID, "page-scores")
    _wait(browser, lambda _d: f"{after['cer'] * 100:.2f} %" in scores.text)
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "workspace-1366.png"))

    # Reloaded: the correction is there, with its history (the engine's text kept).
    browser.refresh()
    _wait(browser, lambda d: d.find_elements(By.ID, f"line-{target['position'] + 1}"))
    item = browser.find_element(By.ID, f"line-{target['position'] + 1}")
    _wait(browser, lambda _d: target["gt_text"] in item.text and "corrected" in item.text)
    _wait(browser, lambda d: "selected" in item.get_attribute("class"))  # from the link
    browser.find_element(By.ID, "line-history-toggle").click()
    history = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#line-history table"))
    rows = [row.text for row in history.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert len(rows) == 2, rows
    assert rows[0].startswith("2 " + target["gt_text"]) and "edit local" in rows[0]
    assert rows[1].startswith("1 " + target["text"]) and "engine" in rows[1]
    # The page's diff shows the line as matching its ground truth now.
    browser.find_element(By.ID, "tab-diff").click()
    diffed = browser.find_element(By.CSS_SELECTOR, f'#panel-diff li[data-line-id="{target["id"]}"]')
    assert diffed.text == target["gt_text"]
    assert not diffed.find_elements(By.CSS_SELECTOR, "ins, del")
    assert _problems(browser) == []


def test_an_edit_over_someone_elses_shows_their_text_and_reloads_the_line(workspace, browser):
    ws = workspace
    page = ws.page()
    line = next(x for x in page["lines"] if x["text"].strip())
    browser.set_window_size(1366, 900)
    _open(browser, ws, page)
    item = browser.find_element(By.ID, f"line-{line['position'] + 1}")
    item.click()
    field = _wait(browser, lambda d: item.find_element(By.CSS_SELECTOR, "input.ws-input"))
    # Meanwhile another reviewer saves the same line.
    theirs = ws.client.patch(
        f"{API}/lines/{line['id']}", json={"text": "Their reading", "version": line["version"]}
    )
    assert theirs.status_code == 200, theirs.text
    field.send_keys(" (mine)", Keys.ENTER)
    conflict = _wait(browser, lambda d: item.find_element(By.CSS_SELECTOR, ".ws-conflict"))
    _wait(browser, lambda _d: conflict.is_displayed())
    assert "Changed by someone else" in conflict.text and "Their reading" in conflict.text
    assert ws.line(line["id"])["text"] == "Their reading"  # nothing overwritten
    conflict.find_element(By.XPATH, ".//button[normalize-space()='Reload line']").click()
    _wait(browser, lambda _d: not conflict.is_displayed())
    assert item.find_element(By.CSS_SELECTOR, ".ws-text").text == "Their reading"
    assert _problems(browser) == []


def test_on_a_phone_the_scan_is_above_the_lines_and_nothing_overflows(workspace, browser):
    ws = workspace
    page = ws.page()
    browser.set_window_size(390, 844)
    _open(browser, ws, page)
    width = browser.execute_script("return window.innerWidth")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    viewer = browser.find_element(By.ID, "viewport").rect
    lines = browser.find_element(By.ID, "lines").rect
    assert viewer["y"] + viewer["height"] <= lines["y"]  # stacked: the scan first
    assert viewer["x"] >= 0 and viewer["x"] + viewer["width"] <= width
    SHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SHOTS / "workspace-390.png"))
    # The records' table scrolls inside its own box, not the page.
    browser.find_element(By.ID, "tab-records").click()
    table = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#page-records table"))
    assert table.is_displayed()
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    browser.execute_script("arguments[0].scrollIntoView({block: 'end'})", table)
    browser.save_screenshot(str(SHOTS / "workspace-390-records.png"))
    assert _problems(browser) == []


def test_a_text_only_document_opened_during_ingest_fills_in_without_a_reload(
    sqlite_settings: Settings, browser
):
    app = create_app(sqlite_settings)
    dispatcher = inline_dispatcher(sqlite_settings)
    app.state.dispatcher = dispatcher
    client = TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000))
    text = "\n".join(PRINTED_LINES[:2]) + "\n"
    with client, live_app(sqlite_settings) as base:
        project = client.post(f"{API}/projects", json={"name": "Köln 1822"}).json()
        upload = client.post(
            f"{API}/projects/{project['id']}/documents",
            files={"files": ("koeln.txt", text.encode(), "text/plain")},
        )
        assert upload.status_code == 201, upload.text
        document_id = upload.json()["documents"][0]["id"]
        stages = [{"stage": "ocr", "engine": "import"}, {"stage": "extract", "engine": "rules"}]
        run = client.post(f"{API}/projects/{project['id']}/runs", json={"stages": stages})
        assert run.status_code == 201, run.text
        run_id = run.json()["id"]
        # Opened before ingest: no pages yet, the run waiting.
        browser.set_window_size(1366, 900)
        _watch(browser)
        browser.get(f"{base}/runs/{run_id}/documents/{document_id}")
        no_pages = browser.find_element(By.ID, "no-pages")
        assert no_pages.is_displayed() and "no pages yet" in no_pages.text
        assert "pending" in browser.find_element(By.ID, "run-status").text
        dispatcher.drain()  # ingest, the import, extraction, evaluation
        assert client.get(f"{API}/runs/{run_id}").json()["status"] == "done"
        # The page follows by itself: the page, its lines and records, the run's status.
        _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#lines li")) == 2)
        _wait(browser, lambda d: "done" in d.find_element(By.ID, "run-status").text)
        assert browser.find_element(By.ID, "doc-pages").text == "1 page"
        assert not no_pages.is_displayed()
        _wait(browser, lambda d: d.find_element(By.ID, "records-count").text == "(2)")
        browser.find_element(By.ID, "tab-records").click()
        records = browser.find_element(By.ID, "page-records").text
        assert "Foerster" in records and "does not extract" not in records
        # No scan: none is drawn and none is asked for (no 404 in the console).
        assert not browser.find_element(By.ID, "viewer").is_displayed()
        requested = browser.execute_script(
            "return performance.getEntriesByType('resource').map((e) => e.name)"
        )
        assert not [url for url in requested if "/pages/" in url and "/api/v1/runs/" not in url]
        assert _problems(browser) == []


def test_the_run_page_shows_the_engine_output_beside_the_reviewed_text(workspace, browser):
    """Issue 11 item 4: after a correction the run page scores both, side by side."""
    line = next(x for x in workspace.page()["lines"] if x["gt_text"] and x["text"] != x["gt_text"])
    fixed = workspace.client.patch(
        f"{API}/lines/{line['id']}", json={"text": line["gt_text"], "version": line["version"]}
    )
    assert fixed.status_code == 200, fixed.text
    metrics = workspace.client.get(f"{API}/runs/{workspace.run_id}/metrics").json()
    engine = metrics["engine"]["text"]["ocr"]["run"]["cer"]
    reviewed = metrics["latest"]["text"]["ocr"]["run"]["cer"]
    assert reviewed < engine
    _watch(browser)
    browser.get(f"{workspace.base}/runs/{workspace.run_id}")
    section = _wait(browser, lambda d: d.find_element(By.ID, "review-comparison"))
    assert "1 line(s) corrected" in section.text
    cer_row = section.find_element(By.XPATH, ".//tr[td[1]='CER']")
    cells = [td.text for td in cer_row.find_elements(By.TAG_NAME, "td")]
    assert cells[1] == f"{engine * 100:.2f} %" and cells[2] == f"{reviewed * 100:.2f} %"
    assert "better" in cer_row.find_elements(By.TAG_NAME, "td")[3].get_attribute("class")
    assert _problems(browser) == []
