"""The quality estimate without ground truth (app/pipeline/quality.py) and the review queue."""

import random
from pathlib import Path

import pytest
from PIL import Image, ImageFilter
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.pipeline.charmodel import CharModel, shipped_model
from app.pipeline.quality import SHIPPED, LineSignal, PageSignals, fit, page_signals
from tests.helpers import PRINTED_LINES, live_app, render_page
from tests.test_flow import wait_for_run

DIRECTORY = [
    "Becker, Johann, Schuhmacher, Kleinmarschierstraße 12.",
    "Braun, Peter Joseph, Bäcker, Hochstraße 7.",
    "Esser, Wittwe, Kauffrau, Pontstraße 103.",
]


# --- the signals ------------------------------------------------------------------------------


def test_the_character_model_finds_garbage_less_plausible_than_directory_text():
    model = shipped_model()
    clean = model.bits_per_character("\n".join(PRINTED_LINES))
    garbage = model.bits_per_character("Fo;r5t.er, Chr1st,a~n ,Fabr|km:e1st.er Gr0sskoe\\nstr")
    assert clean is not None and garbage is not None
    assert garbage > clean + 1.0
    assert model.bits_per_character("  \n ") is None


def test_a_trained_model_round_trips_through_json():
    model = CharModel.train(DIRECTORY)
    again = CharModel.loads(model.dumps())
    text = "Becker, Peter, Bäcker, Pontstraße 7."
    assert again.bits_per_character(text) == model.bits_per_character(text)
    assert model.bits_per_character(text) < model.bits_per_character("xq zv kk ßß ..,,")


def test_page_signals_weigh_lines_by_length_and_count_weak_lines():
    lines = [
        LineSignal("Becker, Johann, Schuhmacher, Kleinmarschierstraße 12.", 0.9, 0.8),
        LineSignal("Esser", 0.5, 0.3),  # short and weak
    ]
    signals = page_signals(lines, "\n".join(line.text for line in lines), records=1)
    long, short = len(lines[0].text), len(lines[1].text)
    assert (
        signals.low_confidence == (1 - (0.9 * long + 0.5 * short) / (long + short))
        or abs(signals.low_confidence - (1 - (0.9 * long + 0.5 * short) / (long + short))) < 1e-9
    )
    assert abs(signals.weak_share - short / (long + short)) < 1e-9
    assert signals.unparsed_share == 0.5  # two lines, one record
    assert signals.disagreement is None  # no correction stage


def test_disagreement_is_the_correction_distance_per_ocr_character():
    signals = page_signals([], "Becker, Johann", ocr_text="Beckcr, Iohann")
    assert signals.disagreement == 2 / len("Beckcr, Iohann")
    assert signals.low_confidence is None and signals.unparsed_share is None


def test_a_page_without_text_is_estimated_as_all_wrong():
    assert page_signals([LineSignal("", 0.1, 0.1)], " \n ").characters == 0
    assert SHIPPED.estimate(PageSignals(characters=0)) == 1.0


def test_worse_signals_give_a_higher_estimate_and_missing_ones_the_benchmark_mean():
    good = PageSignals(100, 0.10, 0.3, 3.4, 0.1)
    bad = PageSignals(100, 0.35, 1.0, 4.3, 0.6)
    assert 0.0 <= SHIPPED.estimate(good) < SHIPPED.estimate(bad) <= 1.0
    unknown = PageSignals(100)  # nothing but text: the benchmark's average page
    assert abs(SHIPPED.estimate(unknown) - SHIPPED.intercept) < 1e-4
    corrected = PageSignals(100, 0.10, 0.3, 3.4, 0.1, disagreement=0.2)
    assert SHIPPED.estimate(corrected) > SHIPPED.estimate(good)


def test_fit_calibrates_a_rising_combination():
    samples = [(PageSignals(100, c, c * 3, 3 + c * 4, c), c / 2) for c in (0.1, 0.2, 0.3, 0.4)]
    model = fit(samples)
    estimates = [model.estimate(s) for s, _ in samples]
    assert estimates == sorted(estimates) and model.slope > 0
    assert all(abs(e - cer) < 0.01 for e, (_, cer) in zip(estimates, samples, strict=True))


# --- the queue, through the real pipeline -------------------------------------------------------


def smudged_page(path: Path) -> Path:
    """The same kind of page, photographed badly: blurred, speckled, low contrast."""
    render_page(path, PRINTED_LINES)
    with Image.open(path) as opened:
        image = opened.convert("L").filter(ImageFilter.GaussianBlur(3))
    noise = random.Random(7)
    pixels = image.load()
    for _ in range(image.width * image.height // 6):
        x, y = noise.randrange(image.width), noise.randrange(image.height)
        pixels[x, y] = noise.choice((0, 90, 255))
    image.point(lambda value: 60 + value * 0.5).save(path, dpi=(300, 300))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request):
    """The embedded set-up (SQLite) and the distributed one (PostgreSQL, Redis)."""
    return request.getfixturevalue(f"{request.param}_settings")


def test_the_review_queue_puts_the_bad_page_first(
    settings, start_worker, client_for, browser, tmp_path
):
    worker = start_worker(settings)
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "review"}).json()
    scans = [
        render_page(tmp_path / "clean.png", PRINTED_LINES),
        smudged_page(tmp_path / "smudged.png"),
        render_page(tmp_path / "also-clean.png", PRINTED_LINES[::-1]),
    ]
    documents = []
    for scan in scans:
        upload = client.post(
            f"/api/v1/projects/{project['id']}/documents",
            files={"files": (scan.name, scan.read_bytes(), "image/png")},
        )
        assert upload.status_code == 201, upload.text
        documents.append(upload.json()["documents"][0])
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"name": "queue"}).json()
    finished = wait_for_run(client, run["id"], timeout=180, workers=(worker,))
    assert finished["status"] == "done", finished

    response = client.get(f"/api/v1/runs/{run['id']}/review-queue")
    assert response.status_code == 200, response.text
    queue = response.json()
    assert len(queue) == 3
    # What the OCR read on each page, for the failure messages.
    read = {
        item["page_id"]: [
            (stage["stage"], stage["status"], (stage["text"] or "")[:60])
            for stage in client.get(f"/api/v1/runs/{run['id']}/pages/{item['page_id']}").json()[
                "stages"
            ]
        ]
        for item in queue
    }
    assert queue[0]["document_id"] == documents[1]["id"], (queue, read)
    assert queue[0]["page_number"] == 1 and queue[0]["verified"] is False
    estimates = [item["estimated_cer"] for item in queue]
    assert estimates == sorted(estimates, reverse=True)
    assert estimates[0] > estimates[1] and all(0 <= e <= 1 for e in estimates), (queue, read)
    assert set(queue[0]) == {"page_id", "document_id", "page_number", "estimated_cer", "verified"}
    # Read again: the same answer (cached until the run's results change).
    again = client.get(f"/api/v1/runs/{run['id']}/review-queue").json()
    assert again == queue, (again, queue)

    page = client.get(f"/api/v1/runs/{run['id']}/pages/{queue[0]['page_id']}").json()
    assert page["estimated_cer"] == queue[0]["estimated_cer"]

    # The run page lists the queue, worst first, linked to the page in the document view.
    with live_app(settings) as base:
        browser.get(f"{base}/runs/{run['id']}")
        WebDriverWait(browser, 20).until(
            lambda driver: driver.find_elements(By.CSS_SELECTOR, "#review-table tbody tr")
        )
        rows = browser.find_elements(By.CSS_SELECTOR, "#review-table tbody tr")
        assert len(rows) == 3
        first = rows[0].find_element(By.TAG_NAME, "a")
        assert first.text == "smudged.png, page 1"
        assert first.get_attribute("href") == (
            f"{base}/runs/{run['id']}/documents/{documents[1]['id']}#page=1"
        )
        assert f"{queue[0]['estimated_cer'] * 100:.1f} %" in rows[0].text

    missing = client.get("/api/v1/runs/999999/review-queue")
    assert missing.status_code == 404 and "999999" in missing.text
