"""A real llama.cpp server (llama-cpp-python[server]) serving Gemma 3 270M, for integration tests.

Installed by `scripts/install-llama-server.sh VENV_DIR` (the wheel and the model are cached on
the machine). A test module makes the fixture its own, as it does with the fake server:

    @pytest.fixture(scope="session")
    def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
        yield from llama_servers(tmp_path_factory)

(or tests/conftest.py imports `llama_server` from here, for every module). The server runs
once per test session on a free port of 127.0.0.1 and is stopped at the end.
When the package or the model is missing the tests fail (never skip), naming the script.
"""

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

#: The name the server answers to (`--model_alias`), as a user would configure it.
MODEL_ALIAS = "gemma-3-270m"
MODEL_FILE = "gemma-3-270m-q4_k_m.gguf"
INSTALL = "scripts/install-llama-server.sh .venv"
#: Loading a 253 MB model takes ~1 s; allow for a busy two-core machine.
START_TIMEOUT_S = 120.0


def model_path() -> Path:
    """HISTOCR_LLAMA_MODEL, else the file the install script writes into the model cache."""
    explicit = os.environ.get("HISTOCR_LLAMA_MODEL")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("HISTOCR_MODEL_CACHE", "/var/cache/histocr/models"))
    return cache / MODEL_FILE


@dataclass
class LlamaServer:
    """A started server: its OpenAI base URL (ending in /v1), model alias, process and log."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing() -> str | None:
    """Why the server cannot start here, or None."""
    if importlib.util.find_spec("llama_cpp") is None:
        return f"llama-cpp-python is not installed in {sys.prefix}"
    path = model_path()
    if not path.is_file():
        return f"the model file {path} is missing"
    return None


def start_llama_server(log_dir: Path, *, threads: int = 2) -> LlamaServer:
    """Start `python -m llama_cpp.server` and wait until `/v1/models` answers."""
    problem = _missing()
    if problem:
        pytest.fail(f"{problem}: run `{INSTALL}` first (takes 5-8 minutes once)", pytrace=False)
    port = _free_port()
    log_path = log_dir / "llama-server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path()),
        "--model_alias",
        MODEL_ALIAS,
        "--chat_format",
        "gemma",
        "--n_threads",
        str(threads),
        "--n_ctx",
        "2048",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", MODEL_ALIAS, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"the llama.cpp server exited with code {process.returncode} before answering "
                f"(reinstall with `{INSTALL}`); its log:\n{server.log_tail()}",
                pytrace=False,
            )
        try:
            if httpx.get(f"{server.base_url}/models", timeout=2.0).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"the llama.cpp server did not answer within {START_TIMEOUT_S:g} s; its log:\n"
                f"{server.log_tail()}",
                pytrace=False,
            )
        time.sleep(0.2)


def llama_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """Start one server, yield it, stop it: the body of a session fixture."""
    server = start_llama_server(tmp_path_factory.mktemp("llama-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One llama.cpp server for the test session, on a free port of 127.0.0.1."""
    yield from llama_servers(tmp_path_factory)
