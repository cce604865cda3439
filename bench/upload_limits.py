"""What hostile uploads cost the server: disk while a 1 GiB body streams in, memory of ingest.

    python bench/upload_limits.py stream    # a real `histocr serve`, 1 GiB bodies against it
    python bench/upload_limits.py ingest    # peak RSS of ingesting a 4,800 × 4,800 pt PDF page
    python bench/upload_limits.py           # both

`stream` starts `histocr serve --no-worker` on SQLite in a temp folder with the default limits
(HISTOCR_MAX_UPLOAD_MB 200, HISTOCR_MAX_REQUEST_MB 1000) and sends, over a raw socket so that
the client reads the answer while it is still sending, (a) one 1 GiB file with an honest
Content-Length, (b) the same without Content-Length (chunked), (c) a Content-Length that lies
(says 1 KiB, sends 1 GiB). While each request runs, a sampler reads the server process's open
files every 5 ms and records the most bytes it held in temp files (the multipart spool, which
is unlinked as soon as it is made, so a directory listing never shows it) plus everything under
the storage folder. Printed per case: the status, the detail, how many bytes the client got to
send before the answer came, and that peak.

`ingest` stores a one-page 4,800 × 4,800 pt PDF (a 1-bit scan at 72 dpi) as a document and runs
the ingest task on it in a child process; printed: the child's peak RSS, that of its largest
child process (pdftoppm), the peak of both together (sampled every 10 ms), the status, and the
page's size and the DPI it was rendered at.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GIB = 1024**3
CHUNK = 1024 * 1024
PAGE_PT = 4800


# --- ingest memory ----------------------------------------------------------------------------


def oversized_pdf(path: Path) -> Path:
    """One 4,800 × 4,800 pt page: a 1-bit 4,800-pixel scan placed at 72 dpi, with some print."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (PAGE_PT, PAGE_PT), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=60)
    for row in range(40):
        draw.text((200, 200 + 110 * row), f"Foerster, Christian, Fabrikmeister {row}", font=font)
    image.convert("1").save(path, resolution=72.0)
    return path


def bench_ingest() -> dict[str, object]:
    """Store the oversized page as a document, then ingest it in a child process."""
    from app.cli.serve import upgrade_database
    from app.config import Settings
    from app.db.session import session_scope
    from app.services.documents import import_local_file
    from app.services.projects import get_or_create_project
    from app.storage import LocalStorage

    with tempfile.TemporaryDirectory(prefix="histocr-bench-") as folder:
        settings = Settings(data_dir=Path(folder) / "var")
        upgrade_database(settings)
        pdf = oversized_pdf(Path(folder) / "poster.pdf")
        storage = LocalStorage(settings.resolved_storage_dir)
        with session_scope(settings.resolved_database_url) as session:
            project = get_or_create_project(session=session, name="bench")
            document, _ = import_local_file(
                session=session, storage=storage, settings=settings, project=project, path=pdf
            )
            document_id = document.id
        env = {**os.environ, "HISTOCR_DATA_DIR": str(settings.data_dir)}
        child = subprocess.run(
            [sys.executable, __file__, "_ingest", str(document_id)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            raise SystemExit(child.stderr[-3000:])
        return json.loads(child.stdout.strip().splitlines()[-1])


class TreeMemory(threading.Thread):
    """Peak RSS of this process and its children together, sampled every 10 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.running = True

    @staticmethod
    def rss(pid: int) -> int:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def sample(self) -> int:
        me = os.getpid()
        total = self.rss(me)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    if int(entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()[1]) == me:
                        total += self.rss(int(entry.name))
        return total

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.sample())
            time.sleep(0.01)


def ingest_child(document_id: int) -> None:
    """Ingest one document here and print this process's and its children's peak RSS."""
    from sqlalchemy import select

    from app.config import get_settings
    from app.db.session import session_scope
    from app.db.tables import Document, Page
    from workers.context import make_context
    from workers.tasks.ingest import ingest_document

    class NoDispatch:
        def send(self, dispatches: object) -> None:
            del dispatches

    settings = get_settings()
    started = time.perf_counter()
    raised = None
    tree = TreeMemory()
    tree.start()
    try:
        ingest_document(make_context(settings, NoDispatch()), document_id)
    except Exception as exc:  # the task re-raises what failed the document: report it
        raised = f"{type(exc).__name__}: {exc}"[:300]
    tree.running = False
    tree.join()
    seconds = time.perf_counter() - started
    with session_scope(settings.resolved_database_url) as session:
        document = session.get_one(Document, document_id)
        pages = list(session.scalars(select(Page).where(Page.document_id == document_id)))
        result = {
            "status": str(document.status),
            "error": document.error,
            "raised": raised,
            "pages": [(p.width, p.height, p.dpi) for p in pages],
            "seconds": round(seconds, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            "peak_rss_child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024,
            "peak_rss_together_mb": tree.peak // 2**20,
        }
    print(json.dumps(result))


# --- streaming uploads ------------------------------------------------------------------------


def free_port() -> int:
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A real `histocr serve --no-worker` on SQLite, stopped afterwards."""
    env = {
        **os.environ,
        "HISTOCR_DATA_DIR": str(data_dir),
        "HISTOCR_PORT": str(port),
        "TMPDIR": str(data_dir / "tmp"),
    }
    (data_dir / "tmp").mkdir(parents=True, exist_ok=True)
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--no-worker"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert process.poll() is None, (data_dir / "serve.log").read_text()[-3000:]
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


class DiskSampler(threading.Thread):
    """Peak bytes a process holds in files under `roots`, open or not (unlinked ones too)."""

    def __init__(self, pid: int, roots: list[Path]) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.roots = [str(r.resolve()) for r in roots]
        self.peak = 0
        self.running = True

    def sample(self) -> int:
        seen: dict[tuple[int, int], int] = {}
        fd_dir = Path(f"/proc/{self.pid}/fd")
        for fd in fd_dir.iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith(tuple(self.roots)):
                    stat = os.stat(fd)
                    seen[(stat.st_dev, stat.st_ino)] = stat.st_size
        for root in self.roots:
            for path in Path(root).rglob("*"):
                with contextlib.suppress(OSError):
                    if path.is_file():
                        stat = path.stat()
                        seen[(stat.st_dev, stat.st_ino)] = stat.st_size
        return sum(seen.values())

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.sample())
            time.sleep(0.005)

    def stop(self) -> int:
        self.running = False
        self.join()
        return self.peak


def send_upload(port: int, path: str, total: int, mode: str) -> tuple[int, str, int]:
    """POST a multipart body with one `total`-byte file; returns (status, detail, bytes sent).

    Reads the answer while sending, as curl does, so an early 413 is seen at once."""
    boundary = "histocrbenchboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="huge.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + total + len(tail)
    headers = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Type: multipart/form-data; boundary={boundary}",
    ]
    if mode == "honest":
        headers.append(f"Content-Length: {length}")
    elif mode == "lying":
        headers.append("Content-Length: 1024")
    else:
        headers.append("Transfer-Encoding: chunked")
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(("\r\n".join(headers) + "\r\n\r\n").encode())
    sent = 0
    answer = b""
    payload = b"%PDF-1.4\n" + b"\0" * (CHUNK - 9)

    def frame(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n" if mode == "chunked" else data

    try:
        pieces = [head] + [payload] * (total // CHUNK) + [tail]
        for piece in pieces:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(65536)
            sock.setblocking(True)
            if answer:
                break
            sock.sendall(frame(piece))
            sent += len(piece)
        if mode == "chunked" and not answer:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    sock.settimeout(30)
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    sock.close()
    status_line, _, rest = answer.partition(b"\r\n")
    status = int(status_line.split()[1]) if status_line else 0
    body = rest.partition(b"\r\n\r\n")[2].decode(errors="replace")
    return status, body[:300], sent


def bench_stream() -> list[dict[str, object]]:
    """1 GiB bodies three ways against a real server; the peak disk it used for each."""
    import httpx

    results = []
    with tempfile.TemporaryDirectory(prefix="histocr-bench-") as folder:
        data_dir = Path(folder) / "var"
        port = free_port()
        with serve(data_dir, port) as server:
            base = f"http://127.0.0.1:{port}/api/v1"
            project = httpx.post(f"{base}/projects", json={"name": "bench"}).json()["id"]
            for mode in ("honest", "chunked", "lying"):
                sampler = DiskSampler(server.pid, [data_dir / "tmp", data_dir / "files"])
                sampler.start()
                started = time.perf_counter()
                status, detail, sent = send_upload(
                    port, f"/api/v1/projects/{project}/documents", GIB, mode
                )
                seconds = time.perf_counter() - started
                time.sleep(0.2)
                peak = sampler.stop()
                left = DiskSampler(server.pid, [data_dir / "tmp", data_dir / "files"]).sample()
                results.append(
                    {
                        "mode": mode,
                        "status": status,
                        "detail": detail,
                        "client_sent_mb": round(sent / 2**20, 1),
                        "peak_temp_and_store_mb": round(peak / 2**20, 1),
                        "left_after_mb": round(left / 2**20, 1),
                        "seconds": round(seconds, 2),
                    }
                )
            listing = httpx.get(f"{base}/projects/{project}/documents").json()
            results.append({"documents_stored": len(listing)})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", nargs="*", default=["stream", "ingest"])
    args = parser.parse_args()
    if args.what and args.what[0] == "_ingest":
        ingest_child(int(args.what[1]))
        return
    if "stream" in args.what:
        for row in bench_stream():
            print(json.dumps(row, ensure_ascii=False))
    if "ingest" in args.what:
        print(json.dumps({"ingest": bench_ingest()}))


if __name__ == "__main__":
    main()
