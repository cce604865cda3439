"""Text made elsewhere (Transkribus, ALTO, plain text) attached to a scan for `import`."""

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from app.config import Settings
from app.db.tables import Document
from app.errors import InvalidRequest, InvalidUpload, UploadTooLarge
from app.schemas.text import display_filename
from app.storage import LocalStorage

#: Longest name, in UTF-8 bytes, a page file gets on disk (file systems allow 255 bytes; a
#: display name of 200 characters can be 800).
MAX_NAME_BYTES = 200
#: What the folder of uploaded page files is called in the importer's messages.
UPLOAD_FOLDER = "imported-text"


def imported_pages(storage: LocalStorage, key: str | None) -> list[str] | None:
    """The page texts stored under `key` (None when the document has no imported text)."""
    if key is None:
        return None
    pages = json.loads(storage.read_bytes(key).decode("utf-8"))
    return [str(page) for page in pages]


def attach_imported_text(
    *, session: Session, storage: LocalStorage, document: Document, pages: list[str]
) -> None:
    """Keep one text per page of the scan; the OCR stage reads it when it runs (import)."""
    if document.page_count is not None and len(pages) != document.page_count:
        raise InvalidRequest(
            f"{document.filename} has {document.page_count} page(s) but the imported text has "
            f"{len(pages)}"
        )
    blob = storage.put_bytes(json.dumps(pages, ensure_ascii=False).encode("utf-8"), ".json")
    document.imported_text_key = blob.key
    session.flush()


def page_file_name(raw: str | None, number: int) -> str:
    """The name an uploaded transcription file is written under: its display name (last path
    part, no control characters; `page-<number>.txt` for `..` and the like), cut to
    MAX_NAME_BYTES with its extension kept. The importer reads page numbers from these names."""
    name = display_filename(raw, f"page-{number}.txt")
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    stem, dot, extension = name.rpartition(".")
    keep = f".{extension}" if dot and 0 < len(extension.encode()) <= 10 else ""
    base = (stem if keep else name).encode()[: MAX_NAME_BYTES - len(keep.encode())]
    return base.decode(errors="ignore") + keep


def read_uploaded_pages(
    *,
    uploads: Sequence[tuple[str | None, BinaryIO]],
    page_count: int | None,
    settings: Settings,
    work_dir: Path,
) -> list[str]:
    """The page texts of uploaded transcriptions: one file for the document, or one a page.

    The files are written into a temporary folder under `work_dir`, by the names of
    `page_file_name` (which never leave that folder), for the importer to read and order.
    """
    from models.importers import ImportFormatError, import_pages

    if not uploads:
        raise InvalidUpload("no files in the upload")
    if not page_count:
        raise InvalidRequest("the document has no pages to attach text to")
    limit = settings.max_upload_bytes
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".import-") as temporary:
        folder = Path(temporary) / UPLOAD_FOLDER
        folder.mkdir()
        names: list[str] = []
        for number, (raw, stream) in enumerate(uploads, start=1):
            name = page_file_name(raw, number)
            if name in names:
                raise InvalidUpload(
                    f"two files are named {name!r}; give each page file its own name"
                )
            data = stream.read(limit + 1)
            if len(data) > limit:
                raise UploadTooLarge(
                    f"{name}: larger than the upload limit of {settings.max_upload_mb:g} MB"
                )
            target = folder / name
            if target.parent != folder:  # cannot happen after display_filename: the guarantee
                raise InvalidUpload(f"{name}: not a file name")
            target.write_bytes(data)
            names.append(name)
        try:
            return import_pages(folder if len(names) > 1 else folder / names[0], page_count)
        except ImportFormatError as exc:
            raise InvalidUpload(str(exc)) from exc
