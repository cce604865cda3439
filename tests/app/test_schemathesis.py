"""The OpenAPI document tells the truth: schemathesis sends generated requests, valid and
invalid, to every operation of the real app (in-process, on SQLite and on PostgreSQL) and checks
each answer: never a 5xx, its status, content type and body as documented, invalid input refused.

The database is seeded first through the API (a project, an ingested page, a finished run,
ground truth), and generated ids are swapped for the seeded ones half of the time, so the id
routes answer from real rows, not only with 404. Examples are bounded and derandomized: CI sends
the same requests on every run.
"""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.db.recognizers import RecognizerModel, TrainingStatus
from app.db.session import get_sessionmaker
from app.db.tables import MAX_ID
from app.main import create_app
from app.services import accounts
from app.storage import LocalStorage
from tests.helpers import PRINTED_LINES, RecordingDispatcher, inline_dispatcher, render_page

API = "/api/v1"
#: Fuzzed requests per operation, valid and invalid ones mixed, besides schemathesis's coverage
#: cases: enough to reach every declared status of this API, few enough for about a minute per
#: database on two cores.
EXAMPLES = 25
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
#: The operations that delete what the database was seeded with.
SEEDED_DELETES = {
    "/api/v1/projects/{project_id}",
    "/api/v1/documents/{document_id}",
    "/api/v1/runs/{run_id}",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@dataclass(frozen=True)
class Target:
    """The schema of a seeded app and the credentials its requests carry."""

    schema: Any
    headers: dict[str, str]


def _admin_token(settings: Settings) -> tuple[dict[str, str], dict[str, object]]:
    """An administrator's API token, as `histocr tokens create` makes one for a script."""
    with get_sessionmaker(settings.resolved_database_url)() as session:
        user, _ = accounts.create_user(session, "schemathesis", admin=True)
        token, secret = accounts.create_token(session, user, name="schemathesis")
        own = {"user_id": user.id, "user_name": user.name, "token_id": token.id}
        session.commit()
    return {"Authorization": f"Bearer {secret}"}, own


def _seed(app: FastAPI, headers: dict[str, str], tmp_path: Any) -> dict[str, int]:
    """A project with an ingested page, a finished run over it and ground truth; their ids."""
    dispatcher = inline_dispatcher(app.state.settings)
    app.state.dispatcher = dispatcher
    with TestClient(app, headers=headers) as client:
        project = client.post(f"{API}/projects", json={"name": "seeded"}).json()
        page = render_page(tmp_path / "page.png", PRINTED_LINES[:2])
        upload = client.post(
            f"{API}/projects/{project['id']}/documents",
            files={"files": ("page.png", page.read_bytes(), "image/png")},
        )
        assert upload.status_code == 201, upload.text
        dispatcher.drain()
        document = upload.json()["documents"][0]
        truth = client.post(
            f"{API}/documents/{document['id']}/ground-truth",
            files={"file": ("page.txt", "\n".join(PRINTED_LINES[:2]).encode(), "text/plain")},
        )
        assert truth.status_code == 201, truth.text
        # The rules parser makes a record of any comma-separated line, however the two-line
        # page reads: the record routes then have rows to answer from.
        stages = [{"stage": "ocr", "engine": "tesseract"}, {"stage": "extract", "engine": "rules"}]
        run = client.post(f"{API}/projects/{project['id']}/runs", json={"stages": stages})
        assert run.status_code == 201, run.text
        dispatcher.drain()
        finished = client.get(f"{API}/runs/{run.json()['id']}").json()
        assert finished["status"] == "done", finished
        pages = client.get(f"{API}/documents/{document['id']}").json()["pages"]
    # What the generated requests start must not run: a queue nobody reads.
    app.state.dispatcher = RecordingDispatcher()
    return {
        "project_id": project["id"],
        "document_id": document["id"],
        "page_id": pages[0]["id"],
        "run_id": run.json()["id"],
        "number": _seed_recognizer(app.state.settings, project["id"]),
    }


def _seed_recognizer(settings: Settings, project_id: int) -> int:
    """A trained recogniser version with its log and training set (as a training leaves them;
    training for real is tests/app/test_recognizers.py's)."""
    storage = LocalStorage(settings.resolved_storage_dir)
    with get_sessionmaker(settings.resolved_database_url)() as session:
        version = RecognizerModel(
            project_id=project_id,
            number=1,
            status=TrainingStatus.DONE,
            base_model="frak2021",
            log_key=storage.put_bytes(b"lstmtraining ...", ".log").key,
            training_set_key=storage.put_bytes(b"PK\x05\x06" + bytes(18), ".zip").key,
        )
        session.add(version)
        session.commit()
        return version.number


def _config() -> schemathesis.Config:
    """Valid and invalid requests, the same ones on every run, nothing kept between runs."""
    return schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": "all",
                "max-examples": EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
        }
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Target]:
    """The app on one database, seeded, with its OpenAPI schema loaded by schemathesis."""
    database: Settings = request.getfixturevalue(f"{request.param}_settings")
    # A token's rate limit is documented (429), but a fast machine would reach it and fuzz
    # only the limiter: the generated requests go at any rate.
    app_settings = database.model_copy(update={"token_rate_per_minute": 1_000_000})
    app = create_app(app_settings)
    headers, own = _admin_token(app_settings)
    ids = _seed(app, headers, tmp_path)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(), headers=headers)

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
        """Half of the time, the seeded rows instead of the generated ids (valid ones only:
        an invalid id must stay invalid, it is what a negative case tests)."""
        if not path_parameters:
            return st.just(path_parameters)
        seeded = {
            name: ids[name] if name in ids and _valid_id(value) else value
            for name, value in path_parameters.items()
        }
        return st.sampled_from([path_parameters, seeded])

    @schema.hook
    def flatmap_body(context: Any, body: Any) -> Any:
        """Often one hostile value in the body (see `_hostile`)."""
        return st.integers(0, 2 * _count_leaves(body)).map(lambda i: _hostile(body, i)[0])

    @schema.hook
    def flatmap_query(context: Any, query: Any) -> Any:
        """Often one hostile value in the query string (see `_hostile`)."""
        return st.integers(0, 2 * _count_leaves(query)).map(lambda i: _hostile(query, i)[0])

    @schema.hook
    def filter_case(context: Any, case: Any) -> bool:
        """Never revoke or demote the credentials the run itself uses, nor delete the seeded
        rows (the id routes must answer from them; deleting is tested in test_housekeeping)."""
        parameters = case.path_parameters or {}
        # Coverage cases carry path values as strings, generated ones as numbers.
        if case.method.upper() == "DELETE" and case.operation.path in SEEDED_DELETES:
            return not any(str(parameters.get(name)) == str(value) for name, value in ids.items())
        return not any(str(parameters.get(name)) == str(value) for name, value in own.items())

    yield Target(schema=schema, headers=headers)


def _count_leaves(value: Any) -> int:
    if isinstance(value, dict | list):
        items = value.values() if isinstance(value, dict) else value
        return sum(_count_leaves(item) for item in items)
    return 1 if _is_int(value) or isinstance(value, str) else 0


def _hostile(value: Any, index: int) -> tuple[Any, int]:
    """`value` with its `index`-th text or number made hostile (none when there are fewer),
    and the index left for what follows. A text gets a NUL, which PostgreSQL cannot store; a
    number becomes one past the 32-bit range of its integer columns: a value that reaches the
    database unchecked answers 500 there (an API token's name and the audit's `before` did)."""
    if isinstance(value, dict | list):
        items = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        changed = []
        for key, item in items:
            item, index = _hostile(item, index)
            changed.append((key, item))
        if isinstance(value, dict):
            return dict(changed), index
        return [item for _, item in changed], index
    if not (_is_int(value) or isinstance(value, str)):
        return value, index
    if index != 0:
        return value, index - 1
    return (value + "\x00" if isinstance(value, str) else MAX_ID + 1), -1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID


@pytest.mark.e2e  # about a minute per database: `make test` (CI) runs it, `make test-fast` not
def test_every_answer_is_documented(target: Target) -> None:
    failures: dict[tuple[str, str], str] = {}
    statuses: Counter[tuple[str, int]] = Counter()

    def send(case: Any) -> None:
        """One generated request; the first case of each kind of failure is kept, and all of
        them are reported at the end (not only the first)."""
        try:
            response = case.call_and_validate(headers=target.headers, checks=CHECKS)
            statuses[case.operation.label, response.status_code] += 1
        except (Exception, FailureGroup) as exc:  # a FailureGroup is no Exception
            for failure in exc.exceptions if isinstance(exc, FailureGroup) else [exc]:
                title = getattr(failure, "title", type(failure).__name__)
                failures.setdefault(
                    (case.operation.label, title),
                    f"{case.operation.label}: {title}\n{getattr(failure, 'message', failure)}\n"
                    f"{case.as_curl_command()}",
                )

    # schemathesis's own test per operation: its coverage cases (boundary values, wrong types,
    # missing and unknown fields) and EXAMPLES fuzzed ones, valid and invalid. (Its pytest
    # decorator is not used: schemathesis 4.32 reads a node attribute pytest 9.2 no longer has.)
    for result in get_all_tests(
        schema=target.schema, test_func=send, settings=HYPOTHESIS, given_kwargs=None
    ):
        _operation, test = result.ok()
        test()
    assert not failures, f"{len(failures)} unique failures:\n\n" + "\n\n".join(failures.values())
    # The seeded rows were reached: every id route answered from a real row at least once.
    answered = {label for label, status in statuses if status < 300}
    readers = {
        operation.label
        for operation in (result.ok() for result in target.schema.get_all_operations())
        if operation.method.upper() == "GET" and "{" in operation.path
    }
    assert readers <= answered, f"never answered from a seeded row: {sorted(readers - answered)}"


def test_a_wrong_method_is_answered_with_every_allowed_one(sqlite_settings, client_for) -> None:
    """`Allow` names every method of the path (RFC 9110), not only those of its first route."""
    client = client_for(sqlite_settings)
    for method, path, allowed in [
        ("DELETE", f"{API}/projects", "GET, POST"),
        ("PUT", f"{API}/projects/1/runs", "GET, POST"),
        ("PUT", f"{API}/runs/1", "DELETE, GET, PATCH"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == allowed, (method, path)
        assert response.json() == {"detail": "Method Not Allowed"}


def test_every_integer_a_client_sends_fits_the_database(sqlite_settings, client_for) -> None:
    """Each integer in a path, query or body has a declared maximum within PostgreSQL's 32-bit
    range: a larger one is a 422 naming the limit, never a query that overflows (a 500 there;
    fuzzing finds such a parameter only by chance, this finds every one)."""
    document = client_for(sqlite_settings).get("/openapi.json").json()
    unbounded = [
        where
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for where, schema in _client_schemas(f"{method.upper()} {path}", operation)
        for where in _unbounded_integers(schema, where, document["components"]["schemas"])
    ]
    assert not unbounded, unbounded


def _client_schemas(label: str, operation: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    for parameter in operation.get("parameters", []):
        yield f"{label} {parameter['in']} {parameter['name']}", parameter.get("schema", {})
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        yield f"{label} body ({media_type})", content.get("schema", {})


def _unbounded_integers(schema: Any, where: str, components: dict[str, Any]) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if f"→ {name}" not in where:  # a schema that contains itself is walked once
            yield from _unbounded_integers(components[name], f"{where} → {name}", components)
        return
    if schema.get("type") == "integer" and schema.get("maximum", MAX_ID + 1) > MAX_ID:
        yield where
    for name, item in schema.get("properties", {}).items():
        yield from _unbounded_integers(item, f"{where}.{name}", components)
    for key in ("items", "additionalProperties"):
        yield from _unbounded_integers(schema.get(key), f"{where}[]", components)
    for item in schema.get("anyOf", []) + schema.get("oneOf", []) + schema.get("allOf", []):
        yield from _unbounded_integers(item, where, components)
