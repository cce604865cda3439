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


def _not_blank(value: str) -> str:
    if not value:
        raise ValueError("must not be blank")
    return value


# The checks above, as JSON Schema patterns for the OpenAPI document (validation stays with the
# functions, whose messages say what is wrong): clients and API fuzzers see what is accepted.
_CONTROL = r"\u0000-\u001f\u007f-\u009f"
_ONE_LINE = rf"^[^{_CONTROL}]*$"
_TEXT = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
_ONE_LINE_NOT_BLANK = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"

#: A project's or a run's name.
Name = Annotated[
    str,
    Field(max_length=200, json_schema_extra={"pattern": _ONE_LINE}),
    AfterValidator(_no_control_characters),
    AfterValidator(_single_line),
]
#: Free text such as a description.
Description = Annotated[
    str,
    Field(max_length=10_000, json_schema_extra={"pattern": _TEXT}),
    AfterValidator(_no_control_characters),
]
#: A name that must say something (a project's).
RequiredName = Annotated[
    Name,
    Field(json_schema_extra={"pattern": _ONE_LINE_NOT_BLANK}),
    AfterValidator(_not_blank),
]
#: A field of a project's record schema (a column of its CSV).
FieldName = Annotated[
    str,
    Field(min_length=1, max_length=100, json_schema_extra={"pattern": _ONE_LINE_NOT_BLANK}),
    AfterValidator(_no_control_characters),
    AfterValidator(_single_line),
    AfterValidator(_not_blank),
]


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
