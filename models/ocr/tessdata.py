"""Where Tesseract's models are: the ones shipped with histocr, a folder an administrator
names, and the system's; one `--tessdata-dir` that holds every model a run asks for."""

import hashlib
import re
import subprocess
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from models.ocr.tesseract_tsv import SHIPPED_TESSDATA

_LISTED_IN = re.compile(r'"([^"]+)"')


@lru_cache(maxsize=8)
def system_tessdata(binary: str) -> Path | None:
    """The folder the installed Tesseract reads its models from (None when it cannot say)."""
    try:
        out = subprocess.run(
            [binary, "--list-langs"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (out.stdout or out.stderr).splitlines()[:1]
    found = _LISTED_IN.search(first[0]) if first else None
    return Path(found.group(1)) if found else None


def search_path(configured: str | None, binary: str) -> list[Path]:
    """Where models are looked for, first match wins: the configured folder, the shipped
    models, the system's."""
    folders = [Path(configured)] if configured else []
    folders.append(SHIPPED_TESSDATA)
    system = system_tessdata(binary)
    if system is not None:
        folders.append(system)
    return [folder for folder in folders if folder.is_dir()]


def available_models(folders: Sequence[Path]) -> list[str]:
    """Every model name found in the folders."""
    return sorted(
        {p.name.removesuffix(".traineddata") for f in folders for p in f.glob("*.traineddata")}
    )


def model_file(language: str, folders: Sequence[Path]) -> Path | None:
    """The first `<language>.traineddata` on the search path."""
    for folder in folders:
        candidate = folder / f"{language}.traineddata"
        if candidate.is_file():
            return candidate
    return None


def tessdata_for(languages: str, folders: Sequence[Path]) -> Path:
    """One folder holding every model of `languages` (`frak2021+deu`): the folder they are in
    when it is one, else a folder of links to them (Tesseract takes a single folder)."""
    files = [model_file(language, folders) for language in languages.split("+")]
    missing = [lang for lang, f in zip(languages.split("+"), files, strict=True) if f is None]
    if missing:
        raise FileNotFoundError(", ".join(missing))
    parents = {f.parent for f in files if f is not None}
    if len(parents) == 1:
        return parents.pop()
    key = hashlib.sha256("\n".join(str(f) for f in files).encode()).hexdigest()[:16]
    merged = Path(tempfile.gettempdir()) / f"histocr-tessdata-{key}"
    merged.mkdir(exist_ok=True)
    for file in files:
        assert file is not None
        link = merged / file.name
        if not link.exists():
            try:
                link.symlink_to(file)
            except FileExistsError:  # another worker process made it first
                pass
    return merged
