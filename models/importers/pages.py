"""Put imported transcriptions on a scan's pages: one file, a folder of page files, a mapping."""

import re
from collections.abc import Mapping
from pathlib import Path

from models.importers.errors import ImportFormatError
from models.importers.files import read_transcription
from models.importers.page_breaks import split_document_text

PAGE_FILE_SUFFIXES = {".txt", ".xml"}
# Transkribus export folders hold these beside the page files; they are not pages.
_NOT_PAGE_FILES = {"mets.xml", "metadata.xml", "doc.xml"}
_EXPORT_SUBFOLDERS = ("page", "alto")  # where a Transkribus export keeps PAGE XML and ALTO
_DIGITS = re.compile(r"(\d+)")
_SHOWN = 10  # at most this many page numbers or names in one message


def import_pages(
    path: Path, page_count: int, mapping: Mapping[int, str | Path] | None = None
) -> list[str]:
    """One text per page of a `page_count`-page scan, from a file or a folder of page files.

    `mapping` (page number → file, relative to `path`, or to its folder when `path` is a file)
    names each page's file explicitly instead.
    """
    if page_count < 1:
        raise ValueError("page_count must be at least 1")
    path = Path(path)
    if mapping is not None:
        return _mapped_pages(path if path.is_dir() else path.parent, page_count, mapping)
    if path.is_dir():
        return _folder_pages(path, page_count)
    if path.is_file():
        return _file_pages(path, page_count)
    raise ImportFormatError(f"{path}: no such file or folder")


def _file_pages(path: Path, page_count: int) -> list[str]:
    transcription = read_transcription(path.read_bytes(), path.name)
    if len(transcription.pages) == page_count:
        return transcription.pages
    if not transcription.explicit_pages:
        return split_document_text(transcription.pages[0], page_count, path.name)
    unit = "form-feed-separated pages" if transcription.format == "text" else "Page elements"
    raise ImportFormatError(
        f"{path.name}: holds {len(transcription.pages)} {unit} but the scan has {page_count} "
        "pages; give one file per page in a folder (page-1.xml, page-2.xml, …) or a mapping"
    )


def _one_page(path: Path, source: str) -> str:
    transcription = read_transcription(path.read_bytes(), source)
    if len(transcription.pages) != 1:
        raise ImportFormatError(
            f"{source}: holds {len(transcription.pages)} pages, but a page file must hold one"
        )
    return transcription.pages[0]


def _folder_pages(folder: Path, page_count: int) -> list[str]:
    files = page_files(folder)
    if not files:
        for name in _EXPORT_SUBFOLDERS:
            if (folder / name).is_dir() and page_files(folder / name):
                return _folder_pages(folder / name, page_count)
        raise ImportFormatError(
            f"{folder.name}: no transcription files in this folder "
            f"(expected {', '.join(sorted(PAGE_FILE_SUFFIXES))} files such as page-1.txt)"
        )
    _check_page_numbers(folder, files, page_count)
    return [_one_page(file, f"{folder.name}/{file.name}") for file in files]


def page_files(folder: Path) -> list[Path]:
    """A folder's page files in page order, hidden files left out.

    Ordered by the number in their names (`page-2` before `page-10`, `p3.alto.xml` after
    `page-2.xml`), or naturally by name when the names carry no common page number.
    """
    files = [
        child
        for child in folder.iterdir()
        if not child.name.startswith(".")
        and child.suffix.lower() in PAGE_FILE_SUFFIXES
        and child.name.lower() not in _NOT_PAGE_FILES
        and child.is_file()
    ]
    files.sort(key=lambda file: _natural_key(file.name))
    numbers = _file_numbers(files)
    if numbers is None:
        return files
    return [file for _, file in sorted(zip(numbers, files, strict=True), key=lambda p: p[0])]


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part.casefold())
        for part in _DIGITS.split(name)
        if part
    )


def _file_numbers(files: list[Path]) -> list[int] | None:
    """Each file's page number: the number in the names that changes from file to file."""
    found = [[int(n) for n in _DIGITS.findall(file.name.split(".")[0])] for file in files]
    if not found or any(len(numbers) != len(found[0]) or not numbers for numbers in found):
        return None
    varying = [i for i in range(len(found[0])) if len({numbers[i] for numbers in found}) > 1]
    position = varying[-1] if varying else len(found[0]) - 1
    return [numbers[position] for numbers in found]


def _check_page_numbers(folder: Path, files: list[Path], page_count: int) -> None:
    """The files must be the scan's pages, each once; say which pages are missing or extra."""
    numbers = _file_numbers(files)
    names = [file.name for file in files]
    if numbers is not None:
        doubled = sorted({n for n in numbers if numbers.count(n) > 1})
        if doubled:
            clash = [name for name, n in zip(names, numbers, strict=True) if n in doubled]
            raise ImportFormatError(
                f"{folder.name}: more than one file for the same page: {_listed(clash)}"
            )
    if numbers is not None and min(numbers) in (0, 1):
        offset = 1 - min(numbers)  # page-0 … files count from zero
        pages = [n + offset for n in numbers]
        missing = sorted(set(range(1, page_count + 1)) - set(pages))
        extra = [name for name, page in zip(names, pages, strict=True) if page > page_count]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"no file for page {_listed(missing)}")
            if extra:
                problems.append(f"{_listed(extra)} beyond the scan's last page")
            raise ImportFormatError(
                f"{folder.name}: {len(files)} page files for a scan of {page_count} pages: "
                + "; ".join(problems)
            )
        return
    if len(files) != page_count:
        raise ImportFormatError(
            f"{folder.name}: {len(files)} page files for a scan of {page_count} pages "
            f"({_listed(names)}); give exactly one file per page"
        )
    if numbers is not None and sorted(numbers) != list(range(min(numbers), max(numbers) + 1)):
        raise ImportFormatError(
            f"{folder.name}: the page files' numbers have gaps ({_listed(names)}); "
            "give exactly one file per page"
        )


def _listed(items: list[int] | list[str]) -> str:
    shown = ", ".join(str(item) for item in items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _mapped_pages(base: Path, page_count: int, mapping: Mapping[int, str | Path]) -> list[str]:
    pages = set(range(1, page_count + 1))
    missing = sorted(pages - set(mapping))
    extra = sorted(set(mapping) - pages, key=str)
    if missing or extra:
        problems = [f"no file for page {_listed(missing)}"] if missing else []
        problems += [f"page {_listed(list(map(str, extra)))} is not in the scan"] if extra else []
        raise ImportFormatError(
            f"page mapping for a scan of {page_count} pages: " + "; ".join(problems)
        )
    root = base.resolve()
    texts = []
    for page in range(1, page_count + 1):
        file = (base / mapping[page]).resolve()
        if not file.is_relative_to(root):
            raise ImportFormatError(f"page {page}: {mapping[page]} lies outside {base}")
        if not file.is_file():
            raise ImportFormatError(f"page {page}: {mapping[page]} is not a file in {base}")
        texts.append(_one_page(file, str(mapping[page])))
    return texts
