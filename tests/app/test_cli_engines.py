"""`histocr process` with each engine: an OpenAI-compatible endpoint, a local model, vLLM absent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.fakes.openai_server import Reply, images
from tests.helpers import PRINTED_LINES, render_page

pytestmark = pytest.mark.e2e  # every test runs `histocr process` in a subprocess

MODEL = "fake-vlm"
KEY = "sk-cli-test-key"


def process(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HISTOCR_")}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "process", *map(str, args)],
        cwd=ROOT,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_process_with_an_openai_compatible_endpoint(fake_openai, tmp_path: Path):
    def responder(body: dict) -> Reply:
        if "response_format" in body:
            records = [
                {
                    "first and middle names": "Peter Joseph",
                    "surname": "Mueller",
                    "occupation": "Baecker",
                    "address": "Hochstrasse 12.",
                }
            ]
            return Reply(content=json.dumps({"records": records}))
        assert len(images(body)) == 1
        return Reply(content="\n".join(PRINTED_LINES))

    server = fake_openai(model=MODEL, api_key=KEY, responder=responder)
    page = render_page(tmp_path / "page.png", PRINTED_LINES)
    truth = tmp_path / "truth.txt"
    truth.write_text("\n".join(PRINTED_LINES) + "\n", encoding="utf-8")
    result = process(
        page,
        "--out",
        tmp_path / "out",
        "--ocr",
        "openai",
        "--correct",
        "openai",
        "--extract",
        "openai",
        "--model",
        MODEL,
        "--base-url",
        server.base_url,
        "--ground-truth",
        truth,
        "--json",
        env={"HISTOCR_OPENAI_API_KEY": KEY},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [(s["stage"], s["engine"]) for s in summary["stages"]] == [
        ("ocr", "openai"),
        ("correct", "openai"),
        ("extract", "openai"),
    ]
    assert summary["cer"] == 0.0 and summary["records_written"] == 1
    assert all(s["parameters"]["model"] == MODEL for s in summary["stages"])
    assert KEY not in result.stdout + result.stderr
    assert KEY not in (tmp_path / "out" / "metrics.json").read_text()
    assert len(server.received) == 3


def test_process_with_a_local_transformers_model(tiny_model: Path, tmp_path: Path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:2])
    result = process(
        page,
        "--out",
        tmp_path / "out",
        "--ocr",
        "transformers",
        "--model",
        "tiny-qwen2-vl",
        "--image-max-side",
        "256",
        "--extract",
        "none",
        "--json",
        env={
            "HISTOCR_TRANSFORMERS_MODEL_PATH": str(tiny_model),
            "HISTOCR_TRANSFORMERS_MAX_NEW_TOKENS": "64",
            "HISTOCR_TRANSFORMERS_DEVICE": "cpu",
        },
    )
    # A random model writes nonsense, but through the real processor, template and generate.
    summary = json.loads(result.stdout)
    assert summary["stages"][0]["parameters"]["model"] == "tiny-qwen2-vl"
    assert summary["stages"][0]["parameters"]["image_max_side"] == 256
    assert result.returncode == 0, result.stderr
    assert summary["status"] == "done"
    assert (tmp_path / "out" / "page.txt").read_text(encoding="utf-8").strip()


def test_process_with_vllm_missing_says_how_to_install_it(tmp_path: Path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:1])
    result = process(
        page,
        "--out",
        tmp_path / "out",
        "--ocr",
        "vllm",
        "--model",
        "Qwen/Qwen2.5-VL-3B-Instruct",
        "--extract",
        "none",
        env={},
    )
    assert result.returncode == 1
    assert "histocr[gpu]" in result.stderr and "Traceback" not in result.stderr


def test_process_sends_the_run_to_the_endpoint_it_names(fake_openai, tmp_path: Path):
    line = "Förster, Christian, Fabrikmeister, Großkölnstraße A 391."
    default = fake_openai(model=MODEL, api_key=KEY)
    second = fake_openai(model="second-vlm", api_key="sk-second-endpoint", responder=lambda _: line)
    text = tmp_path / "page.txt"
    text.write_text(line + "\n", encoding="utf-8")
    env = {
        "HISTOCR_OPENAI_BASE_URL": default.base_url,
        "HISTOCR_OPENAI_API_KEY": KEY,
        "HISTOCR_OPENAI_MODEL": MODEL,
        "HISTOCR_ENDPOINTS__second__BASE_URL": second.base_url,
        "HISTOCR_ENDPOINTS__second__API_KEY": "sk-second-endpoint",
        "HISTOCR_ENDPOINTS__second__MODEL": "second-vlm",
    }
    out = tmp_path / "out"
    options = ("--correct", "openai", "--extract", "none", "--json")
    result = process(text, "--out", out, *options, "--endpoint", "second", env=env)
    assert result.returncode == 0, result.stderr
    correct = json.loads(result.stdout)["stages"][1]
    assert correct["parameters"]["endpoint"] == "second"
    assert correct["parameters"]["model"] == "second-vlm"
    assert len(second.received) == 1 and not default.received
    assert default.stats.unauthorized == second.stats.unauthorized == 0
    for secret in (KEY, "sk-second-endpoint", default.base_url, second.base_url):
        assert secret not in result.stdout + (out / "metrics.json").read_text()

    unknown = process(text, "--out", out, *options, "--endpoint", "nowhere", env=env)
    assert unknown.returncode == 1 and "default, second" in unknown.stderr, unknown.stderr
    assert "Traceback" not in unknown.stderr and second.base_url not in unknown.stderr
    # --base-url moves the default endpoint of this process; it cannot redirect another one.
    both = ("--endpoint", "second", "--base-url", default.base_url)
    mixed = process(text, "--out", out, *options, *both, env=env)
    assert mixed.returncode == 2 and "--base-url" in mixed.stderr, mixed.stderr
    assert len(second.received) == 1 and not default.received
