"""The CRF extractor learns a project's own directory from the pages its reviewers verified
(issue 12 §1: "trained on verified records … that improves as a historian verifies pages").

A directory the shipped prior misreads (the trade printed before the name: it takes the trade
for the surname) is imported, extracted, corrected and verified on one document's page; the
model trained on that page then reads another document of the same directory correctly.
Runs happen in process (tests/helpers.inline_dispatcher) on SQLite.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from app.cli import cli
from app.config import Settings, get_settings
from app.db.session import session_scope
from app.main import create_app
from app.pipeline.crf_training import train_project_model
from tests.helpers import inline_dispatcher

API = "/api/v1"
FIELDS = ("first and middle names", "surname", "occupation", "address")
SURNAMES = (
    "Albrecht Bauer Conrad Dietz Ebert Fink Gerber Hahn Jung Keller Lang Moser Nagel Ott "
    "Pfeil Quast Roth Sauer Thiel Ulrich Vogt Wolf Zahn Brand Kurz Hering Stein Lorenz"
).split()
GIVEN = ("Joh. Peter", "Carl", "Georg Adam", "Wilh.", "Friedr.", "Anna Maria", "Jacob", "Paul")
TRADES = ("Bäcker", "Schneider", "Metzger", "Weber", "Schlosser", "Wirth", "Maurer", "Küfer")
STREETS = ("Lange Gasse", "Hintergasse", "Marktplatz", "Kirchweg", "Brückengasse")


def _entries(first: int, last: int) -> list[tuple[str, dict[str, str]]]:
    """Entries as this directory prints them, ``Trade, Surname, Given names, Street N.``,
    with the record each holds."""
    out = []
    for n in range(first, last):
        record = {
            FIELDS[0]: GIVEN[n % len(GIVEN)],
            FIELDS[1]: SURNAMES[n],
            FIELDS[2]: TRADES[(n * 3) % len(TRADES)],
            FIELDS[3]: f"{STREETS[(n * 7) % len(STREETS)]} {n + 3}.",
        }
        out.append(
            (
                f"{record[FIELDS[2]]}, {record[FIELDS[1]]}, {record[FIELDS[0]]}, "
                f"{record[FIELDS[3]]}",
                record,
            )
        )
    return out


TRAINING = _entries(0, 20)
UNSEEN = _entries(20, len(SURNAMES))


class Project:
    """A project over one database with its imported documents, work run in process."""

    def __init__(self, settings: Settings) -> None:
        app = create_app(settings)
        self.dispatcher = inline_dispatcher(settings)
        app.state.dispatcher = self.dispatcher
        self.settings = settings
        self.client = TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 1))
        self.id = 0
        self.documents: dict[str, int] = {}

    def create(self) -> None:
        self.id = self.client.post(f"{API}/projects", json={"name": "Gewerbe"}).json()["id"]
        for name, entries in (("teil-1.txt", TRAINING), ("teil-2.txt", UNSEEN)):
            text = "\n".join(entry for entry, _record in entries) + "\n"
            answer = self.client.post(
                f"{API}/projects/{self.id}/documents",
                files={"files": (name, text.encode(), "text/plain")},
            )
            assert answer.status_code == 201, answer.text
            self.documents[name] = answer.json()["documents"][0]["id"]
        self.dispatcher.drain()

    def run(self, document: str, model: str = "prior") -> tuple[int, int]:
        """Import then CRF extraction over one document: (run id, its page id)."""
        stages = [
            {"stage": "ocr", "engine": "import"},
            {"stage": "extract", "engine": "crf", "parameters": {"model": model}},
        ]
        body = {"stages": stages, "document_ids": [self.documents[document]]}
        answer = self.client.post(f"{API}/projects/{self.id}/runs", json=body)
        assert answer.status_code == 201, answer.text
        self.dispatcher.drain()
        run_id = answer.json()["id"]
        assert self.client.get(f"{API}/runs/{run_id}").json()["status"] == "done"
        pages = self.client.get(f"{API}/documents/{self.documents[document]}").json()["pages"]
        return run_id, pages[0]["id"]

    def records(self, run_id: int, page_id: int) -> list[dict[str, Any]]:
        answer = self.client.get(f"{API}/runs/{run_id}/pages/{page_id}")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["records"])

    def review(self, run_id: int, page_id: int, truth: list[dict[str, str]]) -> None:
        """A historian corrects every record of the page to the truth, then verifies it."""
        records = self.records(run_id, page_id)
        assert len(records) == len(truth)
        for record, right in zip(records, truth, strict=True):
            answer = self.client.patch(
                f"{API}/records/{record['id']}",
                json={"fields": right, "version": record["version"]},
            )
            assert answer.status_code == 200, answer.text
        verified = self.client.post(f"{API}/runs/{run_id}/pages/{page_id}/verify")
        assert verified.status_code == 200, verified.text


def _right(records: list[dict[str, Any]], truth: list[dict[str, str]]) -> int:
    """How many entries (one a line) have a record with every field as the truth has it."""
    by_line = {r["line_number"]: r["fields"] for r in records}
    return sum(
        all((by_line.get(line, {}).get(name) or "") == right[name] for name in FIELDS)
        for line, right in enumerate(truth, start=1)
    )


@pytest.fixture
def project(
    sqlite_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    monkeypatch.setenv("HISTOCR_CRF_MODEL_DIR", str(tmp_path / "crf-models"))
    made = Project(sqlite_settings)
    with made.client:
        made.create()
        yield made


def test_a_model_trained_on_verified_pages_reads_the_projects_directory(
    project: Project, tmp_path: Path
) -> None:
    unseen_truth = [record for _entry, record in UNSEEN]
    prior_run, prior_page = project.run("teil-2.txt")
    before = _right(project.records(prior_run, prior_page), unseen_truth)

    model_dir = tmp_path / "crf-models"
    with session_scope(project.settings.resolved_database_url) as session:
        assert train_project_model(session, project.id, model_dir) is None  # nothing verified

    run_id, page_id = project.run("teil-1.txt")
    project.review(run_id, page_id, [record for _entry, record in TRAINING])
    with session_scope(project.settings.resolved_database_url) as session:
        trained = train_project_model(session, project.id, model_dir)
        assert trained is not None and trained.records == len(TRAINING) and not trained.reused
        again = train_project_model(session, project.id, model_dir)
        assert again is not None and again.reused and again.name == trained.name
        # The unverified page of the prior's run taught it nothing: one page, 20 records.
        assert trained.pages == 1

    engines = project.client.get(f"{API}/engines").json()
    crf = next(engine for engine in engines if engine["name"] == "crf")
    (model,) = [p for p in crf["parameters"] if p["name"] == "model"]
    assert trained.name in model["choices"] and "prior" in model["choices"]

    learnt_run, learnt_page = project.run("teil-2.txt", model=trained.name)
    after_records = project.records(learnt_run, learnt_page)
    after = _right(after_records, unseen_truth)
    assert after == len(unseen_truth) > before, [r["fields"] for r in after_records]
    assert {r["provenance"]["surname"] for r in after_records} == {"crf"}
    run = project.client.get(f"{API}/runs/{learnt_run}").json()
    assert trained.name in str(run)


def test_a_run_cannot_name_a_model_this_installation_does_not_have(project: Project) -> None:
    stages = [
        {"stage": "ocr", "engine": "import"},
        {"stage": "extract", "engine": "crf", "parameters": {"model": "../../etc/passwd"}},
    ]
    answer = project.client.post(f"{API}/projects/{project.id}/runs", json={"stages": stages})
    assert answer.status_code == 422, answer.text
    assert "prior" in answer.json()["detail"]


def test_the_command_trains_and_prints_the_models_name(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HISTOCR_DATA_DIR", str(project.settings.data_dir))
    get_settings.cache_clear()  # the command reads the settings of this project's database
    try:
        runner = CliRunner()
        refused = runner.invoke(cli, ["train-crf", str(project.id)])
        assert refused.exit_code != 0 and "fewer than 20 verified records" in refused.output

        run_id, page_id = project.run("teil-1.txt")
        project.review(run_id, page_id, [record for _entry, record in TRAINING])
        done = runner.invoke(cli, ["train-crf", str(project.id)])
        assert done.exit_code == 0, done.output
        assert done.stdout.strip().startswith(f"project-{project.id}-")  # the name alone
    finally:
        get_settings.cache_clear()
