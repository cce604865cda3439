"""mLLM stages through a real worker against a local OpenAI-compatible endpoint.

The endpoint is the fake server in tests/fakes: real HTTP, the real wire format, every request
validated. Each test asserts the pipeline's end state: what is done has the expected text or
records, what failed is marked failed with its attempts, nothing is left running.
"""

import json
import re

from pydantic import SecretStr

from tests.fakes.openai_server import (
    Reply,
    cut_off,
    empty_answer,
    images,
    invalid_json,
    rate_limited,
    server_error,
    short_answer,
    texts,
)
from tests.helpers import PRINTED_LINES, render_page
from tests.test_flow import wait_for_run

MODEL = "fake-qwen2.5-vl"
KEY = "sk-test-0123456789"


def records_for(text: str) -> str:
    """What a good extraction model answers: one record per `Surname, First, Occ, Addr.` line."""
    records = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 4:
            records.append(
                {
                    "first and middle names": parts[1],
                    "surname": parts[0],
                    "occupation": parts[2],
                    "address": ", ".join(parts[3:]),
                }
            )
    return json.dumps({"records": records}, ensure_ascii=False)


def input_text(body: dict) -> str:
    """The page text a stage sent (inside <text>…</text>)."""
    joined = "\n".join(texts(body))
    found = re.search(r"<text>\n(.*)\n</text>", joined, re.DOTALL)
    return found.group(1) if found else ""


def llm_settings(settings, base_url: str):
    return settings.model_copy(
        update={
            "openai": settings.openai.model_copy(
                update={
                    "base_url": base_url,
                    "model": MODEL,
                    "api_key": SecretStr(KEY),
                    "structured_output": "json_schema",
                }
            )
        }
    )


def worker_env(server) -> dict[str, str]:
    return {
        "HISTOCR_OPENAI_BASE_URL": server.base_url,
        "HISTOCR_OPENAI_MODEL": MODEL,
        "HISTOCR_OPENAI_API_KEY": KEY,
        "HISTOCR_OPENAI_MAX_ATTEMPTS": "2",
        "HISTOCR_STAGE_MAX_ATTEMPTS": "2",
    }


def test_ocr_correct_and_extract_with_an_mllm(
    sqlite_settings, start_worker, client_for, fake_openai, tmp_path
):
    corrected = "\n".join(PRINTED_LINES)

    def responder(body: dict) -> Reply:
        assert body["model"] == MODEL
        if "response_format" in body:
            return Reply(content=records_for(input_text(body)))
        assert len(images(body)) == 1  # OCR and correction both see the page
        return Reply(content=corrected)

    server = fake_openai(model=MODEL, api_key=KEY, responder=responder)
    settings = llm_settings(sqlite_settings, server.base_url)
    worker = start_worker(settings, (), **worker_env(server))  # the production layout
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "mllm"}).json()
    page = render_page(tmp_path / "page.png", PRINTED_LINES)
    document = client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("page.png", page.read_bytes(), "image/png")},
    ).json()["documents"][0]
    stages = [
        {"stage": "ocr", "engine": "tesseract"},
        {"stage": "correct", "engine": "openai", "source": "ocr"},
        {"stage": "extract", "engine": "openai", "inputs": "both"},
    ]
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": stages})
    assert run.status_code == 201, run.text
    config = run.json()["config"]["stages"]
    assert config[1]["prompt_version"] == "v1" and "OCR" in config[1]["prompt"]
    assert config[1]["parameters"]["model"] == MODEL
    assert KEY not in json.dumps(run.json())

    finished = wait_for_run(client, run.json()["id"], timeout=180, workers=(worker,))
    assert finished["status"] == "done", finished
    assert finished["totals"]["tokens_in"] > 0 and finished["totals"]["tokens_out"] > 0
    page_id = client.get(f"/api/v1/documents/{document['id']}").json()["pages"][0]["id"]
    result = client.get(f"/api/v1/runs/{finished['id']}/pages/{page_id}").json()
    ocr, correct, extract = result["stages"]
    assert correct["text"] == corrected and correct["model"] == MODEL
    assert correct["tokens_in"] > 0 and correct["latency_s"] > 0 and correct["attempts"] == 1
    assert input_text(server.received[0]) == ocr["text"]  # the correction read the OCR text
    assert [r["fields"]["surname"] for r in result["records"]] == [
        line.split(",")[0] for line in PRINTED_LINES
    ]
    assert result["records"][2]["source_line"] == PRINTED_LINES[2]
    schema_requests = [b for b in server.received if "response_format" in b]
    assert schema_requests and schema_requests[0]["response_format"]["type"] == "json_schema"
    assert len(images(schema_requests[0])) == 1  # inputs "both": the page image and its text
    assert input_text(schema_requests[0]) == corrected
    assert KEY not in (tmp_path / "worker-0.log").read_text(errors="replace")
    estimate = client.post(
        f"/api/v1/projects/{project['id']}/runs/estimate", json={"stages": stages}
    ).json()
    assert estimate["pages"] == 1 and estimate["stages"][1]["tokens_in"] == correct["tokens_in"]


def test_failures_end_failed_with_their_attempts(
    sqlite_settings, start_worker, client_for, fake_openai
):
    # A transcription of four pages (form feeds); each page's text decides the endpoint's answer.
    pages = [
        "Meier, Anna, Naeherin, Markt 1.",
        "Koch, Carl, Schmied, Graben 2.",
        "Wolf, Emil, Maler, Hof 3.",
        "Beck, Otto, Baecker, Thor 4.",
        "Lang, Emil, Schneider, Thorstrasse 12.",
        "Roth, Paul, Gerber, Muehlweg 5.",
        "Fuchs, Karl, Weber, Brunnengasse 8.",
    ]
    seen: dict[str, int] = {}

    def responder(body: dict) -> Reply:
        text = input_text(body)
        key = ("extract:" if "response_format" in body else "correct:") + text.split(",")[0]
        seen[key] = seen.get(key, 0) + 1
        if key == "correct:Koch" and seen[key] == 1:
            return rate_limited("0")
        if key == "correct:Wolf":
            return cut_off()
        if key == "correct:Beck":
            return server_error(503)
        if key == "correct:Lang" or (key == "correct:Roth" and seen[key] == 1):
            return empty_answer()  # HTTP 200, finish_reason "stop", content ""
        if key == "correct:Fuchs":
            return server_error(500) if seen[key] == 1 else short_answer(text)
        if key == "extract:Meier":
            return invalid_json()
        if "response_format" in body:
            return Reply(content=records_for(text))
        return Reply(content=text)

    server = fake_openai(model=MODEL, api_key=KEY, responder=responder)
    settings = llm_settings(sqlite_settings, server.base_url)
    worker = start_worker(settings, (), **worker_env(server))  # the production layout
    client = client_for(settings)
    project = client.post("/api/v1/projects", json={"name": "failures"}).json()
    client.post(
        f"/api/v1/projects/{project['id']}/documents",
        files={"files": ("four.txt", "\f".join(pages).encode(), "text/plain")},
    )
    stages = [
        {"stage": "ocr", "engine": "import"},
        {"stage": "correct", "engine": "openai"},
        {"stage": "extract", "engine": "openai", "inputs": "both"},
    ]
    run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"stages": stages}).json()
    finished = wait_for_run(client, run["id"], timeout=240, workers=(worker,))
    assert finished["status"] == "partial", finished
    assert finished["progress"]["running"] == finished["progress"]["queued"] == 0

    document_id = finished["document_ids"][0]
    results = {}
    for page in client.get(f"/api/v1/documents/{document_id}").json()["pages"]:
        body = client.get(f"/api/v1/runs/{run['id']}/pages/{page['id']}").json()
        results[page["number"]] = {s["stage"]: s for s in body["stages"]}
    # Page 1: corrected, but its extraction answered broken JSON twice.
    assert results[1]["correct"]["status"] == "done"
    assert results[1]["extract"]["status"] == "failed"
    assert results[1]["extract"]["attempts"] == 2 and "JSON" in results[1]["extract"]["error"]
    # Page 2: a 429 (Retry-After 0) and then an answer: done on the second attempt.
    assert results[2]["correct"]["status"] == "done"
    assert results[2]["correct"]["attempts"] == 2 and results[2]["correct"]["text"] == pages[1]
    assert results[2]["extract"]["status"] == "done"
    # Page 3: always cut off; never silently replaced by the OCR text.
    assert results[3]["correct"]["status"] == "failed"
    assert "length" in results[3]["correct"]["error"] and results[3]["correct"]["attempts"] == 2
    assert results[3]["correct"]["text"] is None
    assert results[3]["extract"]["status"] == "skipped"
    # Page 4: the endpoint keeps failing: retried with backoff up to the limit, then failed.
    assert results[4]["correct"]["status"] == "failed"
    assert results[4]["correct"]["attempts"] == 2 and "503" in results[4]["correct"]["error"]
    assert "not queued again" in results[4]["correct"]["error"]
    # Page 5: empty 200 answers: never a `done` correction with no text; failed, saying why.
    assert results[5]["correct"]["status"] == "failed" and results[5]["correct"]["text"] is None
    assert results[5]["correct"]["error"].startswith("the answer is empty, but its input text")
    assert results[5]["correct"]["attempts"] == 2 and results[5]["extract"]["status"] == "skipped"
    # Page 6: one empty answer, asked again: done with the real correction.
    assert results[6]["correct"]["status"] == "done" and results[6]["correct"]["attempts"] == 2
    assert results[6]["correct"]["text"] == pages[5]
    # Page 7: a 500, then a page cut to its first fifth: the tally of 2 requests is spent.
    assert results[7]["correct"]["status"] == "failed"
    assert "letters and digits, under 50%" in results[7]["correct"]["error"]
    assert results[7]["correct"]["error"].endswith(
        "after 2 attempts: 1 answered unusably, 1 not answered"
    )
    # Every row's attempts are the requests the endpoint got for it, and its message says so.
    correct_requests = sum(n for key, n in seen.items() if key.startswith("correct:"))
    assert sum(r["correct"]["attempts"] for r in results.values()) == correct_requests
    assert sum(r["extract"]["attempts"] for r in results.values()) == sum(
        n for key, n in seen.items() if key.startswith("extract:")
    )
    assert_messages_give_the_attempts(results)
    assert KEY not in json.dumps(results)


def assert_messages_give_the_attempts(results: dict) -> None:
    """A failed stage's message ends on the number its `attempts` says."""
    for stages_of_page in results.values():
        for stage in stages_of_page.values():
            if stage["status"] == "failed":
                counts = re.findall(r"(\d+) attempts", stage["error"])
                assert int(counts[-1]) == stage["attempts"], stage
