"""Page preparation on synthetic scans: crop, deskew, and mapping boxes back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from models.ocr.imageops import line_pitch, remove_long_vertical_runs, sauvola_ink
from models.ocr.pageprep import (
    PrepOptions,
    estimate_skew,
    find_page_crop,
    prepare_page,
)

ENTRIES = [
    "Müller, Johann, Schneidermeister, Hauptstraße 12.",
    "Schmidt, Peter, Bäcker, Marktplatz 3.",
    "Weber, Anna, Witwe, Kirchgasse 7.",
    "Fischer, Jakob, Kaufmann, Neue Kräme 24.",
    "Wagner, Karl, Schreiner, Rosenstraße 19.",
]
PAPER, INK, EDGE = 222, 40, 25


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _text_page(width: int, height: int, lines: int, size: int = 30) -> Image.Image:
    """A paper-toned page with directory-like lines of text from its top-left margin."""
    page = Image.new("L", (width, height), PAPER)
    draw = ImageDraw.Draw(page)
    for i in range(lines):
        draw.text(
            (60, 60 + i * round(size * 1.6)), ENTRIES[i % len(ENTRIES)], fill=INK, font=_font(size)
        )
    return page


def _photographed_spread() -> tuple[Image.Image, tuple[int, int, int, int], int]:
    """A page with a dark book edge around it and a strip of the facing page on the left.

    Returns the image, the page's text box and the right edge of the facing page's strip.
    """
    scan = Image.new("L", (1500, 1700), EDGE)
    facing = _text_page(700, 1500, 26)
    scan.paste(facing.crop((560, 0, 700, 1500)), (20, 100))  # the facing page's last 140 px
    page = _text_page(1100, 1500, 26)
    scan.paste(page, (240, 100))
    text = np.asarray(page) < 128
    rows, cols = np.flatnonzero(text.any(axis=1)), np.flatnonzero(text.any(axis=0))
    box = (240 + cols[0], 100 + rows[0], 240 + cols[-1] + 1, 100 + rows[-1] + 1)
    return scan, box, 20 + 140


def test_crop_keeps_the_text_block_and_drops_edges_and_the_facing_page():
    scan, text_box, strip_right = _photographed_spread()
    crop = find_page_crop(scan)
    left, top, right, bottom = crop.kept
    assert left <= text_box[0] and top <= text_box[1]
    assert right >= text_box[2] and bottom >= text_box[3]
    assert left > strip_right, "the facing page's strip must be cut off"
    # No more than a margin of dark book edge is kept around the page (240..1340 x 100..1600).
    assert left >= 240 - 5 and right <= 1340 + 5 and top >= 100 - 5 and bottom <= 1600 + 5


def test_crop_keeps_a_second_column_of_the_same_page():
    page = Image.new("L", (1600, 1200), PAPER)
    left_column, right_column = _text_page(760, 1100, 20), _text_page(760, 1100, 20)
    page.paste(left_column, (20, 40))
    page.paste(right_column, (820, 40))
    crop = find_page_crop(page)
    assert crop.kept[0] <= 80 and crop.kept[2] >= 820 + 500


@pytest.mark.parametrize("angle", [-2.5, -0.8, 1.3, 3.0])
def test_deskew_finds_the_rotation_within_half_a_degree(angle):
    page = _text_page(1200, 1500, 26)
    rotated = page.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=PAPER)
    found = estimate_skew(rotated)
    # estimate_skew returns the rotation that straightens the page: minus the applied one.
    assert found == pytest.approx(-angle, abs=0.5)


def test_prepared_page_maps_boxes_back_into_the_original():
    scan, text_box, _ = _photographed_spread()
    scan = scan.rotate(1.5, resample=Image.Resampling.BICUBIC, fillcolor=EDGE)
    prepared = prepare_page(scan, PrepOptions(target_line_pitch=80))
    assert prepared.angle == pytest.approx(-1.5, abs=0.5)
    assert prepared.scale > 1.0  # a 48 px pitch is enlarged towards 80
    whole = (0, 0, prepared.image.width, prepared.image.height)
    left, top, right, bottom = prepared.to_original(whole)
    assert 0 <= left < right <= scan.width and 0 <= top < bottom <= scan.height
    # The prepared image covers the page's text (allow the rotation's few pixels).
    assert left <= text_box[0] + 10 and right >= text_box[2] - 10


def test_every_step_can_be_switched_off():
    scan, _, _ = _photographed_spread()
    prepared = prepare_page(
        scan, PrepOptions(crop=False, deskew=False, contrast="none", target_line_pitch=0)
    )
    assert prepared.image.size == scan.size
    assert prepared.crop is None and prepared.angle == 0.0 and prepared.scale == 1.0
    assert np.array_equal(np.asarray(prepared.image), np.asarray(scan))


def test_binarise_gives_black_text_on_white():
    page = _text_page(800, 600, 8)
    prepared = prepare_page(page, PrepOptions(crop=False, deskew=False, contrast="binarise"))
    values = set(np.unique(np.asarray(prepared.image)).tolist())
    assert values <= {0, 255}
    assert 0.01 < (np.asarray(prepared.image) == 0).mean() < 0.3


def test_line_pitch_of_a_text_page():
    page = _text_page(1000, 1500, 26, size=30)  # lines every 48 px
    ink = sauvola_ink(np.asarray(page))
    assert line_pitch(ink.sum(axis=1)) == pytest.approx(48, abs=2)


def test_long_vertical_strokes_are_removed_letters_stay():
    ink = np.zeros((200, 50), dtype=bool)
    ink[:, 5] = True  # a page edge
    ink[50:80, 20] = True  # a letter's stem
    cleaned = remove_long_vertical_runs(ink, 60)
    assert not cleaned[:, 5].any() and cleaned[50:80, 20].all()


def test_columns_split_only_between_wide_text_columns():
    from models.ocr.pageprep import _split_columns

    pitch = 10.0
    # Two wide columns with a gutter: two columns.
    assert _split_columns([(0, 400), (450, 850)], pitch) == [(0, 400), (450, 850)]
    # A narrow column of house numbers set apart from the names: one table, read row by row.
    assert _split_columns([(0, 400), (450, 500)], pitch) == [(0, 500)]
    # A word space (under 1.5 line pitches) never splits.
    assert _split_columns([(0, 400), (410, 800)], pitch) == [(0, 800)]
