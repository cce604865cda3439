"""Recognising uploads by their content, and rendering them into page images."""

import io
import math
import re
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pdf2image import pdfinfo_from_path
from pdf2image.exceptions import PDFInfoNotInstalledError, PDFPageCountError, PDFSyntaxError
from PIL import Image, ImageSequence, UnidentifiedImageError

from app.errors import InvalidUpload

MEDIA_TYPES = {
    "application/pdf": ".pdf",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/tiff": ".tif",
    "text/plain": ".txt",
}
#: Separates the pages of an imported transcription (form feed, as pdftotext writes it).
PAGE_BREAK = "\f"
#: The lowest resolution a PDF page is rendered at to stay within HISTOCR_MAX_IMAGE_PIXELS (the
#: lower bound of HISTOCR_RENDER_DPI): a page too large even at this one is refused at upload.
MIN_RENDER_DPI = 50
POINTS_PER_INCH = 72
#: How long pdftoppm may take for one page before ingest gives up on the document.
RENDER_TIMEOUT_S = 600
_MEDIA_BOX = re.compile(
    rb"^Page\s+(\d+)\s+MediaBox:\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s+([-\d.]+)\s*$", re.M
)


@dataclass(frozen=True)
class MediaInfo:
    """What an upload turned out to be."""

    media_type: str
    extension: str
    page_count: int


@dataclass(frozen=True)
class RenderedPage:
    """One page image, encoded for storage and for the browser: `png` is a temporary file for
    the caller to move into the store while the page is current (it is gone after)."""

    number: int
    png: Path | None
    preview_jpeg: bytes | None
    width: int
    height: int
    dpi: int | None
    text: str | None = None


def sniff_media_type(head: bytes) -> str | None:
    """The media type told by a file's first bytes, whatever its name says."""
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


def inspect_upload(
    path: Path,
    filename: str,
    max_pages: int,
    max_pixels: int = 200_000_000,
    render_dpi: int = 300,
) -> MediaInfo:
    """Check that a stored upload is a readable PDF or image that can be rendered within
    `max_pixels` a page, and count its pages."""
    with path.open("rb") as handle:
        head = handle.read(16)
    if not head:
        raise InvalidUpload(f"{filename}: the file is empty")
    media_type = sniff_media_type(head)
    if media_type is None and filename.lower().endswith(".txt"):
        pages = len(read_text_pages(path, filename))
        return MediaInfo(media_type="text/plain", extension=".txt", page_count=pages)
    if media_type is None:
        raise InvalidUpload(
            f"{filename}: not a PDF, PNG, JPEG or TIFF file (judged by its content, not its name)"
        )
    if media_type == "application/pdf":
        pages = _count_pdf_pages(path, filename)
    else:
        pages = _count_image_frames(path, filename, max_pixels)
    if pages < 1:
        raise InvalidUpload(f"{filename}: the file has no pages")
    if pages > max_pages:
        raise InvalidUpload(f"{filename}: {pages} pages, more than the limit of {max_pages}")
    if media_type == "application/pdf":
        for number, size in enumerate(pdf_page_sizes(path, filename, pages), start=1):
            if not fitting_dpi(size, render_dpi, max_pixels):
                raise InvalidUpload(_page_too_large(filename, number, size, max_pixels))
    return MediaInfo(media_type=media_type, extension=MEDIA_TYPES[media_type], page_count=pages)


def decode_text(data: bytes, filename: str) -> str:
    """An uploaded text file: UTF-8 (with or without BOM), never empty, with \\n line ends."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidUpload(
            f"{filename}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from exc
    if not text.strip():
        raise InvalidUpload(f"{filename}: the file is empty")
    if "\x00" in text:
        raise InvalidUpload(f"{filename}: contains NUL bytes, which a text file does not have")
    return text.replace("\r\n", "\n")


def read_text_pages(path: Path, filename: str) -> list[str]:
    """The pages of a UTF-8 transcription, split at form feeds."""
    text = decode_text(path.read_bytes(), filename)
    pages = text.split(PAGE_BREAK)
    if pages and not pages[-1].strip():
        pages.pop()  # a trailing form feed ends the last page rather than starting a new one
    return [page.strip("\n") for page in pages]


def _count_pdf_pages(path: Path, filename: str) -> int:
    try:
        info = pdfinfo_from_path(str(path), timeout=60)
    except PDFInfoNotInstalledError as exc:
        raise RuntimeError("poppler-utils (pdfinfo) is not installed") from exc
    except (PDFPageCountError, PDFSyntaxError, ValueError) as exc:
        if "password" in str(exc).lower():  # poppler: "Command Line Error: Incorrect password"
            raise InvalidUpload(
                f"{filename}: the PDF is encrypted and needs a password to open; "
                "save a copy without a password and upload that"
            ) from exc
        raise InvalidUpload(f"{filename}: not a readable PDF ({_first_line(exc)})") from exc
    return int(info.get("Pages", 0))


def pdf_page_sizes(path: Path, filename: str, pages: int) -> list[tuple[float, float]]:
    """Each page's media box (width, height) in points: what pdftoppm renders."""
    try:
        result = subprocess.run(
            ["pdfinfo", "-box", "-f", "1", "-l", str(pages), str(path)],
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidUpload(f"{filename}: reading the PDF's page sizes took too long") from exc
    sizes: dict[int, tuple[float, float]] = {}
    # The pages' lines come after the document's metadata, so a title that forges such a line
    # is overwritten by the real one.
    for match in _MEDIA_BOX.finditer(result.stdout):
        try:
            x0, y0, x1, y1 = (float(value) for value in match.groups()[1:])
        except ValueError:
            continue
        sizes[int(match.group(1))] = (abs(x1 - x0), abs(y1 - y0))
    missing = [number for number in range(1, pages + 1) if number not in sizes]
    if result.returncode != 0 or missing:
        reason = result.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise InvalidUpload(
            f"{filename}: not a readable PDF (no page size for page {missing[0] if missing else 1}"
            + (f": {reason[0][:200]}" if reason else "")
            + ")"
        )
    return [sizes[number] for number in range(1, pages + 1)]


def page_pixels(size: tuple[float, float], dpi: int) -> int:
    """Pixels of a page of `size` points rendered at `dpi` (rounded up, as pdftoppm does)."""
    width, height = size
    return (math.ceil(width * dpi / POINTS_PER_INCH) + 1) * (
        math.ceil(height * dpi / POINTS_PER_INCH) + 1
    )


def fitting_dpi(size: tuple[float, float], dpi: int, max_pixels: int) -> int:
    """The highest resolution up to `dpi` at which a page of `size` points stays within
    `max_pixels`; 0 when even MIN_RENDER_DPI does not."""
    area = max(size[0] * size[1], 1e-9)
    best = min(dpi, int(POINTS_PER_INCH * math.sqrt(max_pixels / area)))
    while best >= MIN_RENDER_DPI and page_pixels(size, best) > max_pixels:
        best -= 1
    return best if best >= MIN_RENDER_DPI else 0


def _page_too_large(filename: str, number: int, size: tuple[float, float], max_pixels: int) -> str:
    width, height = (side / POINTS_PER_INCH * 2.54 for side in size)
    return (
        f"{filename}: page {number} is {size[0]:,.0f} × {size[1]:,.0f} pt ({width:,.0f} × "
        f"{height:,.0f} cm); even at {MIN_RENDER_DPI} dpi it would be "
        f"{page_pixels(size, MIN_RENDER_DPI):,} pixels, more than the limit of {max_pixels:,}"
    )


def _count_image_frames(path: Path, filename: str, max_pixels: int) -> int:
    try:
        with pixel_limit(max_pixels), Image.open(path) as image:
            frames = 0
            for frame in ImageSequence.Iterator(image):
                if frame.width * frame.height > max_pixels:
                    raise InvalidUpload(
                        f"{filename}: page {frames + 1} is {frame.width}×{frame.height} pixels, "
                        f"more than the limit of {max_pixels:,}"
                    )
                frame.load()
                frames += 1
            return frames
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidUpload(f"{filename}: the image is too large to process ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidUpload(f"{filename}: not a readable image ({_first_line(exc)})") from exc


@contextmanager
def pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let Pillow open images up to our own limit (its default is about 89 million pixels)."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def render_pages(
    path: Path,
    media_type: str,
    *,
    dpi: int,
    preview_max_side: int,
    max_pixels: int = 200_000_000,
    work_dir: Path | None = None,
) -> Iterator[RenderedPage]:
    """Render every page of a stored upload, one at a time, into files under `work_dir`.

    A PDF page is rendered at `dpi`, or at the highest lower resolution that keeps it within
    `max_pixels` (recorded as the page's dpi), so `max_pixels` bounds the memory: about 7 bytes
    a pixel in pdftoppm, then about 4 in this process, which maps the rendered file and makes
    no full-size copy of it (bench/upload_limits.py measures it).
    """
    with pixel_limit(max_pixels):
        if media_type == "text/plain":
            for number, text in enumerate(read_text_pages(path, path.name), start=1):
                yield RenderedPage(number, None, None, 0, 0, None, text=text)
        elif media_type == "application/pdf":
            yield from _render_pdf(path, dpi, max_pixels, preview_max_side, work_dir)
        else:
            yield from _render_image(path, preview_max_side, work_dir)


def _render_pdf(
    path: Path, dpi: int, max_pixels: int, preview_max_side: int, work_dir: Path | None
) -> Iterator[RenderedPage]:
    count = _count_pdf_pages(path, path.name)
    for number, size in enumerate(pdf_page_sizes(path, path.name, count), start=1):
        page_dpi = fitting_dpi(size, dpi, max_pixels)
        if not page_dpi:
            raise InvalidUpload(_page_too_large(path.name, number, size, max_pixels))
        with tempfile.TemporaryDirectory(dir=work_dir, prefix=".render-") as folder:
            ppm = _pdftoppm(path, number, page_dpi, Path(folder))
            with Image.open(ppm) as image:
                yield _encode(number, image, page_dpi, preview_max_side, Path(folder))


def _pdftoppm(path: Path, number: int, dpi: int, folder: Path) -> Path:
    """Render one page into a PPM file in `folder`: written to a file, not piped, because a
    pipe's bytes and the image parsed from them would be two full copies in memory."""
    result = subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-f", str(number), "-l", str(number), "-singlefile"]
        + [str(path), str(folder / "page")],
        capture_output=True,
        timeout=RENDER_TIMEOUT_S,
        check=False,
    )
    ppm = folder / "page.ppm"
    if result.returncode != 0 or not ppm.is_file():
        reason = result.stderr.decode(errors="replace").strip().splitlines()[:1]
        raise InvalidUpload(
            f"page {number} could not be rendered" + (f" ({reason[0][:200]})" if reason else "")
        )
    return ppm


def _render_image(
    path: Path, preview_max_side: int, work_dir: Path | None
) -> Iterator[RenderedPage]:
    with Image.open(path) as image:
        for index, frame in enumerate(ImageSequence.Iterator(image), start=1):
            info_dpi = frame.info.get("dpi")
            page_dpi = int(round(float(info_dpi[0]))) if info_dpi else None
            with tempfile.TemporaryDirectory(dir=work_dir, prefix=".render-") as folder:
                yield _encode(index, frame, page_dpi, preview_max_side, Path(folder))


def _encode(
    number: int, image: Image.Image, dpi: int | None, preview_max_side: int, folder: Path
) -> RenderedPage:
    """The page as a PNG file in `folder` and a JPEG preview, with no full-size copy made
    (but for the rare modes that need converting)."""
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB" if "A" in image.mode or image.mode in ("P", "CMYK") else "L")
    png = folder / f"page-{number}.png"
    # Level 1 is several times faster than the default and barely larger for scans.
    image.save(png, format="PNG", compress_level=1)
    scale = min(1.0, preview_max_side / max(image.width, image.height, 1))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Resized from the page straight away (reducing_gap: in steps, as thumbnail() does).
    preview = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    jpeg = io.BytesIO()
    preview.convert("RGB").save(jpeg, format="JPEG", quality=85)
    return RenderedPage(
        number=number,
        png=png,
        preview_jpeg=jpeg.getvalue(),
        width=image.width,
        height=image.height,
        dpi=dpi,
    )
