"""Text a client names things with: checked at the edge, the same on SQLite and PostgreSQL."""

import unicodedata
from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator, Field

#: Longest display name of an uploaded file (the columns hold 500; names stay readable).
MAX_FILENAME = 200


def _no_control_characters(value: str) -> str:
    """Refuse NUL and other control characters (PostgreSQL cannot store NUL in text)."""
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in value):
        raise ValueError("must not contain control characters (such as NUL)")
    return value


def _single_line(value: str) -> str:
    if any(c in value for c in "\t\n\r"):
        raise ValueError("must be one line")
    return value.strip()


#: A project's or a run's name.
Name = Annotated[
    str, Field(max_length=200), AfterValidator(_no_control_characters), AfterValidator(_single_line)
]
#: Free text such as a description.
Description = Annotated[str, Field(max_length=10_000), AfterValidator(_no_control_characters)]


def display_filename(raw: str | None, fallback: str) -> str:
    """The name a client gave a file, as shown and stored: its last path part, without control
    and direction-override characters (which can disguise `txt.exe` as `exe.txt`), at most
    MAX_FILENAME characters with the extension kept; `fallback` when nothing is left."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf")).strip()
    if name in ("", ".", ".."):
        return fallback
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        keep = extension if dot and 0 < len(extension) <= 10 else ""
        name = name[: MAX_FILENAME - len(keep) - 1] + "." + keep if keep else name[:MAX_FILENAME]
    return name
