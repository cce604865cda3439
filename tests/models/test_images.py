"""Page images for multimodal models: resized, converted and encoded as they are sent."""

import base64
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from models.images import EncodedImage, data_url, encode_image


def _save(path: Path, image: Image.Image, **options: Any) -> Path:
    image.save(path, **options)
    return path


def _decode(encoded: EncodedImage) -> Image.Image:
    image = Image.open(io.BytesIO(encoded.data))
    image.load()
    return image


def test_shrinks_the_longest_side_and_keeps_the_aspect(tmp_path: Path) -> None:
    path = _save(tmp_path / "page.png", Image.new("RGB", (400, 100), "white"))
    encoded = encode_image(path, max_side=100)
    decoded = _decode(encoded)
    assert (encoded.width, encoded.height) == (100, 25) == decoded.size
    assert encoded.scale == pytest.approx(0.25)
    assert encoded.media_type == "image/jpeg" and decoded.format == "JPEG"


def test_never_enlarges(tmp_path: Path) -> None:
    path = _save(tmp_path / "small.png", Image.new("L", (30, 50), 128))
    encoded = encode_image(path, max_side=1288, fmt="png")
    assert (encoded.width, encoded.height, encoded.scale) == (30, 50, 1.0)
    decoded = _decode(encoded)
    assert decoded.format == "PNG" and decoded.mode == "L" and decoded.size == (30, 50)


def test_transparency_becomes_white_rgb(tmp_path: Path) -> None:
    path = _save(tmp_path / "clear.png", Image.new("RGBA", (20, 20), (0, 0, 0, 0)))
    decoded = _decode(encode_image(path, max_side=20))
    assert decoded.mode == "RGB"
    assert all(channel > 250 for channel in decoded.getpixel((10, 10)))  # type: ignore[union-attr]


def test_bilevel_and_16_bit_scans_become_8_bit_grey(tmp_path: Path) -> None:
    bilevel = _save(tmp_path / "bw.tif", Image.new("1", (64, 32), 1))
    assert _decode(encode_image(bilevel, max_side=16)).mode == "L"
    deep = _save(tmp_path / "deep.png", Image.new("I;16", (8, 8), 32768))
    decoded = _decode(encode_image(deep, max_side=8, fmt="png"))
    assert decoded.mode == "L" and decoded.getpixel((4, 4)) == 128


def test_large_jpeg_is_decoded_small_but_scaled_from_its_full_size(tmp_path: Path) -> None:
    path = _save(tmp_path / "scan.jpg", Image.new("RGB", (1600, 1200), "white"), quality=80)
    encoded = encode_image(path, max_side=200)
    assert (encoded.width, encoded.height) == (200, 150)
    assert encoded.scale == pytest.approx(200 / 1600)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    path = _save(tmp_path / "turned.jpg", Image.new("RGB", (80, 40), "white"), exif=exif)
    encoded = encode_image(path, max_side=40)
    assert (encoded.width, encoded.height) == (20, 40)
    assert encoded.scale == pytest.approx(0.5)


def test_data_url_carries_the_bytes() -> None:
    encoded = EncodedImage(data=b"\x89PNG...", media_type="image/png", width=1, height=1, scale=1)
    url = data_url(encoded)
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == encoded.data


def test_bad_arguments_and_files_fail_clearly(tmp_path: Path) -> None:
    path = _save(tmp_path / "page.png", Image.new("RGB", (10, 10)))
    with pytest.raises(ValueError, match="unknown image format"):
        encode_image(path, max_side=10, fmt="bmp")
    with pytest.raises(ValueError, match="max_side"):
        encode_image(path, max_side=0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(OSError):
        encode_image(broken, max_side=10)


def test_cache_keeps_each_encoding_once_and_gives_the_same_image(tmp_path: Path) -> None:
    from models.images import cached_encode_image

    page = _save(tmp_path / "page.png", Image.new("L", (600, 300), 200))
    cache = tmp_path / "cache"
    first = cached_encode_image(page, max_side=200, cache_dir=cache)
    kept = list(cache.rglob("*.jpeg"))
    assert len(kept) == 1
    again = cached_encode_image(page, max_side=200, cache_dir=cache)
    assert again == first and (again.width, again.height, again.scale) == (200, 100, 200 / 600)
    # Another size or format is another entry; the same call reads the file, not the page.
    cached_encode_image(page, max_side=100, cache_dir=cache)
    cached_encode_image(page, max_side=200, fmt="png", cache_dir=cache)
    assert len(list(cache.rglob("*.*"))) == 3
    header, _, _data = kept[0].read_bytes().partition(b"\n")
    kept[0].write_bytes(header + b"\nkept bytes")  # a hit reads the file, not the page
    assert cached_encode_image(page, max_side=200, cache_dir=cache).data == b"kept bytes"
    kept[0].write_bytes(b"not a cache entry")
    assert cached_encode_image(page, max_side=200, cache_dir=cache) == first  # encoded anew


def test_a_changed_page_or_an_unwritable_cache_is_encoded_afresh(tmp_path: Path) -> None:
    from models.images import cached_encode_image

    page = _save(tmp_path / "page.png", Image.new("L", (300, 300), 200))
    cache = tmp_path / "cache"
    before = cached_encode_image(page, max_side=100, cache_dir=cache)
    _save(page, Image.new("L", (300, 150), 20))
    after = cached_encode_image(page, max_side=100, cache_dir=cache)
    assert (before.height, after.height) == (100, 50)
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    assert cached_encode_image(page, max_side=100, cache_dir=blocked) == after
