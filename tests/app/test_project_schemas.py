"""Project schemas (issue 12 §2): a project defines its record fields with their meaning; runs
record the version they used; mLLM extractors get it as JSON Schema, the offline extractor as
its field list; the CSV columns follow it.

Runs happen in process (tests/helpers.inline_dispatcher) on imported text pages, so that no
OCR time is spent: what is tested is what happens to the fields.
"""

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.helpers import InlineDispatcher, inline_dispatcher

API = "/api/v1"
DIRECTORY = (
    "Förster, Christian, Fabrikmeister, Großkölnstraße A 391.\n"
    "Müller, Peter Joseph, Bäcker, Hochstraße 12.\n"
)
CITY_FIELDS = ["first and middle names", "surname", "occupation", "address"]
#: The text pages' own text as the OCR stage's, then the offline extractor.
IMPORT_THEN_RULES = [{"stage": "ocr", "engine": "import"}, {"stage": "extract", "engine": "rules"}]
#: A schema of its own: another order, a field the rules extractor does not know.
CUSTOM = [
    {"name": "surname", "description": "Family name", "required": True, "example": "Förster"},
    {"name": "address", "description": "Street and number", "example": "Hochstraße 12"},
    {"name": "first and middle names"},
    {"name": "remark", "description": "Anything printed after the address, such as a title"},
]


class App:
    """The app with a dispatcher that runs ingest, stages and evaluation when drained."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.dispatcher: InlineDispatcher = inline_dispatcher(settings)
        self.app.state.dispatcher = self.dispatcher
        self.client = TestClient(
            self.app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000)
        )

    def project(self, **body: Any) -> dict[str, Any]:
        answer = self.client.post(f"{API}/projects", json={"name": "Köln 1822", **body})
        assert answer.status_code == 201, answer.text
        return answer.json()

    def upload_text(self, project_id: int, text: str = DIRECTORY) -> int:
        answer = self.client.post(
            f"{API}/projects/{project_id}/documents",
            files={"files": ("koeln.txt", text.encode(), "text/plain")},
        )
        assert answer.status_code == 201, answer.text
        self.dispatcher.drain()
        return int(answer.json()["documents"][0]["id"])

    def run(self, project_id: int, **body: Any) -> dict[str, Any]:
        body.setdefault("stages", IMPORT_THEN_RULES)
        answer = self.client.post(f"{API}/projects/{project_id}/runs", json=body)
        assert answer.status_code == 201, answer.text
        self.dispatcher.drain()
        run = self.client.get(f"{API}/runs/{answer.json()['id']}").json()
        assert run["status"] == "done", run
        return run

    def csv_rows(self, run_id: int) -> list[list[str]]:
        answer = self.client.get(f"{API}/runs/{run_id}/records.csv")
        assert answer.status_code == 200, answer.text
        return list(csv.reader(io.StringIO(answer.text)))


@pytest.fixture
def app(sqlite_settings: Settings) -> Iterator[App]:
    made = App(sqlite_settings)
    with made.client:
        yield made


def test_a_new_project_has_the_city_directory_schema_with_meanings(app: App) -> None:
    project = app.project()
    assert project["schema_fields"] == CITY_FIELDS and project["schema_version"] == 1
    schema = app.client.get(f"{API}/projects/{project['id']}/schema").json()
    assert schema["version"] == 1 and schema["author"] == "local"
    assert [f["name"] for f in schema["fields"]] == CITY_FIELDS
    assert all(f["description"] and f["example"] for f in schema["fields"])
    assert [f["name"] for f in schema["fields"] if f["required"]] == ["surname"]


def test_schema_versions_are_kept_and_an_unchanged_schema_adds_none(app: App) -> None:
    project = app.project(record_fields=CUSTOM)
    url = f"{API}/projects/{project['id']}/schema"
    first = app.client.get(url).json()
    assert [f["name"] for f in first["fields"]] == [f["name"] for f in CUSTOM]
    assert first["fields"][0] == CUSTOM[0]
    assert first["fields"][2] == {
        "name": "first and middle names",
        "description": "",
        "required": False,
        "example": "",
    }

    changed = [*CUSTOM[:3], {"name": "title", "description": "Hr., Dr., Wwe."}]
    second = app.client.put(url, json={"fields": changed})
    assert second.status_code == 200, second.text
    assert second.json()["version"] == 2
    same = app.client.put(url, json={"fields": changed}).json()
    assert same["version"] == 2
    versions = app.client.get(f"{url}/versions").json()
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["fields"][3]["name"] == "remark"
    shown = app.client.get(f"{API}/projects/{project['id']}").json()
    assert shown["schema_fields"][3] == "title" and shown["schema_version"] == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([], "at least 1"),
        ([{"name": "surname"}, {"name": "Surname"}], "appears twice"),
        ([{"name": "surname"}, {"name": "ID"}], "cannot be a field name"),
        ([{"name": "surname"}, {"name": "line"}], "cannot be a field name"),
        ([{"name": " "}], "blank"),
        ([{"name": "a\nb"}], "one line"),
    ],
)
def test_unusable_schemas_are_refused_with_a_reason(app: App, fields, message) -> None:
    project = app.project()
    answer = app.client.put(f"{API}/projects/{project['id']}/schema", json={"fields": fields})
    assert answer.status_code == 422
    assert message in json.dumps(answer.json())
    assert app.client.get(f"{API}/projects/{project['id']}/schema").json()["version"] == 1


def test_names_and_definitions_at_creation_are_one_or_the_other(app: App) -> None:
    answer = app.client.post(
        f"{API}/projects",
        json={"name": "both", "schema_fields": ["surname"], "record_fields": CUSTOM},
    )
    assert answer.status_code == 422 and "not both" in answer.text
    named = app.client.post(f"{API}/projects", json={"name": "names", "schema_fields": ["surname"]})
    schema = app.client.get(f"{API}/projects/{named.json()['id']}/schema").json()
    assert [f["name"] for f in schema["fields"]] == ["surname"]
    assert schema["fields"][0]["description"]  # the city-directory meaning of a known name


def test_a_run_uses_the_custom_schema_and_keeps_its_version(app: App) -> None:
    project = app.project(record_fields=CUSTOM)
    app.upload_text(project["id"])
    run = app.run(project["id"])
    config = run["config"]
    assert config["schema_version"] == 1
    assert config["schema_fields"] == [f["name"] for f in CUSTOM]
    assert config["schema_definitions"][0]["description"] == "Family name"
    extract = next(s for s in config["stages"] if s["stage"] == "extract")
    assert extract["fields"] == config["schema_fields"]

    # The CSV has the schema's columns in its order; the rules extractor fills what it knows
    # and leaves a field it has no rule for empty.
    header, *rows = app.csv_rows(run["id"])
    assert header[:4] == ["surname", "address", "first and middle names", "remark"]
    assert header[4:6] == ["document", "page"]  # then the rest of where each record came from
    assert [row[:3] for row in rows] == [
        ["Förster", "Großkölnstraße A 391.", "Christian"],
        ["Müller", "Hochstraße 12.", "Peter Joseph"],
    ]
    assert [row[3] for row in rows] == ["", ""]

    # A new version changes what the next run extracts, never the run before it.
    url = f"{API}/projects/{project['id']}/schema"
    assert app.client.put(url, json={"fields": [CUSTOM[2], CUSTOM[0]]}).status_code == 200
    later = app.run(project["id"])
    assert later["config"]["schema_version"] == 2
    assert app.csv_rows(later["id"])[0][:3] == ["first and middle names", "surname", "document"]
    assert app.csv_rows(run["id"])[0][:4] == header[:4]


def test_a_schema_the_records_ground_truth_cannot_be_read_with_is_refused(app: App) -> None:
    project = app.project()
    document = app.upload_text(project["id"])
    reference = "surname,first and middle names,occupation,address\nFörster,Christian,,\n"
    attached = app.client.post(
        f"{API}/documents/{document}/ground-truth",
        files={"file": ("records.csv", reference.encode(), "text/csv")},
    )
    assert attached.status_code == 201, attached.text
    url = f"{API}/projects/{project['id']}/schema"
    wider = [*CITY_FIELDS, "remark"]
    refused = app.client.put(url, json={"fields": [{"name": n} for n in wider]})
    assert refused.status_code == 409 and "remark" in refused.json()["detail"]
    assert "koeln.txt" in refused.json()["detail"]
    assert app.client.get(url).json()["version"] == 1

    # With the column in the ground truth first, the schema may follow; the run is scored.
    app.client.post(
        f"{API}/documents/{document}/ground-truth",
        files={
            "file": (
                "records.csv",
                (reference.replace("address", "address,remark").replace(",,\n", ",,,\n")).encode(),
                "text/csv",
            )
        },
    )
    assert app.client.put(url, json={"fields": [{"name": n} for n in wider]}).status_code == 200
    run = app.run(project["id"])
    scores = app.client.get(f"{API}/runs/{run['id']}/metrics").json()["records"]["run"]
    assert "remark" in scores["fields"] and scores["records"]["reference"] == 1


def test_an_mllm_extractor_gets_the_schema_as_json_schema_and_in_its_prompt(
    sqlite_settings: Settings, fake_openai
) -> None:
    def answer(body: dict[str, Any]) -> str:
        if "response_format" not in body:
            return DIRECTORY
        return json.dumps(
            {
                "records": [
                    {
                        "surname": "Förster",
                        "address": "Großkölnstraße A 391.",
                        "first and middle names": "Christian",
                        "remark": None,
                    },
                ]
            },
            ensure_ascii=False,
        )

    server = fake_openai(model="fake-vlm", responder=answer)
    openai = sqlite_settings.openai.model_copy(
        update={"base_url": server.base_url, "model": "fake-vlm"}
    )
    made = App(sqlite_settings.model_copy(update={"openai": openai}))
    with made.client:
        project = made.project(record_fields=CUSTOM)
        made.upload_text(project["id"])
        stages = [
            {"stage": "ocr", "engine": "import"},
            {"stage": "extract", "engine": "openai"},
        ]
        run = made.run(project["id"], stages=stages)
        assert server.violations == []
        extraction = next(b for b in server.received if "response_format" in b)
        schema = extraction["response_format"]["json_schema"]["schema"]
        record = schema["properties"]["records"]["items"]
        assert list(record["properties"]) == [f["name"] for f in CUSTOM]
        assert record["required"] == [f["name"] for f in CUSTOM]
        # Required: a string, never null; the others may be null. Meaning and example travel.
        assert record["properties"]["surname"] == {
            "type": "string",
            "description": "Family name Example: Förster",
        }
        assert record["properties"]["remark"]["type"] == ["string", "null"]
        prompt = "\n".join(
            part["text"] if isinstance(part, dict) else part
            for message in extraction["messages"]
            for part in (
                message["content"] if isinstance(message["content"], list) else [message["content"]]
            )
            if not isinstance(part, dict) or part.get("type") == "text"
        )
        assert '- "surname" (every entry gives it): Family name Example: Förster' in prompt
        assert '- "remark": Anything printed after the address' in prompt
        header, *rows = made.csv_rows(run["id"])
        assert header[:4] == [f["name"] for f in CUSTOM]
        assert [row[:5] for row in rows] == [
            ["Förster", "Großkölnstraße A 391.", "Christian", "", "koeln.txt"]
        ]
