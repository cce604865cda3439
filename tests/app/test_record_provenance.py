"""Every record says what produced each of its fields (issue 12 §1: "the record shows which
rule or model produced each field"): the CRF model, a heading or ditto rule, the rules parser,
an mLLM engine, or a reviewer's edit.

Runs happen in process (tests/helpers.inline_dispatcher) on imported text, on SQLite and
PostgreSQL.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db.session import session_scope
from app.db.tables import Record, StageResult
from app.main import create_app
from models.base import EngineResult
from models.stages import StageOutput
from models.stages.runner import parse_records
from tests.helpers import inline_dispatcher
from workers.tasks import stages as stage_tasks

API = "/api/v1"
FIELDS = ["first and middle names", "surname", "occupation", "address"]
TEXT = (
    "Nr. 12.\n"
    "Hr. Christian August Arndt, Advokat.\n"
    "\n"
    "Förster, Heinrich, Bäcker, Jakobstraße B 889.\n"
)


class Site:
    """The app over one database, running the work in process."""

    def __init__(self, settings: Settings) -> None:
        app = create_app(settings)
        self.dispatcher = inline_dispatcher(settings)
        app.state.dispatcher = self.dispatcher
        self.client = TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 1))
        self.settings = settings

    def imported_run(self, stages: list[dict[str, Any]] | None) -> tuple[int, int]:
        """A project with TEXT as a document and a finished run over it: (run, page) ids."""
        project = self.client.post(f"{API}/projects", json={"name": "provenance"}).json()["id"]
        upload = self.client.post(
            f"{API}/projects/{project}/documents",
            files={"files": ("adressbuch.txt", TEXT.encode(), "text/plain")},
        )
        assert upload.status_code == 201, upload.text
        self.dispatcher.drain()
        document = upload.json()["documents"][0]["id"]
        body = {"stages": stages} if stages else {"stages": [{"stage": "ocr", "engine": "import"}]}
        if stages is None:  # the default extraction after the import
            body["stages"].append({"stage": "extract", "engine": "crf"})
        run = self.client.post(f"{API}/projects/{project}/runs", json=body)
        assert run.status_code == 201, run.text
        self.dispatcher.drain()
        run_id = run.json()["id"]
        assert self.client.get(f"{API}/runs/{run_id}").json()["status"] == "done"
        page = self.client.get(f"{API}/documents/{document}").json()["pages"][0]["id"]
        return run_id, page

    def records(self, run_id: int, page_id: int) -> dict[str, dict[str, Any]]:
        """The page view's records by surname."""
        answer = self.client.get(f"{API}/runs/{run_id}/pages/{page_id}")
        assert answer.status_code == 200, answer.text
        return {r["fields"]["surname"]: r for r in answer.json()["records"]}


def _site(settings: Settings) -> Iterator[Site]:
    site = Site(settings)
    with site.client:
        yield site


@pytest.fixture
def site(sqlite_settings: Settings) -> Iterator[Site]:
    yield from _site(sqlite_settings)


@pytest.fixture
def site_pg(postgres_settings: Settings) -> Iterator[Site]:
    yield from _site(postgres_settings)


def _crf_fields_say_where_they_came_from(site: Site) -> None:
    run_id, page_id = site.imported_run(None)
    records = site.records(run_id, page_id)
    arndt, foerster = records["Arndt"], records["Förster"]
    assert arndt["fields"]["address"] == "Nr. 12."  # carried down from the house heading
    assert arndt["provenance"] == {
        "first and middle names": "crf",
        "surname": "crf",
        "occupation": "crf",
        "address": "rule:house-heading",
    }
    assert foerster["provenance"] == dict.fromkeys(FIELDS, "crf")
    with session_scope(site.settings.resolved_database_url) as session:
        stored = session.scalars(select(Record.provenance).where(Record.run_id == run_id)).all()
    assert {"address": "rule:house-heading"}.items() <= stored[0].items()

    # A reviewer's value is the reviewer's; the fields left alone keep the model's word.
    change = site.client.patch(
        f"{API}/records/{foerster['id']}",
        json={"fields": {"occupation": "Bäckermeister"}, "version": foerster["version"]},
    )
    assert change.status_code == 200, change.text
    assert change.json()["provenance"]["occupation"] == "edit"
    after = site.records(run_id, page_id)["Förster"]
    assert after["provenance"] == {**dict.fromkeys(FIELDS, "crf"), "occupation": "edit"}
    added = site.client.post(
        f"{API}/runs/{run_id}/pages/{page_id}/records",
        json={"fields": {"surname": "Becker", "occupation": "Konditer"}},
    )
    assert added.status_code == 201, added.text
    assert added.json()["provenance"] == {"surname": "edit", "occupation": "edit"}

    # The JSON Lines export carries the same account, per version.
    for version, occupation in (("latest", "edit"), ("engine", "crf")):
        export = site.client.get(f"{API}/runs/{run_id}/records.jsonl?version={version}")
        assert export.status_code == 200, export.text
        rows = {row["fields"]["surname"]: row for row in map(json.loads, export.text.splitlines())}
        assert rows["Förster"]["provenance"]["occupation"] == occupation
        assert rows["Arndt"]["provenance"]["address"] == "rule:house-heading"
        assert ("Becker" in rows) == (version == "latest")


def test_crf_records_name_the_model_or_rule_of_each_field(site: Site) -> None:
    _crf_fields_say_where_they_came_from(site)


def test_crf_records_name_the_model_or_rule_of_each_field_on_postgresql(site_pg: Site) -> None:
    _crf_fields_say_where_they_came_from(site_pg)


def test_the_rules_parser_names_its_rules(site: Site) -> None:
    stages = [{"stage": "ocr", "engine": "import"}, {"stage": "extract", "engine": "rules"}]
    run_id, page_id = site.imported_run(stages)
    records = site.records(run_id, page_id)
    foerster = records["Förster"]
    filled = [name for name, value in foerster["fields"].items() if value]
    assert foerster["provenance"] == dict.fromkeys(filled, "rule:entry") and filled
    assert records["Arndt"]["provenance"]["address"] == "rule:house-heading"


def test_an_engine_that_says_nothing_is_named_for_its_fields(site: Site) -> None:
    """An mLLM answers records only: the stage task names the engine for each filled field."""
    run_id, page_id = site.imported_run(None)
    answer = json.dumps({"records": [{**dict.fromkeys(FIELDS), "surname": "Arndt"}]})
    output = StageOutput(
        text=answer,
        result=EngineResult(text=answer, model="a-vlm", latency_s=0.1),
        records=parse_records(answer, FIELDS, TEXT),
    )
    with session_scope(site.settings.resolved_database_url) as session:
        result = session.scalars(
            select(StageResult).where(StageResult.run_id == run_id, StageResult.stage == "extract")
        ).one()
        result.engine = "openai"
        stage_tasks._record_success(session, result, output)
    assert site.records(run_id, page_id)["Arndt"]["provenance"] == {"surname": "openai"}


def test_provenance_beside_the_records_is_checked_not_trusted() -> None:
    records = [
        {**dict.fromkeys(FIELDS), "surname": "Arndt", "address": "Nr. 12."},
        {**dict.fromkeys(FIELDS), "surname": "Becker"},
    ]
    answer = {
        "records": records,
        "provenance": [
            {"surname": "crf", "address": "rule:house-heading", "occupation": "crf", "x": 3},
            "not an object",
        ],
    }
    first, second = parse_records(json.dumps(answer), FIELDS, TEXT)
    # Only filled fields, only text: the empty occupation and the number are dropped.
    assert first.provenance == {"surname": "crf", "address": "rule:house-heading"}
    assert second.provenance == {}
    unpaired = {"records": records, "provenance": [{"surname": "crf"}]}  # one for two records
    assert [r.provenance for r in parse_records(json.dumps(unpaired), FIELDS, TEXT)] == [{}, {}]
