"""Reviewing a run (issue 11): line and record edits as versions, conflicts, undo, verified
pages, and what `latest` and `engine` mean for metrics and exports.

A real run: a printed page read by Tesseract and parsed by the rules extractor, in process
(tests/helpers.inline_dispatcher), on SQLite and PostgreSQL.
"""

import csv
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.metrics.text import score_text
from tests.helpers import PRINTED_LINES, finished_run_on_a_page

API = "/api/v1"


@dataclass
class Reviewed:
    """A finished run over one page with document ground truth, and a client for it."""

    client: TestClient
    run_id: int
    page_id: int
    document_id: int

    def page(self) -> dict[str, Any]:
        answer = self.client.get(f"{API}/runs/{self.run_id}/pages/{self.page_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()

    def body_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.page()["lines"] if line["text"].strip()]


def _reviewed(settings: Settings, tmp_path: Path) -> Iterator[Reviewed]:
    with finished_run_on_a_page(settings, tmp_path, PRINTED_LINES, PRINTED_LINES) as run:
        yield Reviewed(run.client, run.run_id, run.page_id, run.document_id)


@pytest.fixture
def reviewed(sqlite_settings: Settings, tmp_path: Path) -> Iterator[Reviewed]:
    yield from _reviewed(sqlite_settings, tmp_path)


@pytest.fixture
def reviewed_pg(postgres_settings: Settings, tmp_path: Path) -> Iterator[Reviewed]:
    yield from _reviewed(postgres_settings, tmp_path)


def _edit(r: Reviewed, line: dict[str, Any], text: str, version: int | None = None) -> Any:
    return r.client.patch(
        f"{API}/lines/{line['id']}",
        json={"text": text, "version": line["version"] if version is None else version},
    )


def _wrong(text: str) -> str:
    """The line with its first letter made wrong (a deliberate, measurable error)."""
    return ("X" if text[0] != "X" else "Y") + text[1:]


def test_an_edit_is_a_new_version_and_the_engine_text_is_kept(reviewed: Reviewed) -> None:
    line = reviewed.body_lines()[0]
    assert (line["version"], line["edited"]) == (1, False)
    answer = _edit(reviewed, line, line["text"] + " [sic]")
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == 2 and answer.json()["edited"] is True
    again = next(x for x in reviewed.page()["lines"] if x["id"] == line["id"])
    assert again["text"] == line["text"] + " [sic]"
    assert again["engine_text"] == line["engine_text"] == line["text"]
    history = reviewed.client.get(f"{API}/lines/{line['id']}/history").json()
    assert [(h["version"], h["source"]) for h in history] == [(1, "engine"), (2, "edit")]
    assert history[0]["text"] == line["text"] and history[0]["author"] == "tesseract"
    assert history[1]["author"] == "local" and history[1]["created_at"]
    stages = reviewed.page()["stages"]
    assert line["text"] in next(s for s in stages if s["stage"] == "ocr")["text"]


def test_an_edit_to_a_stale_version_is_a_conflict_with_the_current_text(
    reviewed: Reviewed,
) -> None:
    line = reviewed.body_lines()[1]
    assert _edit(reviewed, line, "first reviewer").status_code == 200
    late = _edit(reviewed, line, "second reviewer", version=1)
    assert late.status_code == 409
    assert late.json()["current"] == {"version": 2, "text": "first reviewer"}
    assert "changed meanwhile" in late.json()["detail"]
    shown = next(x for x in reviewed.page()["lines"] if x["id"] == line["id"])
    assert shown["text"] == "first reviewer"


def test_undo_restores_the_previous_text_as_a_new_version(reviewed: Reviewed) -> None:
    line = reviewed.body_lines()[0]
    _edit(reviewed, line, "one")
    two = _edit(reviewed, line, "two", version=2).json()
    undone = reviewed.client.post(f"{API}/lines/{line['id']}/undo", json={"version": 3})
    assert undone.status_code == 200, undone.text
    assert (undone.json()["text"], undone.json()["version"]) == ("one", 4)
    assert two["version"] == 3
    sources = [h["source"] for h in reviewed.client.get(f"{API}/lines/{line['id']}/history").json()]
    assert sources == ["engine", "edit", "edit", "undo"]
    fresh = reviewed.body_lines()[1]
    nothing = reviewed.client.post(f"{API}/lines/{fresh['id']}/undo", json={"version": 1})
    assert nothing.status_code == 409 and "no change to undo" in nothing.json()["detail"]


def test_bad_edits_are_refused_with_a_message(reviewed: Reviewed) -> None:
    line = reviewed.body_lines()[0]
    assert _edit(reviewed, line, "two\nlines").status_code == 422
    assert reviewed.client.patch(f"{API}/lines/{line['id']}", json={"text": "x"}).status_code == 422
    assert _edit(reviewed, {"id": 999999, "version": 1}, "x").status_code == 404
    assert reviewed.client.get(f"{API}/lines/{line['id']}/history").json()[-1]["version"] == 1


def _export(r: Reviewed, version: str) -> tuple[str, list[dict[str, str]]]:
    text = r.client.get(
        f"{API}/runs/{r.run_id}/documents/{r.document_id}/text.txt", params={"version": version}
    )
    assert text.status_code == 200, text.text
    records = r.client.get(f"{API}/runs/{r.run_id}/records.csv", params={"version": version})
    assert records.status_code == 200, records.text
    return text.text, list(csv.DictReader(io.StringIO(records.text.lstrip("\ufeff"))))


def test_latest_and_engine_exports_differ_exactly_by_the_edits(reviewed: Reviewed) -> None:
    lines = reviewed.body_lines()
    engine_text, engine_records = _export(reviewed, "engine")
    corrected = _wrong(lines[2]["text"])
    assert _edit(reviewed, lines[2], corrected).status_code == 200
    record = reviewed.page()["records"][0]
    changed = reviewed.client.patch(
        f"{API}/records/{record['id']}", json={"fields": {"surname": "Förster"}, "version": 1}
    )
    assert changed.status_code == 200, changed.text
    latest_text, latest_records = _export(reviewed, "latest")
    assert _export(reviewed, "engine") == (engine_text, engine_records)
    assert latest_text == engine_text.replace(lines[2]["text"], corrected, 1)
    assert latest_text != engine_text
    assert [r["surname"] for r in latest_records] == ["Förster"] + [
        r["surname"] for r in engine_records[1:]
    ]
    assert len(latest_records) == len(engine_records)


def test_metrics_of_latest_improve_by_the_edit_distance(reviewed: Reviewed) -> None:
    before = reviewed.client.get(f"{API}/runs/{reviewed.run_id}/metrics").json()
    engine_run = before["engine"]["text"]["ocr"]["run"]
    assert before["latest"]["text"]["ocr"]["run"] == engine_run
    assert before["latest"]["review"]["lines_edited"] == 0
    line = _a_wrong_line(reviewed)
    gained = sum(
        len(op["gt"]) or len(op["ocr"]) for op in line["diff"]["raw"] if op["op"] != "equal"
    )
    assert _edit(reviewed, line, line["gt_text"]).status_code == 200
    after = reviewed.client.get(f"{API}/runs/{reviewed.run_id}/metrics").json()
    assert after["engine"]["text"]["ocr"]["run"] == engine_run
    latest = after["latest"]["text"]["ocr"]["run"]
    assert 0 < engine_run["cer_distance"] - latest["cer_distance"] <= gained
    assert after["latest"]["review"]["lines_edited"] == 1
    page = reviewed.page()
    reviewed_text = "\n".join(x["text"] for x in page["lines"])
    expected = score_text("\n".join(PRINTED_LINES), reviewed_text).cer.distance
    assert latest["cer_distance"] == page["gt_cer"]["cer_distance"] == expected


def _a_wrong_line(r: Reviewed) -> dict[str, Any]:
    """A line the engine misread (one is misread on purpose where Tesseract read all right)."""
    wrong = [x for x in r.body_lines() if x["gt_text"] and x["text"] != x["gt_text"]]
    if wrong:
        return wrong[0]
    line = r.body_lines()[0]
    assert _edit(r, line, _wrong(line["text"])).status_code == 200
    return next(x for x in r.page()["lines"] if x["id"] == line["id"])


def test_correcting_a_line_to_its_ground_truth_makes_its_diff_match(reviewed: Reviewed) -> None:
    line = _a_wrong_line(reviewed)
    distance = reviewed.page()["gt_cer"]["cer_distance"]
    fixed = _edit(reviewed, line, line["gt_text"])
    assert fixed.status_code == 200, fixed.text
    shown = next(x for x in reviewed.page()["lines"] if x["id"] == line["id"])
    assert all(op["op"] == "equal" for op in shown["diff"]["raw"])
    assert reviewed.page()["gt_cer"]["cer_distance"] < distance


def test_records_are_edited_added_deleted_and_undone_as_versions(reviewed: Reviewed) -> None:
    page = reviewed.page()
    first = page["records"][0]
    assert first["line_ids"] and first["version"] == 1 and first["source"] == "engine"
    line = next(x for x in page["lines"] if x["id"] == first["line_ids"][0])
    assert first["id"] in line["record_ids"] and not line["unparsed"]
    client = reviewed.client
    gone = client.delete(f"{API}/records/{first['id']}", params={"version": 1})
    assert gone.status_code == 200 and gone.json()["deleted"] is True
    assert first["id"] not in [r["id"] for r in reviewed.page()["records"]]
    _, latest = _export(reviewed, "latest")
    _, engine = _export(reviewed, "engine")
    assert len(latest) == len(engine) - 1
    stale = client.patch(f"{API}/records/{first['id']}", json={"fields": {}, "version": 1})
    assert stale.status_code == 409 and stale.json()["current"]["deleted"] is True
    back = client.post(f"{API}/records/{first['id']}/undo", json={"version": 2})
    assert back.status_code == 200 and back.json()["deleted"] is False
    added = client.post(
        f"{API}/runs/{reviewed.run_id}/pages/{reviewed.page_id}/records",
        json={"fields": {"surname": "Neu", "address": "Markt 1."}, "line_id": line["id"]},
    )
    assert added.status_code == 201, added.text
    assert added.json()["source"] == "edit" and added.json()["fields"]["surname"] == "Neu"
    assert added.json()["fields"]["occupation"] is None
    _, latest = _export(reviewed, "latest")
    assert [r["surname"] for r in latest].count("Neu") == 1
    assert "Neu" not in [r["surname"] for r in _export(reviewed, "engine")[1]]
    history = client.get(f"{API}/records/{first['id']}/history").json()
    assert [(h["version"], h["source"], h["deleted"]) for h in history] == [
        (1, "engine", False),
        (2, "edit", True),
        (3, "undo", False),
    ]
    unknown = client.patch(
        f"{API}/records/{first['id']}", json={"fields": {"age": "40"}, "version": 3}
    )
    assert unknown.status_code == 422 and "'age'" in unknown.json()["detail"]


def test_a_verified_page_goes_to_the_end_of_the_review_queue(reviewed: Reviewed) -> None:
    client = reviewed.client
    url = f"{API}/runs/{reviewed.run_id}/pages/{reviewed.page_id}/verify"
    assert reviewed.page()["verified"] is None
    assert client.post(url).status_code == 200
    assert client.post(url).json()["verified"]["author"] == "local"  # again: unchanged
    assert reviewed.page()["verified"]["author"] == "local"
    queue = client.get(f"{API}/runs/{reviewed.run_id}/review-queue").json()
    assert queue[-1]["page_id"] == reviewed.page_id and queue[-1]["verified"] is True
    assert client.delete(url).status_code == 204
    assert reviewed.page()["verified"] is None
    assert client.delete(url).status_code == 404


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_concurrent_edits_of_one_version_give_one_winner_and_conflicts(
    database: str, request: pytest.FixtureRequest
) -> None:
    """Eight reviewers save the same line at the same moment, all from version 1: exactly one
    edit lands (version 2), every other gets 409, none is lost silently or stored twice."""
    reviewer_run: Reviewed = request.getfixturevalue(
        "reviewed" if database == "sqlite" else "reviewed_pg"
    )
    line = reviewer_run.body_lines()[0]
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def save(n: int) -> None:
        barrier.wait()
        statuses.append(_edit(reviewer_run, line, f"reviewer {n}", version=1).status_code)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 7
    history = reviewer_run.client.get(f"{API}/lines/{line['id']}/history").json()
    assert [h["version"] for h in history] == [1, 2]
    assert history[1]["text"].startswith("reviewer ")


def test_score_text_agrees_with_the_page_cer_of_the_reviewed_text(reviewed: Reviewed) -> None:
    page = reviewed.page()
    text = "\n".join(line["text"] for line in page["lines"])
    assert page["gt_cer"]["cer_distance"] == score_text("\n".join(PRINTED_LINES), text).cer.distance
