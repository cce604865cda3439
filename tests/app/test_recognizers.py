"""The project's own recogniser (issue 13): training lines from verified pages and ground truth,
a real fine-tune through the API that new runs then read with, cancelling, the automatic
threshold, refusals and roles.

Runs happen in process (tests/helpers.inline_dispatcher, with the training task added): printed
pages read by Tesseract, a training of a few dozen iterations on their lines.
"""

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from rapidfuzz.distance import Levenshtein
from sqlalchemy import select, update

from app.config import Settings
from app.db.recognizers import RecognizerModel, TrainingStatus
from app.db.session import get_sessionmaker, session_scope, utcnow
from app.db.tables import Run
from app.main import create_app
from app.pipeline.dispatch import TRAIN_TASK, CeleryDispatcher, InlineDispatcher
from app.pipeline.recovery import recover_once
from app.services import accounts
from app.services.recognizer_data import plan_training_set
from app.services.recognizer_lines import cut_training_set
from app.storage import LocalStorage
from tests.helpers import RecordingDispatcher, inline_dispatcher, live_app, render_page

API = "/api/v1"
#: Where the browser test leaves its screenshot of the project's recogniser section.
SHOTS = Path("/tmp/shots")

#: Directory entries of two printed pages (ASCII: Pillow's bundled font has no umlauts). The
#: shipped Fraktur model misreads some of this Latin type, which a short training corrects.
PAGE_ONE = [
    "Abels, Joseph, Fabrikmeister, Grosskoelnstrasse A 391.",
    "Becker, Johann Joseph, Schreiner, Hochstrasse 12.",
    "Claessen, Peter Joseph, Baecker, Marktstrasse 7.",
    "Dahmen, Josepha, Kauffrau, Breitestrasse 44.",
    "Esser, Jakob, Schuhmacher, Hirschgraben A 830.",
    "Fuchs, Joseph, Pensionair, Peterstrasse A 562.",
    "Gerhards, Jakob, Schneider, Jakobstrasse B 889.",
    "Hamacher, Josef, Wirth, Severinstrasse 101.",
]
PAGE_TWO = [
    "Jansen, Matthias, Zimmermann, Weyerstrasse 15.",
    "Kessel, Joseph, Naeherin, Follerstrasse 3.",
    "Lenzen, Jakob Joseph, Kaufmann, Hohe Pforte 21.",
    "Moll, Johann, Fassbinder, Am Malzbuechel 9.",
    "Nettesheim, Joseph, Gaertner, Koenigstrasse 18.",
    "Offermann, Jacob, Wittwe, Thurnmarkt 6.",
]
#: A short training: enough to beat the base on these lines, seconds on two cores.
TRAINING = {"max_iterations": 120, "chunk_iterations": 40, "learning_rate": 0.002}


@dataclass
class Project:
    """A project with two read pages: the first corrected and verified, the second
    with document ground truth."""

    client: TestClient
    dispatcher: InlineDispatcher
    settings: Settings
    project_id: int
    run_id: int
    verified_page: int
    truth_page: int
    #: The verified page's lines as the reviewer left them.
    corrected: list[str]

    def get(self, path: str) -> Any:
        answer = self.client.get(f"{API}/projects/{self.project_id}{path}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def post(self, path: str, body: Any = None) -> Any:
        return self.client.post(f"{API}/projects/{self.project_id}{path}", json=body)

    def start_run(self, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        stages = [{"stage": "ocr", "engine": "tesseract", "parameters": parameters or {}}]
        answer = self.post("/runs", {"stages": stages})
        assert answer.status_code == 201, answer.text
        return answer.json()


def with_training(dispatcher: InlineDispatcher, settings: Settings) -> InlineDispatcher:
    """The in-process dispatcher with the training task (tests/helpers has the pipeline's)."""
    from workers.context import make_context
    from workers.tasks.train import train_recognizer

    ctx = make_context(settings, dispatcher)
    dispatcher.handlers[TRAIN_TASK] = lambda model_id: train_recognizer(ctx, model_id)
    return dispatcher


def _upload(client: TestClient, project_id: int, path: Path) -> dict[str, Any]:
    answer = client.post(
        f"{API}/projects/{project_id}/documents",
        files={"files": (path.name, path.read_bytes(), "image/png")},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["documents"][0]


def _make_project(settings: Settings, folder: Path) -> Iterator[Project]:
    app = create_app(settings)
    dispatcher = with_training(inline_dispatcher(settings), settings)
    app.state.dispatcher = dispatcher
    client = TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000))
    with client:
        project = client.post(f"{API}/projects", json={"name": "Koeln 1822"}).json()
        first = _upload(client, project["id"], render_page(folder / "one.png", PAGE_ONE))
        second = _upload(client, project["id"], render_page(folder / "two.png", PAGE_TWO))
        dispatcher.drain()
        truth = client.post(
            f"{API}/documents/{second['id']}/ground-truth",
            files={"file": ("two.txt", "\n".join(PAGE_TWO).encode(), "text/plain")},
        )
        assert truth.status_code == 201, truth.text
        run = client.post(f"{API}/projects/{project['id']}/runs", json={})
        assert run.status_code == 201, run.text
        dispatcher.drain()
        run_id = run.json()["id"]
        pages = {
            doc["id"]: client.get(f"{API}/documents/{doc['id']}").json()["pages"][0]["id"]
            for doc in (first, second)
        }
        verified = pages[first["id"]]
        view = client.get(f"{API}/runs/{run_id}/pages/{verified}").json()
        corrected = []
        for line in (x for x in view["lines"] if x["text"].strip()):
            # The reviewer corrects each line to what is printed (the entry it reads closest to).
            truth = min(PAGE_ONE, key=lambda t: Levenshtein.distance(t, line["text"]))
            corrected.append(truth)
            if truth != line["text"]:
                edit = client.patch(
                    f"{API}/lines/{line['id']}", json={"text": truth, "version": line["version"]}
                )
                assert edit.status_code == 200, edit.text
        done = client.post(f"{API}/runs/{run_id}/pages/{verified}/verify")
        assert done.status_code == 200, done.text
        yield Project(
            client, dispatcher, settings, project["id"], run_id, verified, pages[second["id"]],
            corrected,
        )  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Project]:
    """The project, with version 1 trained through the API (module-wide: a training costs
    seconds of CPU that the tests after it share)."""
    folder = tmp_path_factory.mktemp("recognizers")
    settings = Settings(data_dir=folder / "var")
    settings.data_dir.mkdir(parents=True)
    shutil.copyfile(sqlite_template, settings.data_dir / "histocr.db")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HISTOCR_RECOGNIZER_MIN_LINES", "6")
        env.setenv("HISTOCR_FINETUNE_THREADS", "1")
        for project in _make_project(settings, folder):
            started = project.post("/recognizers", TRAINING)
            assert started.status_code == 201, started.text
            assert started.json()["status"] == "queued"
            project.dispatcher.drain()
            yield project


def test_training_lines_come_from_verified_pages_and_aligned_ground_truth(
    trained: Project, tmp_path: Path
) -> None:
    with get_sessionmaker(trained.settings.resolved_database_url)() as session:
        plan = plan_training_set(session, trained.project_id)
    pages = {page.page_id: page for page in plan.pages}
    # The verified page's lines with their latest text, the other page's from its ground truth.
    assert {line.source for line in pages[trained.verified_page].lines} == {"verified"}
    assert {line.source for line in pages[trained.truth_page].lines} == {"ground_truth"}
    assert [line.text for line in pages[trained.verified_page].lines] == trained.corrected
    assert sorted(trained.corrected) == PAGE_ONE
    assert plan.counts()["ground_truth_lines"] >= len(PAGE_TWO) - 2

    cut = cut_training_set(plan, LocalStorage(trained.settings.resolved_storage_dir), tmp_path)
    assert len(cut) == plan.count()  # every line of these clean pages is confirmed and cut
    texts = [line.text for line in cut]
    for image_path, text in ((line.image, line.text) for line in cut):
        assert (image_path.with_suffix("").with_suffix(".gt.txt")).read_text().strip() == text
        with Image.open(image_path) as image:
            width, height = image.size
        # One printed line (70 px apart on the page) with a small margin, not the page.
        assert 30 <= height < 100 and width > 400, (image_path.name, image.size)
        # The image shows the line its text belongs to: Tesseract reads it closer to its own
        # text than to any other training line.
        read = _read_line(image_path)
        nearest = min(texts, key=lambda truth: Levenshtein.distance(truth, read))
        assert nearest == text, (image_path.name, read, text)


def _read_line(image: Path) -> str:
    out = subprocess.run(
        ["tesseract", str(image), "stdout", "--psm", "7", "-l", "eng"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def test_a_trained_version_is_the_default_that_new_runs_read_with(trained: Project) -> None:
    (version,) = trained.get("/recognizers")
    assert version["status"] == "done", version
    assert version["validation_cer"] < version["base_validation_cer"]
    assert version["default"] is True and version["iterations"] > 0
    assert version["lines"] == version["verified_lines"] + version["ground_truth_lines"]
    assert version["training_lines"] + version["validation_lines"] <= version["lines"]
    assert version["progress"]["history"] and version["seconds"] > 0
    assert version["has_log"] and version["has_training_set"]
    log = trained.client.get(f"{API}/projects/{trained.project_id}/recognizers/1/log")
    assert log.status_code == 200 and "lstmtraining" in log.text
    exported = trained.client.get(
        f"{API}/projects/{trained.project_id}/recognizers/1/training-set.zip"
    )
    assert exported.status_code == 200 and exported.content[:2] == b"PK"

    run = trained.start_run()
    ocr = run["config"]["stages"][0]["parameters"]
    assert ocr["recognizer"] == "1" and ocr["recognizer_sha256"] == version["model_sha256"]
    trained.dispatcher.drain()
    assert trained.client.get(f"{API}/runs/{run['id']}").json()["status"] == "done"
    with session_scope(trained.settings.resolved_database_url) as session:
        used = session.execute(
            select(Run.config).where(Run.id == run["id"])
        ).scalar_one()  # the run's record
    assert used.stage("ocr").parameters["recognizer"] == "1"
    page = trained.client.get(f"{API}/runs/{run['id']}/pages/{trained.truth_page}").json()
    ocr_result = next(stage for stage in page["stages"] if stage["stage"] == "ocr")
    assert f"histocr-{version['model_sha256'][:16]}" in ocr_result["model"]

    base = trained.start_run({"recognizer": "base"})
    assert base["config"]["stages"][0]["parameters"]["recognizer"] == "base"
    assert "recognizer_sha256" not in base["config"]["stages"][0]["parameters"]
    refused = trained.post("/runs", {"stages": [{"stage": "ocr", "engine": "tesseract",
                                                 "parameters": {"recognizer": "7"}}]})  # fmt: skip
    assert refused.status_code == 422 and "version 7" in refused.json()["detail"]
    trained.dispatcher.drain()


def test_a_cancelled_training_leaves_the_previous_version_the_default(trained: Project) -> None:
    started = trained.post("/recognizers", {**TRAINING, "max_iterations": 5000})
    assert started.status_code == 201, started.text
    number = started.json()["number"]
    assert trained.post("/recognizers", TRAINING).status_code == 409  # one at a time
    worker = threading.Thread(target=trained.dispatcher.drain)
    worker.start()
    deadline = time.monotonic() + 120
    while trained.get(f"/recognizers/{number}")["status"] == "queued":
        assert time.monotonic() < deadline, "the training did not start"
        time.sleep(0.2)
    cancelled = trained.post(f"/recognizers/{number}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    worker.join(timeout=60)
    assert not worker.is_alive(), "the training did not stop"
    after = trained.get(f"/recognizers/{number}")
    assert after["status"] == "cancelled" and after["model_sha256"] is None
    assert trained.post(f"/recognizers/{number}/cancel").status_code == 409
    assert [v["number"] for v in trained.get("/recognizers") if v["default"]] == [1]
    run = trained.start_run()
    assert run["config"]["stages"][0]["parameters"]["recognizer"] == "1"
    trained.dispatcher.drain()


def test_verified_lines_over_the_threshold_start_a_training(trained: Project) -> None:
    settings = trained.client.put(
        f"{API}/projects/{trained.project_id}/recognizer-settings", json={"auto_train_after": 3}
    )
    assert settings.status_code == 200, settings.text
    assert settings.json()["auto_train_after"] == 3
    before = len(trained.get("/recognizers"))
    run = trained.start_run({"recognizer": "base"})
    trained.dispatcher.drain()
    trained.dispatcher.pending.clear()
    verified = trained.client.post(f"{API}/runs/{run['id']}/pages/{trained.truth_page}/verify")
    assert verified.status_code == 200
    versions = trained.get("/recognizers")
    assert len(versions) == before + 1
    assert versions[0]["status"] == "queued" and versions[0]["author"] == "automatic"
    assert [d.task for d in trained.dispatcher.pending] == [TRAIN_TASK]
    # Cancelled here, so that it does not train: the threshold was what this test is about.
    assert trained.post(f"/recognizers/{versions[0]['number']}/cancel").status_code == 200
    trained.dispatcher.pending.clear()


def test_a_training_whose_worker_died_is_failed_by_the_sweep(trained: Project) -> None:
    started = trained.post("/recognizers", TRAINING)
    assert started.status_code == 201, started.text
    trained.dispatcher.pending.clear()  # no worker takes it: it "died" after its claim
    with session_scope(trained.settings.resolved_database_url) as session:
        session.execute(
            update(RecognizerModel)
            .where(RecognizerModel.project_id == trained.project_id)
            .where(RecognizerModel.number == started.json()["number"])
            .values(status=TrainingStatus.TRAINING, heartbeat_at=utcnow() - timedelta(hours=1))
        )
    recover_once(trained.settings, RecordingDispatcher())
    after = trained.get(f"/recognizers/{started.json()['number']}")
    assert after["status"] == "failed" and "worker stopped" in after["error"]
    assert trained.post("/recognizers", TRAINING).status_code == 201  # the slot is free again
    trained.dispatcher.pending.clear()
    with session_scope(trained.settings.resolved_database_url) as session:
        session.execute(
            update(RecognizerModel)
            .where(RecognizerModel.status == TrainingStatus.QUEUED)
            .values(status=TrainingStatus.CANCELLED)
        )


def test_too_few_lines_is_refused_with_the_counts(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HISTOCR_RECOGNIZER_MIN_LINES", "50")
    for project in _make_project(sqlite_settings, tmp_path):
        refused = project.post("/recognizers")
        assert refused.status_code == 409
        counts = refused.json()["counts"]
        assert counts["min_lines"] == 50 and 0 < counts["lines"] < 50
        assert counts["lines"] == counts["verified_lines"] + counts["ground_truth_lines"]
        assert project.get("/recognizers") == []


@pytest.mark.postgres
def test_two_trainings_started_at_once_on_postgresql_queue_one(
    postgres_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HISTOCR_RECOGNIZER_MIN_LINES", "1")
    for project in _make_project(postgres_settings, tmp_path):
        _start_two_at_once(project)


def _start_two_at_once(project: Project) -> None:
    barrier = threading.Barrier(2)
    answers: list[int] = []

    def start() -> None:
        barrier.wait()
        answers.append(project.post("/recognizers", TRAINING).status_code)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [201, 409]
    assert [v["status"] for v in project.get("/recognizers")] == ["queued"]
    assert [d.task for d in project.dispatcher.pending] == [TRAIN_TASK]


def test_a_celery_worker_trains_a_version(
    sqlite_settings: Settings, tmp_path: Path, start_worker: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HISTOCR_RECOGNIZER_MIN_LINES", "6")
    for project in _make_project(sqlite_settings, tmp_path):
        worker = start_worker(sqlite_settings, HISTOCR_FINETUNE_THREADS="1")
        project.client.app.state.dispatcher = CeleryDispatcher(project.client.app.state.celery)
        started = project.post("/recognizers", TRAINING)
        assert started.status_code == 201, started.text
        deadline = time.monotonic() + 300
        while (version := project.get("/recognizers/1"))["status"] in ("queued", "training"):
            worker.assert_alive()
            assert time.monotonic() < deadline, version
            time.sleep(1)
        assert version["status"] == "done", version
        assert version["model_sha256"] and version["has_log"] and version["progress"]["history"]


def test_viewers_read_and_editors_train(sqlite_settings: Settings) -> None:
    tokens = {}
    with session_scope(sqlite_settings.resolved_database_url) as session:
        for name in ("editor", "viewer"):
            user, _ = accounts.create_user(session, name)
            tokens[name] = {"Authorization": f"Bearer {accounts.create_token(session, user)[1]}"}
    client = TestClient(create_app(sqlite_settings), base_url="http://127.0.0.1:8000")
    project = client.post(f"{API}/projects", json={"name": "roles"}, headers=tokens["editor"])
    pid = project.json()["id"]
    member = client.put(
        f"{API}/projects/{pid}/members/viewer", json={"role": "viewer"}, headers=tokens["editor"]
    )
    assert member.status_code == 200, member.text
    path = f"{API}/projects/{pid}"
    viewer, editor = tokens["viewer"], tokens["editor"]
    assert client.get(f"{path}/recognizers", headers=viewer).status_code == 200
    assert client.get(f"{path}/recognizer-settings", headers=viewer).status_code == 200
    assert client.post(f"{path}/recognizers", headers=viewer).status_code == 403
    settings = {"auto_train_after": 100}
    assert (
        client.put(f"{path}/recognizer-settings", json=settings, headers=viewer).status_code == 403
    )
    assert client.post(f"{path}/recognizers", headers=editor).status_code == 409  # no lines yet
    assert (
        client.put(f"{path}/recognizer-settings", json=settings, headers=editor).status_code == 200
    )


def test_the_pages_show_the_versions_and_which_one_a_run_read_with(
    trained: Project, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    run = trained.start_run()
    trained.dispatcher.drain()
    with live_app(trained.settings) as base:
        browser.set_window_size(1366, 900)
        browser.get(f"{base}/runs/{run['id']}")
        used = browser.find_element(By.ID, "run-recognizer")
        assert "version 1 of this project's recogniser" in used.text
        used.find_element(By.TAG_NAME, "a").click()
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: d.find_elements(By.ID, "recognizer-1"))
        row = browser.find_element(By.ID, "recognizer-1")
        assert "default" in row.text and "done" in row.text and "shipped model" in row.text
        row.find_element(By.TAG_NAME, "summary").click()
        assert "learning rate" in row.text and "training log" in row.text
        summary = browser.find_element(By.ID, "recognizer-summary")
        wait.until(lambda _d: "New runs read with version 1" in summary.text)
        SHOTS.mkdir(exist_ok=True)
        browser.execute_script("document.getElementById('recognizer').scrollIntoView()")
        browser.save_screenshot(str(SHOTS / "recognizer-1366.png"))
        browser.execute_script("document.getElementById('start-run-form').scrollIntoView()")
        browser.save_screenshot(str(SHOTS / "recognizer-run-form-1366.png"))
        options = browser.find_elements(By.CSS_SELECTOR, "#ocr-recognizer option")
        assert [o.get_attribute("value") for o in options][:3] == ["default", "base", "1"]


def test_the_default_is_the_best_trained_version_no_worse_than_the_base(
    sqlite_settings: Settings,
) -> None:
    from app.services.recognizers import default_version
    from tests.factories import add_project

    with session_scope(sqlite_settings.resolved_database_url) as session:
        project = add_project(session)

        def version(number: int, status: str, iterations: int, cer: float, base: float) -> None:
            session.add(
                RecognizerModel(
                    project_id=project.id, number=number, status=status, base_model="frak2021",
                    iterations=iterations, validation_cer=cer, base_validation_cer=base,
                    model_key=f"{number}.traineddata",
                )
            )  # fmt: skip
            session.flush()

        assert default_version(session, project.id) is None  # the shipped model
        version(1, TrainingStatus.DONE, 0, 0.02, 0.02)  # nothing trained: the base was kept
        version(2, TrainingStatus.DONE, 400, 0.03, 0.02)  # worse than the base
        assert default_version(session, project.id) is None
        version(3, TrainingStatus.DONE, 600, 0.0, 0.0)  # as good on its held-out lines
        assert default_version(session, project.id).number == 3  # type: ignore[union-attr]
        version(4, TrainingStatus.DONE, 800, 0.01, 0.03)
        version(5, TrainingStatus.FAILED, 800, 0.0, 0.05)
        assert default_version(session, project.id).number == 3  # type: ignore[union-attr]
        version(6, TrainingStatus.DONE, 200, 0.0, 0.01)  # a tie: the newer has more lines
        assert default_version(session, project.id).number == 6  # type: ignore[union-attr]


def test_a_line_is_cut_at_its_printed_band_and_a_joined_entry_in_two() -> None:
    from app.services.recognizer_data import PlannedLine
    from app.services.recognizer_lines import segments_of
    from models.ocr.linecut import PrintedLine

    above = PrintedLine((40, 100, 900, 140), "Abels, Joseph, Fabrikmeister, Hochstrasse 3.", 90)
    entry = PrintedLine((40, 170, 1000, 210), "Becker, Johann, Schreiner, Grosskoelnstrasse A", 90)
    wrap = PrintedLine((40, 240, 120, 280), "391.", 90)
    printed = [above, entry, wrap]

    # A box made tall by a swash capital reaching into the line above: the entry's own band.
    text = "Becker, Johann, Schreiner, Grosskoelnstrasse A"
    tall = PlannedLine(2, (0, 0, 1, 1), text, "verified", reading=text)
    (one,) = segments_of((38, 110, 1002, 212), tall, printed)
    assert (one.box[1], one.box[3]) == (170, 210) and one.text == text

    # A wrapped entry the engine joined into one line: two samples, the text cut between them.
    whole = f"{text} 391."
    joined = PlannedLine(2, (0, 0, 1, 1), whole, "ground_truth", reading=whole)
    first, second = segments_of((38, 168, 1002, 282), joined, printed)
    assert (first.box, first.text) == (entry.box, text)
    assert (second.box, second.text) == (wrap.box, "391.")

    # Nothing printed there reads like it: left out.
    other = PlannedLine(2, (0, 0, 1, 1), "Zimmermann, Peter", "verified", reading="Zimmermann")
    assert segments_of((38, 168, 1002, 212), other, printed) == []
