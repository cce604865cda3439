"""The bodies of error answers: always `{"detail": ...}`, so a client reads one key.

`detail` is one sentence for every error the service explains itself (404, 409, 413, 503 and
the 422s that need the database or a file's content to decide). Only a request that fails its
declared shape (a missing field, a number out of range) gets FastAPI's list of problems, each
with where it is (`loc`) and what is wrong (`msg`); that is why a 422's `detail` is either.
"""

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """An error the service explains in one sentence a person can act on."""

    detail: str = Field(
        description="what went wrong, for a person to read",
        examples=["project 7 not found"],
    )


class ValidationIssue(BaseModel):
    """One problem with a request's shape, as FastAPI (pydantic) reports it."""

    type: str = Field(description="a machine-readable kind, e.g. `missing`, `int_parsing`")
    loc: list[str | int] = Field(description="where: `body`, `query` or `path`, then the field")
    msg: str = Field(description="what is wrong, for a person to read")
    input: Any = Field(default=None, description="the value that was refused")
    ctx: dict[str, Any] | None = Field(default=None, description="the limit that was broken")


class ValidationErrorBody(BaseModel):
    """A request the service cannot act on: its shape is wrong (a list of problems) or its
    content is (one sentence: an unknown engine, a corrupt scan, an empty CSV)."""

    detail: str | list[ValidationIssue] = Field(
        description="one sentence, or a list of problems with the request's shape",
        examples=["files: not a PDF, PNG, JPEG or TIFF file (judged by its content, not its name)"],
    )
