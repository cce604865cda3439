"""Find the page breaks of a document-level transcription that has no form feeds.

City directories print a running header on every page: a page number, often with a title
(`Alphabetisches Verzeichnis der Bewohner. 37`, `88 Kirchen und Schulen.`) or catchwords
(`Friedberg — Fries 95`). Three independent signals are read:

1. page numbers that run consecutively through the text, one per page (the first page may
   lack its number), each page of a plausible length;
2. a line repeated once per page at the same place (a running title, or a footer such as a
   digitiser's watermark line);
3. blank lines, when there are exactly as many blank-line gaps as page breaks (Transkribus's
   document-level text export puts one between pages).

A signal either finds exactly one set of breaks or none. If the signals that found breaks
agree, the text is cut there; if none did, or they disagree, the caller gets an error that
asks for per-page files or form feeds: a wrong guess would silently misalign text and scans.
"""

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz
from rapidfuzz.process import extract

from models.importers.errors import ImportFormatError

_BARE_NUMBER = re.compile(r"^[\[(—–-]?\s*(\d{1,4})\s*[\])—–-]?$")
_NUMBER_FIRST = re.compile(r"^(\d{1,4})\s+(\D+)$")
_NUMBER_LAST = re.compile(r"^(\D+?)\s+(\d{1,4})$")
_CATCHWORDS = re.compile(r"^[^\W\d_][\w.]*(?:\s[\w.]+)?\s*[—–-]\s*[^\W\d_][\w.]*(?:\s[\w.]+)?$")
_NOT_PAGE_NUMBER = {"nr", "no", "nro", "num", "n", "hausnr", "haus", "nummer"}
_MIN_PAGE_SHARE = 0.3  # no page is shorter than this share of the average page (the last may be)
_REPEATED_LINE_PAGE_SHARE = 0.5  # the same, for the weaker evidence of a repeated line
_WORD_BROKEN = ("-", "=", "¬", "⸗", "\u2010", "\u00ad")  # a line ending so continues on the next
_TOP_SHARE = 0.5  # the first page's number sits in the upper half of the first page
_HEADER_LINES = 2  # a running title sits at most this many lines above a bare page number
_SIMILAR = 85.0  # rapidfuzz ratio at which two header/footer lines count as the same line

Breaks = tuple[int, ...]  # positions (in non-blank lines) where pages 2..N start


@dataclass(frozen=True)
class _Layout:
    """The text's non-blank lines and the sizes that bound a plausible page."""

    lines: list[str]  # non-blank lines, stripped
    numbers: list[int]  # their indices in the original text
    page_count: int

    @property
    def min_page(self) -> int:
        return self.shortest(_MIN_PAGE_SHARE)

    def shortest(self, share: float) -> int:
        """The fewest lines a page (but the last) may have: `share` of the average page."""
        return max(2, int(share * len(self.lines) / self.page_count))

    @property
    def top(self) -> int:
        return max(5, int(_TOP_SHARE * len(self.lines) / self.page_count))

    def plausible(self, breaks: Breaks, share: float = _MIN_PAGE_SHARE) -> bool:
        """Strictly increasing, every page but the last at least `shortest(share)` lines long."""
        starts = (0, *breaks)
        if len(breaks) != self.page_count - 1 or starts[-1] >= len(self.lines):
            return False
        shortest = self.shortest(share)
        return all(b - a >= shortest for a, b in zip(starts, starts[1:], strict=False))


def split_document_text(text: str, page_count: int, source: str = "text") -> list[str]:
    """Cut a document-level text into `page_count` page texts, or explain why it cannot."""
    all_lines = text.split("\n")
    numbers = [i for i, line in enumerate(all_lines) if line.strip()]
    layout = _Layout([all_lines[i].strip() for i in numbers], numbers, page_count)
    if page_count == 1:
        return ["\n".join(all_lines[numbers[0] : numbers[-1] + 1])] if numbers else [""]
    if len(layout.lines) < 2 * page_count:
        raise ImportFormatError(
            f"{source}: {len(layout.lines)} lines of text cannot be {page_count} pages; {_ADVICE}"
        )
    finders: Sequence[tuple[str, Callable[[_Layout], Breaks | str]]] = (
        ("page numbers", _breaks_from_page_numbers),
        ("a repeated header or footer line", _breaks_from_repeated_lines),
        ("blank lines", _breaks_from_blank_lines),
    )
    found: dict[str, Breaks] = {}
    reasons: list[str] = []
    for name, finder in finders:
        result = finder(layout)
        if isinstance(result, str):
            reasons.append(result)
        else:
            found[name] = result
    if len(set(found.values())) == 1:
        breaks = next(iter(found.values()))
        starts = [0, *(numbers[b] for b in breaks), len(all_lines)]
        return [
            trim_blank_lines("\n".join(all_lines[a:b]))
            for a, b in zip(starts, starts[1:], strict=False)
        ]
    if found:
        opinions = "; ".join(
            f"{name} put pages 2–{page_count} at lines "
            + ", ".join(str(numbers[b] + 1) for b in breaks)
            for name, breaks in found.items()
        )
        raise ImportFormatError(f"{source}: the page breaks are uncertain ({opinions}); {_ADVICE}")
    raise ImportFormatError(
        f"{source}: {page_count} pages expected but the text has no form feeds and its page "
        f"breaks cannot be found with confidence ({'; '.join(reasons)}); {_ADVICE}"
    )


_ADVICE = (
    "give one file per page (a folder of page-1.txt, page-2.txt, …) or separate the pages "
    "with form feeds (\\f)"
)


def trim_blank_lines(text: str) -> str:
    """Drop blank lines at both ends of a page."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    return "\n".join(lines[start:])


# --- 1. page numbers -----------------------------------------------------------------------


def _title_like(text: str) -> bool:
    """Short, with letters, no digits and no comma: a running title, not a directory entry."""
    words = text.split()
    return (
        0 < len(words) <= 8
        and len(text) <= 60
        and any(c.isalpha() for c in text)
        and not any(c.isdigit() or c == "," for c in text)
    )


def _page_number(line: str) -> int | None:
    """The page number a header line carries, if it looks like one."""
    match = _BARE_NUMBER.match(line)
    if match:
        return int(match.group(1)) or None
    match = _NUMBER_FIRST.match(line)
    if match and _title_like(match.group(2)):
        return int(match.group(1)) or None
    match = _NUMBER_LAST.match(line)
    if match and _title_like(match.group(1)):
        if match.group(1).split()[-1].strip(".:").casefold() in _NOT_PAGE_NUMBER:
            return None  # `Nr. 12`: a house number
        return int(match.group(2)) or None
    return None


def _breaks_from_page_numbers(layout: _Layout) -> Breaks | str:
    positions: dict[int, list[int]] = {}
    for position, line in enumerate(layout.lines):
        value = _page_number(line)
        if value is not None:
            positions.setdefault(value, []).append(position)
    if not positions:
        return "no page numbers found"
    solutions: set[Breaks] = set()
    ambiguous = False
    for first in sorted(positions):
        for numbered_first_page in (True, False):
            chain = _unique_chain(layout, positions, first, numbered_first_page)
            if isinstance(chain, str):
                ambiguous = True
            elif chain is not None:
                breaks = chain[1:] if numbered_first_page else chain
                solutions.add(_with_titles(layout, chain, breaks))
    if len(solutions) == 1 and not ambiguous:
        return solutions.pop()
    if solutions or ambiguous:
        return "the page numbers allow more than one set of breaks"
    seen = ", ".join(str(v) for v in sorted(positions)[:12])
    return f"no run of consecutive page numbers, one per page (numbers seen: {seen})"


def _unique_chain(
    layout: _Layout, positions: dict[int, list[int]], first: int, numbered_first_page: bool
) -> Breaks | str | None:
    """Positions of the numbers first, first+1, … one per page, if exactly one chain fits.

    With a numbered first page, `first` sits in the top of page 1 and the later numbers start
    pages 2..N; otherwise `first` starts page 2 and page 1 has none (a `first - 1` above it would
    mean page 1 is numbered after all). Every valid chain lies between the earliest and the
    latest one, so the breaks are unique when those two coincide.
    """
    gap = layout.min_page
    count = layout.page_count if numbered_first_page else layout.page_count - 1
    values = [first + k for k in range(count)]
    if any(v not in positions for v in values):
        return None
    lowest = 0 if numbered_first_page else gap
    highest = layout.top if numbered_first_page else len(layout.lines) - 1
    earliest: list[int] = []
    for value in values:
        candidates = positions[value]
        i = bisect_left(candidates, earliest[-1] + gap if earliest else lowest)
        if i == len(candidates) or (not earliest and candidates[i] > highest):
            return None
        earliest.append(candidates[i])
    latest: list[int] = []
    for value in reversed(values):
        ceiling = latest[-1] - gap if latest else len(layout.lines) - 1
        candidates = positions[value]
        i = bisect_right(candidates, min(ceiling, highest) if value == first else ceiling) - 1
        if i < 0:
            return None
        latest.append(candidates[i])
    latest.reverse()
    if not numbered_first_page and any(p < latest[0] for p in positions.get(first - 1, [])):
        return None
    skip = 1 if numbered_first_page else 0
    first_fit, last_fit = tuple(earliest[skip:]), tuple(latest[skip:])
    if not (layout.plausible(first_fit) or layout.plausible(last_fit)):
        return None
    return tuple(earliest) if first_fit == last_fit else "ambiguous"


def _with_titles(layout: _Layout, chain: Breaks, breaks: Breaks) -> Breaks:
    """Move a break up where the number's running title (or catchwords) sits above it.

    Only a bare number moves, by up to two short lines, and only when the topmost of them is a
    running title: like a title printed beside another page's number (`Kirchen und Schulen.`
    above 89 and below 88), or `Word — Word` catchwords of dictionary-style headers. The line
    between may be a repeated section heading (`Kirchen und Schulen.` / `Priester.` / `89`).
    """
    titles: list[tuple[int, str]] = []  # (the page number's position, a title beside it)
    for position in chain:
        match = _NUMBER_FIRST.match(layout.lines[position]) or _NUMBER_LAST.match(
            layout.lines[position]
        )
        if match:
            titles.append((position, match.group(2 if match.re is _NUMBER_FIRST else 1)))
        for near in (position - 1, position + 1):
            if 0 <= near < len(layout.lines) and _title_like(layout.lines[near]):
                titles.append((position, layout.lines[near]))

    def running(position: int, line: str) -> bool:
        return _CATCHWORDS.match(line) is not None or any(
            fuzz.ratio(_letters(line), _letters(title)) >= _SIMILAR
            for owner, title in titles
            if owner != position
        )

    moved: list[int] = []
    for position in breaks:
        start = position
        if _BARE_NUMBER.match(layout.lines[position]):
            page_top = (moved[-1] if moved else 0) + 1  # never empty the page above
            for up in range(1, min(_HEADER_LINES, position - page_top) + 1):
                line = layout.lines[position - up]
                if not _title_like(line):
                    break
                if running(position, line):
                    start = position - up
        moved.append(start)
    return tuple(moved)


def _letters(text: str) -> str:
    return "".join(c for c in text.casefold() if c.isalpha() or c == " ").strip()


# --- 2. a repeated running header or footer ----------------------------------------------


def _breaks_from_repeated_lines(layout: _Layout) -> Breaks | str:
    """A line like the text's first (a running title) or its last (a footer), once per page."""
    keyed = {
        position: _letters(line)
        for position, line in enumerate(layout.lines)
        if _title_like(line)
        and sum(c.isalpha() for c in line) >= 8
        and not (position and layout.lines[position - 1].endswith(_WORD_BROKEN))
    }
    last = len(layout.lines) - 1
    anchors = [0, 1] if _page_number(layout.lines[0]) else [0]
    solutions: set[Breaks] = set()
    for anchor in [*anchors, last]:
        if anchor not in keyed:
            continue
        found = extract(keyed[anchor], keyed, scorer=fuzz.ratio, score_cutoff=_SIMILAR, limit=None)
        members = sorted(position for _, _, position in found)
        if len(members) != layout.page_count:
            continue
        if anchor == last:  # a footer ends every page
            breaks = tuple(p + 1 for p in members[:-1])
        elif members[0] == anchor:  # a running title starts every page, below its number if any
            breaks = tuple(_above_number(layout, p) for p in members[1:])
        else:
            continue
        if layout.plausible(breaks, _REPEATED_LINE_PAGE_SHARE):
            solutions.add(breaks)
    if len(solutions) == 1:
        return solutions.pop()
    if solutions:
        return "a running title and a footer disagree"
    return "no line repeats once per page at its top or bottom"


def _above_number(layout: _Layout, position: int) -> int:
    """A running title's page starts at the page number printed just above it, if any."""
    above = position - 1
    if above >= 0 and _page_number(layout.lines[above]) is not None:
        return above
    return position


# --- 3. blank lines ----------------------------------------------------------------------


def _breaks_from_blank_lines(layout: _Layout) -> Breaks | str:
    breaks = tuple(
        position
        for position in range(1, len(layout.lines))
        if layout.numbers[position] - layout.numbers[position - 1] > 1
    )
    if len(breaks) != layout.page_count - 1:
        return f"{len(breaks)} blank-line gaps for {layout.page_count - 1} page breaks"
    if not layout.plausible(breaks):
        return "the blank-line gaps make pages of implausible length"
    return breaks
