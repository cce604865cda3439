"""Page images prepared for multimodal models: resized to a longest side and encoded."""

import base64
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

#: Output formats by the names a run's parameters use.
FORMATS = {
    "jpeg": ("JPEG", "image/jpeg"),
    "jpg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
}

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
