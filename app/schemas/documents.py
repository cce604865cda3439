"""Documents, pages and ground truth."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class DocumentPublic(BaseModel):
    """An uploaded document."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    filename: str
    media_type: str
    sha256: str
    size_bytes: int
    status: str
    error: str | None
    page_count: int | None
    pages_ingested: int = 0
    has_ground_truth_text: bool = False
    has_ground_truth_records: bool = False
    created_at: datetime


class UploadedDocument(DocumentPublic):
    """A document in an upload's answer; `duplicate` when the same bytes were there already."""

    duplicate: bool = False


class UploadResult(BaseModel):
    """What an upload stored."""

    documents: list[UploadedDocument]
    run_id: int | None = None


class PagePublic(BaseModel):
    """A page image of a document."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    document_id: int
    number: int
    width: int
    height: int
    dpi: int | None
    image_url: str | None
    preview_url: str | None


class DocumentDetail(DocumentPublic):
    """A document with its pages."""

    pages: list[PagePublic]


class GroundTruthPublic(BaseModel):
    """A version of attached ground truth (its content is not included)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    document_id: int
    page_id: int | None
    kind: str
    filename: str
    characters: int
    #: 1, 2, … per (document, page, kind); the highest is the current one.
    version: int
    #: Who uploaded it (`local` in single-user mode and from the command line).
    author: str
    #: Whether this is the current version (runs are scored against the current one).
    current: bool = True
    created_at: datetime
