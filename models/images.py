"""Page images prepared for multimodal models: resized to a longest side and encoded."""

import base64
import hashlib
import io
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

#: Output formats by the names a run's parameters use.
FORMATS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
}

logger = logging.getLogger(__name__)

_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


@dataclass(frozen=True)
class EncodedImage:
    """An encoded image and how it relates to the page image it was made from."""

    data: bytes
    media_type: str
    width: int
    height: int
    scale: float


def encode_image(
    path: Path, *, max_side: int, fmt: str = "jpeg", quality: int = 90
) -> EncodedImage:
    """Read an image, shrink it to a longest side of at most `max_side` (never enlarge), encode."""
    if max_side < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side}")
    try:
        pil_format, media_type = FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"unknown image format {fmt!r} (known: jpeg, png)") from None
    with Image.open(path) as opened:
        file_size = opened.size
        page_size = file_size[::-1] if _rotated(opened) else file_size
        width, height = _target_size(page_size, max_side)
        if opened.format == "JPEG":
            # Let the JPEG decoder skip detail the resize would throw away anyway.
            opened.draft(None, _target_size(file_size, max_side))
        image = _plain_mode(ImageOps.exif_transpose(opened))
        if (width, height) != image.size:
            image = image.resize((width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if pil_format == "JPEG":
        image.save(buffer, format="JPEG", quality=quality)
    else:
        image.save(buffer, format="PNG")
    return EncodedImage(
        data=buffer.getvalue(),
        media_type=media_type,
        width=width,
        height=height,
        scale=width / page_size[0],
    )


def cached_encode_image(
    path: Path, *, max_side: int, fmt: str = "jpeg", quality: int = 90, cache_dir: Path | None
) -> EncodedImage:
    """encode_image, kept on disk: a page is encoded once per size and format, not per request.

    Ingest prepares the encoding the configured mLLM endpoint wants, so a run's requests only
    read a file; a run with other image settings encodes each page once, on first use. The
    key is the page image's path, size and modification time and the encoding; the folder can
    be deleted at any time. Without a folder (or when it cannot be written) this is encode_image.
    """
    if cache_dir is None:
        return encode_image(path, max_side=max_side, fmt=fmt, quality=quality)
    pil_format, media_type = FORMATS.get(fmt.lower(), ("", ""))
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{max_side}|{fmt.lower()}|{quality}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    cached = cache_dir / digest[:2] / f"{digest}.{pil_format.lower() or 'img'}"
    try:
        # One header line (size and scale), then the encoded image: a hit reads one file.
        header, _, data = cached.read_bytes().partition(b"\n")
        magic, width, height, scale = header.decode("ascii").split(" ")
        if magic == _CACHE_MAGIC and data:
            return EncodedImage(data, media_type, int(width), int(height), float(scale))
    except (OSError, ValueError, UnicodeDecodeError):
        pass  # not there yet, or unreadable: encode (again)
    image = encode_image(path, max_side=max_side, fmt=fmt, quality=quality)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{uuid.uuid4().hex}.partial")
        line = f"{_CACHE_MAGIC} {image.width} {image.height} {image.scale!r}\n"
        partial.write_bytes(line.encode("ascii") + image.data)
        os.replace(partial, cached)  # readers see the whole file or none
    except OSError as exc:
        logger.warning("cannot keep the encoded page image in %s: %s", cache_dir, exc)
    return image


_CACHE_MAGIC = "histocr-encoded-image-v1"


def data_url(image: EncodedImage) -> str:
    """The image as a `data:` URL, the form chat-completions endpoints take inline images in."""
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def _target_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return width, height
    factor = max_side / longest
    return max(1, round(width * factor)), max(1, round(height * factor))


def _rotated(image: Image.Image) -> bool:
    """Whether the EXIF orientation turns the page by 90 degrees (swapping its sides)."""
    return image.getexif().get(ImageOps.ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)


def _plain_mode(image: Image.Image) -> Image.Image:
    """Greyscale stays 8-bit greyscale, everything else becomes RGB; transparency goes white."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        image = image.convert("I").point(lambda value: value * (1 / 256))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, "white")
        flattened = Image.alpha_composite(background, rgba)
        return flattened.convert("L" if image.mode == "LA" else "RGB")
    if image.mode in _GREY_MODES:
        return image.convert("L") if image.mode != "L" else image
    return image.convert("RGB") if image.mode != "RGB" else image
