"""Recognising uploads by their content, and rendering them into page images."""

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pdf2image import convert_from_path, pdfinfo_from_path
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


@dataclass(frozen=True)
class MediaInfo:
    """What an upload turned out to be."""

    media_type: str
    extension: str
    page_count: int


@dataclass(frozen=True)
class RenderedPage:
    """One page image, encoded for storage and for the browser."""

    number: int
    png: bytes | None
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
    path: Path, filename: str, max_pages: int, max_pixels: int = 200_000_000
) -> MediaInfo:
    """Check that a stored upload is a readable PDF or image and count its pages."""
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
    path: Path, media_type: str, *, dpi: int, preview_max_side: int, max_pixels: int = 200_000_000
) -> Iterator[RenderedPage]:
    """Render every page of a stored upload, one at a time to bound memory."""
    with pixel_limit(max_pixels):
        yield from _render(path, media_type, dpi, preview_max_side)


def _render(path: Path, media_type: str, dpi: int, preview_max_side: int) -> Iterator[RenderedPage]:
    if media_type == "text/plain":
        for number, text in enumerate(read_text_pages(path, path.name), start=1):
            yield RenderedPage(number, None, None, 0, 0, None, text=text)
        return
    if media_type == "application/pdf":
        count = _count_pdf_pages(path, path.name)
        for number in range(1, count + 1):
            images = convert_from_path(
                str(path), dpi=dpi, first_page=number, last_page=number, timeout=600
            )
            if not images:
                raise InvalidUpload(f"page {number} could not be rendered")
            yield _encode(number, images[0], dpi, preview_max_side)
        return
    with Image.open(path) as image:
        for index, frame in enumerate(ImageSequence.Iterator(image), start=1):
            info_dpi = frame.info.get("dpi")
            page_dpi = int(round(float(info_dpi[0]))) if info_dpi else None
            yield _encode(index, frame.copy(), page_dpi, preview_max_side)


def _encode(
    number: int, image: Image.Image, dpi: int | None, preview_max_side: int
) -> RenderedPage:
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB" if "A" in image.mode or image.mode in ("P", "CMYK") else "L")
    png = io.BytesIO()
    # Level 1 is several times faster than the default and barely larger for scans.
    image.save(png, format="PNG", compress_level=1)
    preview = image.copy()
    preview.thumbnail((preview_max_side, preview_max_side))
    jpeg = io.BytesIO()
    preview.convert("RGB").save(jpeg, format="JPEG", quality=85)
    return RenderedPage(
        number=number,
        png=png.getvalue(),
        preview_jpeg=jpeg.getvalue(),
        width=image.width,
        height=image.height,
        dpi=dpi,
    )
