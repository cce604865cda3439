"""Small test data makers shared by several test modules."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from PIL import Image, ImageDraw, ImageFont

from app.config import Settings
from app.pipeline.dispatch import (
    EVALUATE_TASK,
    INGEST_TASK,
    STAGE_TASKS,
    Dispatch,
    InlineDispatcher,
)

# (system, normalized CER %, raw CER %) from benchmark/README.md, micro over types 1-5.
REFERENCE_NUMBERS = [
    ("tesseract-paper", 32.32, 38.99),
    ("transkribus", 3.29, 4.72),
    ("gpt-4o", 5.50, 6.32),
    ("gemini-2.0-flash", 1.17, 1.94),
    ("gpt-4o-postcorrected-transkribus", 0.89, 2.12),
    ("gemini-2.0-flash-postcorrected-transkribus", 0.71, 1.76),
]

# Directory entries as printed: surname, first names, occupation, address. ASCII spellings,
# because the font bundled with Pillow has no umlaut glyphs and the test must not depend on
# system fonts.
PRINTED_LINES = [
    "Foerster, Christian, Fabrikmeister, Grosskoelnstrasse A 391.",
    "Foerster, Johann, Schreiner, Grosskoelnstrasse A 393.",
    "Mueller, Peter Joseph, Baecker, Hochstrasse 12.",
    "Schmitz, Anna Maria, Kauffrau, Marktstrasse 7.",
]


def render_page(path: Path, lines: list[str]) -> Path:
    """A clean printed page: big black text on white, one entry per line."""
    font = ImageFont.load_default(size=40)
    image = Image.new("L", (1400, 80 + 70 * len(lines)), "white")
    draw = ImageDraw.Draw(image)
    for index, line in enumerate(lines):
        draw.text((40, 40 + 70 * index), line, fill="black", font=font)
    image.save(path, dpi=(300, 300))
    return path


class RecordingDispatcher:
    """Keeps what would be sent to the workers, so a test can see it."""

    def __init__(self) -> None:
        self.sent: list[Dispatch] = []

    def send(self, dispatches: list[Dispatch]) -> None:
        self.sent.extend(dispatches)


@contextmanager
def live_app(settings: Settings) -> Iterator[str]:
    """The real app under uvicorn on a free loopback port, for a browser; yields its base URL."""
    import uvicorn

    from app.main import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def inline_dispatcher(settings: Settings) -> InlineDispatcher:
    """Runs ingest, the stages and evaluation in this process, as `histocr process` does: an
    app given it finishes what a request starts at `dispatcher.drain()`, without a worker."""
    from workers.context import make_context
    from workers.tasks.evaluate import evaluate_run
    from workers.tasks.ingest import ingest_document
    from workers.tasks.stages import run_stage

    dispatcher = InlineDispatcher({}, concurrency=1)
    ctx = make_context(settings, dispatcher)
    dispatcher.handlers[INGEST_TASK] = lambda document_id: ingest_document(ctx, document_id)
    dispatcher.handlers[EVALUATE_TASK] = lambda run_id: evaluate_run(ctx, run_id)
    for stage, task in STAGE_TASKS.items():
        dispatcher.handlers[task] = lambda ids, stage=stage: run_stage(ctx, stage, ids)
    return dispatcher


@dataclass(frozen=True)
class FinishedRun:
    """A default-pipeline run over one printed page with the page's ground truth attached."""

    client: TestClient
    run_id: int
    page_id: int
    document_id: int


@contextmanager
def finished_run_on_a_page(
    settings: Settings, folder: Path, printed: list[str], truth: list[str]
) -> Iterator[FinishedRun]:
    """Print `printed` as a scan, upload it, attach `truth` as its transcription and run the
    default pipeline in process; yields the client (single-user mode) and the ids."""
    from app.main import create_app

    app = create_app(settings)
    dispatcher = inline_dispatcher(settings)
    app.state.dispatcher = dispatcher
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000)) as client:
        project = client.post("/api/v1/projects", json={"name": "Köln 1822"}).json()
        scan = render_page(folder / "page.png", printed)
        upload = client.post(
            f"/api/v1/projects/{project['id']}/documents",
            files={"files": ("page.png", scan.read_bytes(), "image/png")},
        )
        assert upload.status_code == 201, upload.text
        dispatcher.drain()
        document = upload.json()["documents"][0]
        attached = client.post(
            f"/api/v1/documents/{document['id']}/ground-truth",
            files={"file": ("page.txt", "\n".join(truth).encode(), "text/plain")},
        )
        assert attached.status_code == 201, attached.text
        run = client.post(f"/api/v1/projects/{project['id']}/runs", json={"name": "review"})
        assert run.status_code == 201, run.text
        dispatcher.drain()
        run_id = run.json()["id"]
        assert client.get(f"/api/v1/runs/{run_id}").json()["status"] == "done"
        page_id = client.get(f"/api/v1/documents/{document['id']}").json()["pages"][0]["id"]
        yield FinishedRun(client, run_id, page_id, document["id"])
