"""Page-image preparation for Tesseract: find the printed page, deskew, normalise, rescale.

Pure functions on images (Pillow and numpy). Every step can be switched off and returns what it
did, in original page-image pixels, so a run can record it and map OCR boxes back
(`PreparedPage.to_original`). Thresholds are stated as properties of a scanned page: fractions
of the page, multiples of the text's line pitch, or histogram splits (Otsu), never pixel counts
of one scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFilter

from models.ocr.imageops import (
    grey_closing,
    line_pitch,
    remove_long_vertical_runs,
    runs,
    sauvola_ink,
    smooth,
    to_grey_array,
)

#: (left, top, right, bottom) in pixels, right and bottom exclusive.
Box = tuple[int, int, int, int]

#: Pages are analysed at this width: enough to resolve text lines (a line pitch of 10+ px
#: on a directory page), small enough that every profile and rotation is cheap.
_ANALYSIS_WIDTH = 1000


@dataclass(frozen=True)
class PrepOptions:
    """Which preparation steps run and their targets."""

    crop: bool = True
    deskew: bool = True
    #: "none": the grey page as it is; "normalise": flatten the paper's shading and stretch the
    #: contrast; "binarise": normalise, then Sauvola thresholding to black and white.
    contrast: str = "normalise"
    #: Enlarge pages whose line pitch is below this many pixels. Tesseract wants an x-height
    #: of at least ~20 px; Fraktur's line pitch is about 2.4 x-heights, so 48 px. Pages
    #: already above it are left alone: enlarging type-1 (pitch 55 px) to 64 px made Tesseract
    #: drop initial capitals (12.4 % instead of 2.7 % CER). 0 turns rescaling off.
    target_line_pitch: int = 48
    #: Only enlarge (scans too coarse); never shrink large scans unless this is False.
    upscale_only: bool = True
    max_skew_degrees: float = 5.0


@dataclass(frozen=True)
class PageCrop:
    """Where the page and its text block are in the original image."""

    paper: Box
    text_block: Box
    #: The text block plus a margin: what is kept.
    kept: Box
    #: Strips of text at the sides dropped as the facing page's spill.
    dropped_columns: tuple[tuple[int, int], ...] = ()
    #: The page's text columns (x from, x to) when it has more than one, left to right: each
    #: is read on its own, so the lines of two columns are not read across.
    text_columns: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class PreparedPage:
    """The image Tesseract should read and how its pixels relate to the original."""

    image: Image.Image
    original_size: tuple[int, int]
    crop: PageCrop | None
    #: Degrees the cropped page was rotated (counter-clockwise positive, as Pillow's rotate).
    angle: float
    scale: float
    contrast: str
    line_pitch: float
    steps: dict[str, object] = field(default_factory=dict)

    def to_original(self, box: Box) -> Box:
        """Map a box in the prepared image to original page-image pixels (bounding box)."""
        left, top, right, bottom = (value / self.scale for value in box)
        offset_x, offset_y = (self.crop.kept[0], self.crop.kept[1]) if self.crop else (0, 0)
        width, height = self.original_size
        points = [(left, top), (right, top), (left, bottom), (right, bottom)]
        mapped = [
            _unrotate(x + offset_x, y + offset_y, width, height, self.angle) for x, y in points
        ]
        xs = [x for x, _ in mapped]
        ys = [y for _, y in mapped]
        return (
            max(0, math.floor(min(xs))),
            max(0, math.floor(min(ys))),
            min(width, math.ceil(max(xs))),
            min(height, math.ceil(max(ys))),
        )


def _unrotate(x: float, y: float, width: int, height: int, angle: float) -> tuple[float, float]:
    # Pillow rotates counter-clockwise about the centre without expanding; undo that.
    cx, cy = width / 2, height / 2
    theta = math.radians(angle)
    dx, dy = x - cx, y - cy
    return (
        cx + dx * math.cos(theta) - dy * math.sin(theta),
        cy + dx * math.sin(theta) + dy * math.cos(theta),
    )


def prepare_page(image: Image.Image, options: PrepOptions = PrepOptions()) -> PreparedPage:
    """Run the switched-on steps in order: deskew, crop, rescale, contrast.

    Deskew comes first (on the whole image) so that the crop's column and row profiles see
    straight text; crop boxes are therefore in the deskewed image's pixels, and
    `PreparedPage.to_original` undoes both.
    """
    grey = image.convert("L")
    steps: dict[str, object] = {}
    angle = 0.0
    if options.deskew:
        angle = estimate_skew(grey, max_degrees=options.max_skew_degrees)
        if angle:
            grey = rotate_page(grey, angle)
        steps["deskew"] = {"angle": angle}
    crop = find_page_crop(grey) if options.crop else None
    if crop is not None:
        grey = grey.crop(crop.kept)
        steps["crop"] = {"paper": crop.paper, "text_block": crop.text_block, "kept": crop.kept}
    pitch = estimate_line_pitch(grey)
    scale = 1.0
    if options.target_line_pitch and pitch:
        scale = rescale_factor(pitch, options.target_line_pitch, upscale_only=options.upscale_only)
        if scale != 1.0:
            size = (round(grey.width * scale), round(grey.height * scale))
            grey = grey.resize(size, Image.Resampling.LANCZOS)
        steps["rescale"] = {"line_pitch": pitch, "scale": scale}
    if options.contrast == "normalise":
        grey = normalise_contrast(grey)
    elif options.contrast == "binarise":
        grey = binarise(normalise_contrast(grey), line_pitch=pitch * scale if pitch else 0)
    elif options.contrast != "none":
        raise ValueError(f"unknown contrast step {options.contrast!r} (none, normalise, binarise)")
    steps["contrast"] = options.contrast
    return PreparedPage(
        image=grey,
        original_size=image.size,
        crop=crop,
        angle=angle,
        scale=scale,
        contrast=options.contrast,
        line_pitch=pitch,
        steps=steps,
    )


def find_page_crop(grey: Image.Image) -> PageCrop:
    """The printed page's text block, without book edges, the gutter or the facing page.

    Expects a deskewed page; boxes are in its pixels.

    1. Paper: the widest run of columns (then rows) that are mostly not dark (`dark_mask`):
       dark book edges, the gutter's shadow and scanner bars fall outside.
    2. Text: within the paper, columns that carry ink (Sauvola, without vertical strokes
       taller than two line pitches: page edges) form runs; `_main_column_span` keeps this
       page's columns and drops the facing page's spill.
    3. The kept box is the text block plus one line pitch of margin, inside the paper.
    """
    small, factor = _analysis_copy(grey)
    dark = dark_mask(small)
    paper = _paper_box(dark)
    ink = sauvola_ink(small) & ~dark
    pl, pt, pr, pb = paper
    pitch = line_pitch(ink[pt:pb, pl:pr].sum(axis=1)) or max(8.0, small.shape[0] / 60)
    # No letter is taller than two line pitches; longer vertical strokes are page edges.
    ink = remove_long_vertical_runs(ink, round(2 * pitch))
    region = ink[pt:pb, pl:pr]
    columns = smooth(region.mean(axis=0), max(1, round(pitch / 4)))
    text_columns = _text_runs(columns, level_fraction=0.1)
    if not text_columns:
        box = _scale_box(paper, factor, grey.size)
        return PageCrop(paper=box, text_block=box, kept=box)
    first, last = _main_column_span(text_columns, pitch)
    column_spans = tuple(
        (round((a + pl) * factor), round((b + pl) * factor))
        for a, b in _split_columns(text_columns[first : last + 1], pitch)
    )
    dropped = tuple(
        (round((a + pl) * factor), round((b + pl) * factor))
        for a, b in text_columns[:first] + text_columns[last + 1 :]
    )
    left, right = text_columns[first][0] + pl, text_columns[last][1] + pl
    rows = smooth(ink[pt:pb, left:right].mean(axis=1), max(1, round(pitch / 4)))
    # Any row with more ink than specks: a lone page number or signature mark is text.
    row_runs = _text_runs(rows, level_fraction=0.01)
    top = (row_runs[0][0] if row_runs else 0) + pt
    bottom = (row_runs[-1][1] if row_runs else pb - pt) + pt
    block = (left, top, right, bottom)
    margin = round(pitch)
    kept = (
        max(pl, left - margin),
        max(pt, top - margin),
        min(pr, right + margin),
        min(pb, bottom + margin),
    )
    return PageCrop(
        paper=_scale_box(paper, factor, grey.size),
        text_block=_scale_box(block, factor, grey.size),
        kept=_scale_box(kept, factor, grey.size),
        dropped_columns=dropped,
        text_columns=column_spans if len(column_spans) > 1 else (),
    )


def _analysis_copy(grey: Image.Image) -> tuple[np.ndarray, float]:
    factor = max(1.0, grey.width / _ANALYSIS_WIDTH)
    size = (round(grey.width / factor), round(grey.height / factor))
    return to_grey_array(grey.resize(size, Image.Resampling.BOX)), factor


def _scale_box(box: Box, factor: float, size: tuple[int, int]) -> Box:
    left, top, right, bottom = box
    return (
        max(0, math.floor(left * factor)),
        max(0, math.floor(top * factor)),
        min(size[0], math.ceil(right * factor)),
        min(size[1], math.ceil(bottom * factor)),
    )


def dark_mask(small: np.ndarray) -> np.ndarray:
    """Pixels of dark regions wider than a letter's stroke: background, book edges, gutter.

    A grey closing (max then min filter over about a hundredth of the page width) erases
    text, whose strokes are thinner, and keeps dark areas. Dark means under 60 % of the
    paper's tone, the bright end of the page's central half (the centre of a photographed page
    is paper with text); shading of yellowed paper stays well above that.
    """
    height, width = small.shape
    size = max(3, (width // 150) | 1)
    closed = grey_closing(small, size).astype(np.float64)
    centre = closed[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4]
    paper_tone = float(np.percentile(centre, 90))
    return closed < 0.6 * paper_tone


def text_ink(small: np.ndarray) -> np.ndarray:
    """Ink (Sauvola) outside dark regions, whose edges would otherwise count as ink."""
    return sauvola_ink(small) & ~dark_mask(small)


def _paper_box(dark: np.ndarray) -> Box:
    """The page: the widest run of columns, then rows, that are mostly not dark."""
    height, width = dark.shape
    paper = ~dark
    column_runs = runs(paper.mean(axis=0) > 0.5)
    left, right = max(column_runs, key=lambda run: run[1] - run[0], default=(0, width))
    row_runs = runs(paper[:, left:right].mean(axis=1) > 0.5)
    top, bottom = max(row_runs, key=lambda run: run[1] - run[0], default=(0, height))
    return (left, top, right, bottom)


def _text_runs(profile: np.ndarray, level_fraction: float) -> list[tuple[int, int]]:
    """Runs where the ink profile exceeds a fraction of a busy line's (75th percentile)."""
    if profile.size == 0 or profile.max() <= 0:
        return []
    level = level_fraction * float(np.percentile(profile[profile > 0], 75))
    return [(a, b) for a, b in runs(profile > level) if b - a >= 2]


def _main_column_span(columns: list[tuple[int, int]], pitch: float) -> tuple[int, int]:
    """Indices of the first and last column run that belong to this page's text.

    The widest run is the main text column. A run at least 40 % as wide is a column of this
    page too (two-column pages), and everything between kept runs stays. A narrower run is
    only kept when less than half a line pitch (a word space) separates it from the kept
    text: the facing page's spill and curved page edges lie farther out, aligned bullets or
    ditto marks do not.
    """
    widths = [end - start for start, end in columns]
    main = widths.index(max(widths))
    wide = [i for i, width in enumerate(widths) if width >= 0.4 * widths[main]]
    first, last = min(wide), max(wide)
    while first > 0 and columns[first][0] - columns[first - 1][1] < 0.5 * pitch:
        first -= 1
    while last < len(columns) - 1 and columns[last + 1][0] - columns[last][1] < 0.5 * pitch:
        last += 1
    return first, last


def _split_columns(runs_kept: list[tuple[int, int]], pitch: float) -> list[tuple[int, int]]:
    """The kept ink runs grouped into text columns, left to right.

    Two groups are separate columns when a gap of more than 1.5 line pitches (wider than any
    word space) lies between them and both hold a run at least 40 % as wide as the widest: two
    columns of entries. A narrow group (house numbers or page references set apart, a table's
    column) stays with its neighbour, so a table row is still read as one line.
    """
    if not runs_kept:
        return []
    widest = max(end - start for start, end in runs_kept)
    groups: list[list[tuple[int, int]]] = [[runs_kept[0]]]
    for run in runs_kept[1:]:
        if run[0] - groups[-1][-1][1] > 1.5 * pitch:
            groups.append([run])
        else:
            groups[-1].append(run)

    def wide(group: list[tuple[int, int]]) -> bool:
        return any(end - start >= 0.4 * widest for start, end in group)

    merged: list[list[tuple[int, int]]] = []
    for group in groups:
        if merged and not (wide(group) and wide(merged[-1])):
            merged[-1].extend(group)
        else:
            merged.append(list(group))
    return [(group[0][0], group[-1][1]) for group in merged]


def estimate_skew(grey: Image.Image, max_degrees: float = 5.0) -> float:
    """The rotation (degrees, Pillow's sense) that makes text lines horizontal.

    Projection-profile method: rotate the ink and keep the angle whose row sums are most
    peaked (text lines and the gaps between them line up with pixel rows), first in half-degree
    steps, then in tenths around the best.
    """
    small, _ = _analysis_copy(grey)
    ink = Image.fromarray((text_ink(small) * 255).astype(np.uint8))

    def sharpness(angle: float) -> float:
        rotated = np.asarray(ink.rotate(angle, resample=Image.Resampling.NEAREST), dtype=np.float64)
        profile = rotated.sum(axis=1)
        return float(np.square(np.diff(profile)).sum())

    coarse = np.arange(-max_degrees, max_degrees + 1e-9, 0.5)
    best = max(coarse, key=sharpness)
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    angle = float(max(fine, key=sharpness))
    return round(angle, 2) if abs(angle) >= 0.05 else 0.0


def rotate_page(grey: Image.Image, angle: float) -> Image.Image:
    """Rotate about the centre, filling the uncovered corners with the paper's tone."""
    paper_tone = int(np.percentile(to_grey_array(grey)[::8, ::8], 90))
    return grey.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=paper_tone)


def estimate_line_pitch(grey: Image.Image) -> float:
    """Distance between text lines in pixels of `grey` (0.0 when no text is found)."""
    small, factor = _analysis_copy(grey)
    pitch = line_pitch(text_ink(small).sum(axis=1))
    return pitch * factor


def rescale_factor(pitch: float, target: float, *, upscale_only: bool = True) -> float:
    """Factor that brings the line pitch to the target (1.0 within 15 % of it)."""
    factor = target / pitch
    if upscale_only and factor < 1.0:
        return 1.0
    # Within 15 % Tesseract reads equally well; resampling would only blur.
    return 1.0 if abs(factor - 1.0) < 0.15 else round(factor, 3)


def normalise_contrast(grey: Image.Image) -> Image.Image:
    """Flatten the paper's shading (yellowing, a curved page's shadow), then stretch.

    The background is estimated as the brightest value over a window wider than a letter's
    stroke but narrower than shading changes (a fiftieth of the page), on a copy reduced 8x
    for speed; dividing by it makes the paper uniformly white while ink keeps its darkness.
    """
    array = to_grey_array(grey).astype(np.float64)
    reduced = grey.resize((max(1, grey.width // 8), max(1, grey.height // 8)), Image.Resampling.BOX)
    window = max(3, (min(reduced.size) // 50) | 1)
    background = reduced.filter(ImageFilter.MaxFilter(window)).filter(ImageFilter.BoxBlur(window))
    background_array = np.asarray(
        background.resize(grey.size, Image.Resampling.BILINEAR), dtype=np.float64
    )
    flat = np.clip(array / np.maximum(background_array, 1.0), 0.0, 1.0)
    # Stretch so the darkest 1 % of pixels (ink cores) are black and the paper white.
    low = float(np.percentile(flat[::4, ::4], 1))
    stretched = np.clip((flat - low) / max(1e-6, 1.0 - low), 0.0, 1.0)
    return Image.fromarray((stretched * 255).astype(np.uint8))


def binarise(grey: Image.Image, line_pitch: float = 0.0) -> Image.Image:
    """Black text on white by Sauvola's local threshold over about a line pitch."""
    window = max(15, round(line_pitch) | 1) if line_pitch else 0
    ink = sauvola_ink(to_grey_array(grey), window=window)
    return Image.fromarray(np.where(ink, 0, 255).astype(np.uint8))
