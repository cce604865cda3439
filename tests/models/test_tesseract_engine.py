"""The Tesseract engine as a run builds it: shipped model, page preparation, lines with boxes."""

from pathlib import Path

import pytest

from models.base import EngineError, EngineNotAvailable, EngineRequest, EngineResult
from models.ocr import SHIPPED_TESSDATA
from models.ocr.tessdata import search_path, system_tessdata, tessdata_for
from models.registry import create_engine
from tests.helpers import PRINTED_LINES, render_page

DEFAULTS = {"languages": "frak2021", "psm": 6, "oem": 1, "timeout_s": 120.0}


def recognise(image: Path, **parameters) -> EngineResult:
    engine = create_engine("tesseract", DEFAULTS | parameters, {"binary": "tesseract"})
    (result,) = engine.run_batch([EngineRequest(image_path=image, image_dpi=300)])
    assert isinstance(result, EngineResult), result
    return result


def test_the_shipped_model_is_found_without_any_setting():
    folders = search_path(None, "tesseract")
    assert folders[0] == SHIPPED_TESSDATA
    assert tessdata_for("frak2021", folders) == SHIPPED_TESSDATA


def test_models_from_two_folders_are_joined_in_one(tmp_path):
    system = system_tessdata("tesseract")
    assert system is not None and (system / "deu.traineddata").is_file()
    joined = tessdata_for("frak2021+deu", search_path(None, "tesseract"))
    assert joined not in (SHIPPED_TESSDATA, system)
    assert {p.name for p in joined.iterdir()} == {"frak2021.traineddata", "deu.traineddata"}
    assert (joined / "deu.traineddata").resolve() == (system / "deu.traineddata").resolve()


def test_a_configured_folder_comes_first(tmp_path):
    (tmp_path / "frak2021.traineddata").symlink_to(SHIPPED_TESSDATA / "frak2021.traineddata")
    assert tessdata_for("frak2021", search_path(str(tmp_path), "tesseract")) == tmp_path


def test_a_missing_model_is_named_with_what_there_is(tmp_path):
    engine = create_engine("tesseract", DEFAULTS | {"languages": "klingon"}, {})
    with pytest.raises(EngineNotAvailable) as caught:
        engine.run_batch([EngineRequest(image_path=tmp_path / "page.png")])
    assert "klingon" in str(caught.value) and "frak2021" in str(caught.value)


def test_lines_with_boxes_confidences_and_the_crop(tmp_path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES)
    result = recognise(page)
    assert result.lines is not None and len(result.lines) == len(PRINTED_LINES)
    assert result.text.splitlines() == [line.text for line in result.lines]
    assert "Christian, Fabrikmeister" in result.text
    tops = []
    for line in result.lines:
        assert line.bbox is not None
        x0, y0, x1, y1 = line.bbox
        assert 0 <= x0 < x1 <= 1400 and 0 <= y0 < y1
        assert line.confidence is not None and line.min_confidence is not None
        assert 0 <= line.min_confidence <= line.confidence <= 1
        tops.append(y0)
    assert tops == sorted(tops)
    assert result.page_layout is not None and result.page_layout["crop"] is not None


def test_diplomatic_text_is_kept_beside_the_normalised(tmp_path):
    page = render_page(tmp_path / "page.png", PRINTED_LINES[:2])
    normalised = recognise(page)
    diplomatic = recognise(page, transcription="diplomatic")
    assert [line.diplomatic for line in diplomatic.lines or ()] == [
        line.text for line in diplomatic.lines or ()
    ]
    assert len(normalised.lines or ()) == len(diplomatic.lines or ())


def test_an_unreadable_image_fails_that_page_only(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    engine = create_engine("tesseract", DEFAULTS, {})
    (result,) = engine.run_batch([EngineRequest(image_path=broken)])
    assert isinstance(result, EngineError) and not result.retryable
    assert "cannot read the page image" in str(result)


def test_two_columns_are_read_one_after_the_other(tmp_path):
    """A two-column page: each column's entries in order, never a line across both."""
    from PIL import Image, ImageDraw, ImageFont

    left = [f"Albrecht, Johann {n}, Bäcker, Hochstraße {n}." for n in range(1, 13)]
    right = [f"Zimmermann, Peter {n}, Schmied, Marktplatz {n}." for n in range(1, 13)]
    font = ImageFont.load_default(size=34)
    image = Image.new("L", (2000, 100 + 60 * len(left)), "white")
    draw = ImageDraw.Draw(image)
    for index, (first, second) in enumerate(zip(left, right, strict=True)):
        draw.text((40, 50 + 60 * index), first, fill="black", font=font)
        draw.text((1060, 50 + 60 * index), second, fill="black", font=font)
    page = tmp_path / "two-columns.png"
    image.save(page, dpi=(300, 300))

    result = recognise(page)
    lines = [line.text for line in result.lines or ()]
    assert not any("Albrecht" in line and "Zimmermann" in line for line in lines), lines
    albrecht = [i for i, line in enumerate(lines) if "Albrecht" in line]
    zimmermann = [i for i, line in enumerate(lines) if "Zimmermann" in line]
    assert len(albrecht) == len(zimmermann) == 12, lines
    assert max(albrecht) < min(zimmermann)  # the left column first, then the right
    assert result.page_layout is not None and len(result.page_layout["text_columns"]) == 2
    for line in result.lines or ():
        assert line.bbox is not None
        if "Zimmermann" in line.text:
            assert line.bbox[0] >= 1000  # boxes are in the page's own pixels


@pytest.mark.parametrize("turned", [90, 180, 270])
def test_a_page_lying_sideways_or_upside_down_is_read_upright(tmp_path, turned):
    from PIL import Image

    lines = [f"Foerster, Christian {n}, Fabrikmeister, Grosskoelnstrasse A {n}." for n in range(14)]
    upright = render_page(tmp_path / "upright.png", lines)
    with Image.open(upright) as image:
        image.rotate(turned, expand=True).save(tmp_path / "turned.png", dpi=(300, 300))
        turned_size = image.rotate(turned, expand=True).size
    result = recognise(tmp_path / "turned.png", orientation=True)
    assert result.page_layout is not None and result.page_layout["rotate"] == turned
    assert result.text == recognise(upright).text
    for line in result.lines or ():
        x0, y0, x1, y1 = line.bbox or (0, 0, 0, 0)
        assert 0 <= x0 < x1 <= turned_size[0] and 0 <= y0 < y1 <= turned_size[1]
    # The first printed line is at the top of the upright page: on the stored image that is the
    # left edge (turned 90° counter-clockwise), the bottom (180°) or the right edge (270°).
    x0, y0, x1, y1 = (result.lines or ())[0].bbox or (0, 0, 0, 0)
    width, height = turned_size
    where = {90: x1 < width / 4, 180: y0 > 3 * height / 4, 270: x0 > 3 * width / 4}
    assert where[turned], (turned, (x0, y0, x1, y1), turned_size)


def test_the_orientation_check_is_off_unless_asked_for(tmp_path):
    from PIL import Image

    lines = [f"Foerster, Christian {n}, Fabrikmeister, Grosskoelnstrasse A {n}." for n in range(14)]
    with Image.open(render_page(tmp_path / "upright.png", lines)) as image:
        image.rotate(180).save(tmp_path / "turned.png", dpi=(300, 300))
    assert recognise(tmp_path / "turned.png").page_layout["rotate"] == 0
