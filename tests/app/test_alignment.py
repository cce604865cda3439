"""Document ground truth cut into pages and lines by alignment, with per-line diffs.

On the benchmark's real texts: the pages' counts add up to the document's CER, the cuts fall
where the pages end (a leak of one page's ground truth into the next is caught), and the page
endpoint serves each line's aligned ground truth, diff and unsure flag.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.session import session_scope
from app.db.tables import Document, Line, Run, RunStatus, StageResult, StageStatus
from app.metrics.alignment import PageAlignment, align_document
from app.metrics.diff import char_diff
from app.metrics.text import join_pages, normalize_raw, normalize_strict, score_text
from app.pipeline.run_config import build_run_config, default_stages
from tests.conftest import benchmark_file
from tests.factories import add_document, add_project
from tests.helpers import RecordingDispatcher, live_app
from workers.context import make_context
from workers.tasks.evaluate import evaluate_run

API = "/api/v1"
TYPES = range(1, 6)


def _truth(n: int) -> str:
    return benchmark_file("ground_truth", "txt", f"type-{n}.txt").read_text(encoding="utf-8")


def _pages(system: str, n: int) -> list[str]:
    folder: Path = benchmark_file("reference_outputs", system, f"type-{n}", "page-1.txt").parent
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob("page-*.txt"))]


@pytest.mark.parametrize("system", ["tesseract-paper", "gemini-2.0-flash", "transkribus"])
@pytest.mark.parametrize("n", TYPES)
def test_page_counts_add_up_to_the_document_cer(system: str, n: int) -> None:
    truth, pages = _truth(n), _pages(system, n)
    aligned = align_document(truth, [page.split("\n") for page in pages])
    document = score_text(truth, join_pages(pages))
    assert len(aligned) == len(pages) == 3
    assert sum(p.cer.distance for p in aligned) == document.cer.distance
    assert sum(p.cer.reference_length for p in aligned) == document.cer.reference_length
    assert sum(p.cer_normalized.distance for p in aligned) == document.cer_normalized.distance
    assert (
        sum(p.cer_normalized.reference_length for p in aligned)
        == document.cer_normalized.reference_length
    )
    # The slices cover the whole ground truth once, in order (cut at a space or mid-word).
    assert "".join(p.gt_text for p in aligned).replace(" ", "") == normalize_raw(truth).replace(
        " ", ""
    )
    for page, text in zip(aligned, pages, strict=True):
        # Each page's slice, scored on its own, is within a few characters of its share.
        alone = score_text(page.gt_text, text).cer.distance
        assert abs(alone - page.cer.distance) <= max(10, page.cer.distance // 50)


@pytest.mark.parametrize("n", TYPES)
def test_bad_ocr_cuts_the_pages_where_good_ocr_does(n: int) -> None:
    """Tesseract's output (CER near 40 %) is cut at the same places as Gemini's (near 2 %): a
    page's ground truth leaking into the next would move a cut by a line or more."""
    truth = _truth(n)
    good = align_document(truth, [p.split("\n") for p in _pages("gemini-2.0-flash", n)])
    bad = align_document(truth, [p.split("\n") for p in _pages("tesseract-paper", n)])
    shortest = min(len(line) for line in truth.split("\n") if len(line) > 15)  # an entry

    def cuts(pages: list[PageAlignment]) -> list[int]:
        """Where each page's slice ends in the ground truth (raw characters)."""
        return [sum(p.cer.reference_length for p in pages[: i + 1]) for i in range(len(pages))]

    for at_good, at_bad in zip(cuts(good), cuts(bad), strict=True):
        assert abs(at_good - at_bad) <= 10 < shortest


def test_a_slice_leaking_into_the_next_page_is_caught() -> None:
    """With the ground truth's own page split as the OCR, each page gets exactly its text: the
    next page's first line is not at the end of this page's slice."""
    lines = [line for line in _truth(1).split("\n") if line.strip()]
    third = len(lines) // 3
    pages = [lines[:third], lines[third : 2 * third], lines[2 * third :]]
    aligned = align_document("\n".join(lines), pages)
    for page, page_lines in zip(aligned, pages, strict=True):
        assert page.gt_text == " ".join(normalize_raw(line) for line in page_lines)
        assert page.cer.distance == 0
        assert [line.gt_text for line in page.lines] == [normalize_raw(x) for x in page_lines]
    assert normalize_raw(pages[1][0]) not in aligned[0].gt_text


def test_text_the_ocr_missed_stays_on_its_page_and_extra_lines_are_unsure() -> None:
    lines = [line for line in _truth(2).split("\n") if line.strip()][:12]
    truth = "\n".join(lines)
    # Page 1 lost its last line; page 3 has a running head the transcription does not.
    head = "ADRESSBUCH DER STADT KOELN 1880 SEITE 17"
    pages = [lines[:5], lines[6:9], [head, *lines[9:]]]
    first, second, third = align_document(truth, pages)
    assert first.gt_text.endswith(normalize_raw(lines[5]))
    assert first.cer.distance == len(normalize_raw(lines[5])) + 1  # and its joining space
    assert second.cer.distance <= 1  # the space joining it to the head may count as inserted
    assert second.gt_text == " ".join(normalize_raw(line) for line in lines[6:9])
    assert third.lines[0].unsure and third.lines[0].gt_text == ""
    assert [op.op for op in third.lines[0].diff] == ["insert"]
    assert not any(line.unsure for line in third.lines[1:])
    assert third.unsure_lines == 1
    assert first.unsure_lines == 0  # the missing line is a deletion after a matched line


def test_line_diffs_raw_and_normalized_on_a_benchmark_line() -> None:
    truth = _truth(1)
    pages = _pages("tesseract-paper", 1)
    aligned = align_document(truth, [p.split("\n") for p in pages])
    checked = 0
    for page, text in zip(aligned, pages, strict=True):
        for line, ocr in zip(page.lines, text.split("\n"), strict=True):
            # The raw diff spells out both texts; the normalized one their strict forms.
            assert "".join(op.gt for op in line.diff) == line.gt_text
            assert "".join(op.ocr for op in line.diff) == normalize_raw(ocr)
            assert "".join(op.gt for op in line.diff_normalized) == normalize_strict(line.gt_text)
            assert "".join(op.ocr for op in line.diff_normalized) == normalize_strict(ocr)
            distance = score_text(line.gt_text, ocr).cer.distance
            assert sum(op.cost for op in line.diff) == distance
            checked += 1
    assert checked > 100


def test_char_diff_operations() -> None:
    ops = char_diff("Großkölnstraße A 391.", "Grosskoelnstrasse A 39l")
    assert [op.op for op in ops][0] == "equal"
    assert {op.op for op in ops} >= {"equal", "substitute", "insert", "delete"}
    assert "".join(op.gt for op in ops) == "Großkölnstraße A 391."
    assert "".join(op.ocr for op in ops) == "Grosskoelnstrasse A 39l"
    assert char_diff("", "") == []
    assert [(op.op, op.ocr) for op in char_diff("", "ab")] == [("insert", "ab")]


# --- the page endpoint ---------------------------------------------------------------------


@pytest.fixture
def client(sqlite_settings: Settings, client_for: Callable[[Settings], TestClient]) -> TestClient:
    client = client_for(sqlite_settings)
    client.app.state.dispatcher = RecordingDispatcher()
    return client


def _benchmark_run(client: TestClient, settings: Settings) -> tuple[int, int, list[int]]:
    """A finished, evaluated OCR run over benchmark type 1 (Tesseract's pages and lines) with
    the document's ground truth uploaded through the API."""
    pages = _pages("tesseract-paper", 1)
    with session_scope(settings.resolved_database_url) as session:
        document = add_document(session, add_project(session), pages=len(pages))
        document_id, page_ids = document.id, [p.id for p in document.pages]
    uploaded = client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": ("type-1.txt", _truth(1).encode(), "text/plain")},
    )
    assert uploaded.status_code == 201, uploaded.text
    with session_scope(settings.resolved_database_url) as session:
        document = session.get_one(Document, document_id)
        config = build_run_config(
            stages=default_stages(extract=None),
            schema_fields=document.project.schema_fields,
            settings=settings,
        )
        run = Run(project_id=document.project_id, config=config, documents=[document])
        run.status = RunStatus.RUNNING
        session.add(run)
        session.flush()
        for page, text in zip(document.pages, pages, strict=True):
            result = StageResult(
                run_id=run.id,
                page_id=page.id,
                stage="ocr",
                position=0,
                status=StageStatus.DONE,
                engine="tesseract",
                text=text,
            )
            session.add(result)
            session.flush()
            for position, line in enumerate(text.split("\n")):
                session.add(
                    Line(
                        run_id=run.id,
                        page_id=page.id,
                        stage_result_id=result.id,
                        position=position,
                        text=line,
                        x0=0,
                        y0=position * 10,
                        x1=90,
                        y1=position * 10 + 9,
                    )
                )
        run_id = run.id
    evaluate_run(make_context(settings, RecordingDispatcher()), run_id)
    return run_id, document_id, page_ids


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_client(
    request: pytest.FixtureRequest, client_for: Callable[[Settings], TestClient]
) -> tuple[TestClient, Settings]:
    """The same test on the embedded and the distributed database."""
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    client = client_for(settings)
    client.app.state.dispatcher = RecordingDispatcher()
    return client, settings


def test_page_endpoint_serves_aligned_lines_and_page_cers_that_add_up(any_client):
    client, settings = any_client
    run_id, document_id, page_ids = _benchmark_run(client, settings)
    bodies = []
    for page_id in page_ids:
        response = client.get(f"{API}/runs/{run_id}/pages/{page_id}")
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    metrics = client.get(f"{API}/runs/{run_id}/metrics").json()
    (document,) = metrics["text"]["ocr"]["documents"]
    cers = [body["gt_cer"] for body in bodies]
    assert all(c["source"] == "document" and c["stage"] == "ocr" for c in cers)
    for key in ("cer", "cer_normalized"):
        assert sum(c[f"{key}_distance"] for c in cers) == document[f"{key}_distance"]
        assert (
            sum(c[f"{key}_reference_length"] for c in cers) == document[f"{key}_reference_length"]
        )
    page = bodies[1]
    assert page["ground_truth"] is None  # no page file: the existing field is unchanged
    assert page["ground_truth_aligned"]
    lines = [line for line in page["lines"] if line["text"].strip()]
    assert lines and all(line["gt_text"] is not None for line in lines)
    for line in lines:
        assert "".join(op["ocr"] for op in line["diff"]["raw"]) == normalize_raw(line["text"])
        assert "".join(op["gt"] for op in line["diff"]["raw"]) == line["gt_text"]
        normalized = "".join(op["ocr"] for op in line["diff"]["normalized"])
        assert normalized == normalize_strict(line["text"])
    assert page["gt_cer"]["unsure_lines"] == sum(line["gt_unsure"] for line in page["lines"])


def test_page_ground_truth_wins_over_the_documents(client, sqlite_settings):
    run_id, document_id, page_ids = _benchmark_run(client, sqlite_settings)
    own = "Ganz anderer Text fuer Seite eins."
    uploaded = client.post(
        f"{API}/documents/{document_id}/ground-truth",
        files={"file": ("p1.txt", own.encode(), "text/plain")},
        data={"page": "1"},
        params={"confirm": "true"},  # not the page's text, on purpose
    )
    assert uploaded.status_code == 201, uploaded.text
    body = client.get(f"{API}/runs/{run_id}/pages/{page_ids[0]}").json()
    assert body["gt_cer"]["source"] == "page"
    assert body["ground_truth_aligned"] == own
    text = next(s["text"] for s in body["stages"] if s["stage"] == "ocr")
    assert body["gt_cer"]["cer_distance"] == score_text(own, text).cer.distance
    other = client.get(f"{API}/runs/{run_id}/pages/{page_ids[1]}").json()
    assert other["gt_cer"]["source"] == "document"


def test_a_page_without_ground_truth_has_no_diff(client, sqlite_settings):
    run_id, document_id, page_ids = _benchmark_run(client, sqlite_settings)
    with session_scope(sqlite_settings.resolved_database_url) as session:
        other = add_document(session, session.get_one(Document, document_id).project, pages=1)
        other_page = other.pages[0].id
        run = session.get_one(Run, run_id)
        run.documents.append(other)
    body = client.get(f"{API}/runs/{run_id}/pages/{other_page}").json()
    assert body["gt_cer"] is None and body["ground_truth_aligned"] is None


# --- the document page in a real browser ---------------------------------------------------


@pytest.fixture
def live_base(sqlite_settings: Settings) -> Iterator[str]:
    """The real app on a real port (no worker: the run is stored finished)."""
    with live_app(sqlite_settings) as base:
        yield base


@pytest.mark.e2e
def test_document_page_shows_page_cer_and_marked_line_diffs(
    client, sqlite_settings, live_base, browser
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run_id, document_id, page_ids = _benchmark_run(client, sqlite_settings)
    expected = client.get(f"{API}/runs/{run_id}/pages/{page_ids[1]}").json()
    browser.set_window_size(1366, 900)  # the scan beside the text, as on a laptop
    browser.get(f"{live_base}/runs/{run_id}/documents/{document_id}#page-2")
    wait = WebDriverWait(browser, 20)
    tab = wait.until(lambda d: d.find_element(By.ID, "tab-diff"))
    # The document's ground truth no longer makes the page say it has none.
    assert "No ground truth for this page" not in browser.find_element(By.ID, "page-text").text
    tab.click()
    panel = browser.find_element(By.ID, "panel-diff")
    assert panel.is_displayed()
    assert "Page CER " + f"{expected['gt_cer']['cer'] * 100:.2f}" in panel.text.replace(" %", "")
    lines = panel.find_elements(By.CSS_SELECTOR, "ol.diff-lines > li")
    assert len(lines) == sum(1 for line in expected["lines"] if line["text"].strip())
    assert panel.find_elements(By.CSS_SELECTOR, "li ins.diff-ins")
    assert panel.find_elements(By.CSS_SELECTOR, "li del.diff-del")
    assert panel.find_elements(By.CSS_SELECTOR, "li .diff-sub del + ins")
    struck = panel.find_element(By.CSS_SELECTOR, "li del.diff-del")
    assert "line-through" in struck.value_of_css_property("text-decoration")
    unsure = sum(line["gt_unsure"] for line in expected["lines"] if line["text"].strip())
    assert len(panel.find_elements(By.CSS_SELECTOR, "li.diff-line.unsure")) == unsure
    # The normalized form: what the metric compares, lower-case ASCII.
    first_raw = lines[0].text
    browser.find_element(By.ID, "diff-normalized").click()
    first = panel.find_element(By.CSS_SELECTOR, "ol.diff-lines > li")
    assert first.text != first_raw and first.text.replace("⚠ unsure ", "") == first.text.lower()
