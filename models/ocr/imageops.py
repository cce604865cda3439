"""Small numpy image operations the page preparation is built from."""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Sauvola's sensitivity: how far below the local mean (relative to the local contrast) a pixel
#: must be to count as ink. 0.2-0.5 is the range the literature uses for print; 0.25 keeps the
#: thin hairlines of Fraktur.
_SAUVOLA_K = 0.25
_SAUVOLA_R = 128.0


def to_grey_array(image: Image.Image) -> np.ndarray:
    """An 8-bit grey numpy array of a Pillow image."""
    return np.asarray(image.convert("L"), dtype=np.uint8)


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's split of a grey histogram (the value that best separates two classes)."""
    histogram, edges = np.histogram(values.ravel(), bins=256, range=(0, 256))
    weights = histogram.astype(np.float64)
    total = weights.sum()
    if total == 0:
        return 128.0
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(weights)
    above = total - below
    mean_below = np.cumsum(weights * centres) / np.maximum(below, 1)
    mean_above = (np.sum(weights * centres) - np.cumsum(weights * centres)) / np.maximum(above, 1)
    between = below * above * (mean_below - mean_above) ** 2
    return float(centres[int(np.argmax(between))])


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a 1-D mask, end exclusive."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(changes[::2], changes[1::2], strict=True)]


def smooth(profile: np.ndarray, radius: int) -> np.ndarray:
    """Moving average over 2 * radius + 1 samples (same length)."""
    if radius < 1:
        return np.asarray(profile, dtype=np.float64)
    kernel = np.ones(2 * radius + 1) / (2 * radius + 1)
    return np.convolve(np.asarray(profile, dtype=np.float64), kernel, mode="same")


def _box_mean(array: np.ndarray, window: int) -> np.ndarray:
    """Mean over a window x window square around each pixel (integral image, edge-padded)."""
    half = window // 2
    padded = np.pad(array, half + 1, mode="edge")
    integral = padded.cumsum(axis=0).cumsum(axis=1)
    height, width = array.shape
    top, left = 0, 0
    bottom, right = top + window, left + window
    total = (
        integral[bottom : bottom + height, right : right + width]
        - integral[top : top + height, right : right + width]
        - integral[bottom : bottom + height, left : left + width]
        + integral[top : top + height, left : left + width]
    )
    return total / (window * window)


def sauvola_ink(grey: np.ndarray, window: int = 0) -> np.ndarray:
    """Boolean ink mask by Sauvola's local threshold.

    The default window is a fortieth of the image width: about one text line's pitch on a
    directory page, so the threshold follows shading but not the letters themselves.
    """
    array = np.asarray(grey, dtype=np.float64)
    if window < 3:
        window = max(15, (array.shape[1] // 40) | 1)
    mean = _box_mean(array, window)
    mean_sq = _box_mean(array * array, window)
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    threshold = mean * (1.0 + _SAUVOLA_K * (std / _SAUVOLA_R - 1.0))
    return array < threshold


def line_pitch(row_profile: np.ndarray) -> float:
    """The distance between text lines, from a row-ink profile of deskewed text (0 if none).

    Text lines are the runs of rows whose ink exceeds 15 % of a busy row's (the 90th
    percentile): interline gaps fall below that, a line's ascender zone does not. The pitch is
    the median distance between the starts of successive runs (headings and blank lines are
    the minority). Fewer than four lines: the first strong autocorrelation peak instead.
    """
    profile = smooth(np.asarray(row_profile, dtype=np.float64), 1)
    if profile.size < 16 or profile.max() <= 0:
        return 0.0
    level = 0.15 * float(np.percentile(profile[profile > 0], 90))
    lines = [(a, b) for a, b in runs(profile > level) if b - a >= 2]
    if len(lines) >= 4:
        return float(np.median(np.diff([a for a, _ in lines])))
    return _autocorrelation_pitch(profile)


def remove_long_vertical_runs(ink: np.ndarray, length: int) -> np.ndarray:
    """Ink without vertical strokes longer than `length` rows (page edges, rules, gutters)."""
    if length < 2 or ink.shape[0] <= length:
        return ink
    counts = np.concatenate([np.zeros((1, ink.shape[1])), ink.cumsum(axis=0)])
    full = (counts[length:] - counts[:-length]) == length  # window of `length` rows all ink
    # Dilate the windows back over the rows they cover.
    cover = np.concatenate([np.zeros((1, ink.shape[1])), full.cumsum(axis=0)])
    padded = np.concatenate([cover, np.repeat(cover[-1:], length, axis=0)])
    starts = np.maximum(np.arange(ink.shape[0]) - length + 1, 0)
    covered = (padded[np.arange(ink.shape[0]) + 1] - padded[starts]) > 0
    return ink & ~covered


def _autocorrelation_pitch(profile: np.ndarray) -> float:
    centred = profile - profile.mean()
    spectrum = np.fft.rfft(centred, n=2 * profile.size)
    correlation = np.fft.irfft(spectrum * np.conj(spectrum))[: profile.size]
    low, high = 4, profile.size // 4
    if high <= low + 2:
        return 0.0
    window = correlation[low:high]
    peaks = [
        i
        for i in range(1, window.size - 1)
        if window[i] >= window[i - 1] and window[i] > window[i + 1] and window[i] > 0
    ]
    if not peaks:
        return 0.0
    strongest = max(window[i] for i in peaks)
    first = next(i for i in peaks if window[i] >= 0.5 * strongest)
    return float(low + first)


def _sliding(array: np.ndarray, size: int, axis: int, reduce: np.ufunc) -> np.ndarray:
    half = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    padded = np.pad(array, pad, mode="edge")
    result = np.take(padded, range(0, array.shape[axis]), axis=axis)
    for shift in range(1, size):
        result = reduce(result, np.take(padded, range(shift, shift + array.shape[axis]), axis=axis))
    return result


def grey_closing(array: np.ndarray, size: int) -> np.ndarray:
    """Max then min filter over a size x size square (separable): erases dark detail thinner
    than `size`, keeps larger dark areas."""
    dilated = _sliding(_sliding(array, size, 0, np.maximum), size, 1, np.maximum)
    return _sliding(_sliding(dilated, size, 0, np.minimum), size, 1, np.minimum)
