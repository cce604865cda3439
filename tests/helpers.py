"""Small test data makers shared by several test modules."""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from app.config import Settings
from app.pipeline.dispatch import Dispatch

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
