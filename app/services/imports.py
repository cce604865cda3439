"""Text made elsewhere (Transkribus, ALTO, plain text) attached to a scan for `import`."""

import json

from sqlalchemy.orm import Session

from app.db.tables import Document
from app.errors import InvalidRequest
from app.storage import LocalStorage


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
