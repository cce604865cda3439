"""Accepting uploads: check size and content, store them, then create document rows."""

import hashlib
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.tables import Document, DocumentStatus, Project
from app.errors import UploadTooLarge
from app.pipeline.media import MediaInfo, inspect_upload
from app.schemas.text import display_filename
from app.storage import LocalStorage, move_into_store

CHUNK = 1024 * 1024


@dataclass
class SpooledUpload:
    """An upload copied to a temp file, hashed and checked, not yet in the store."""

    filename: str
    path: Path
    sha256: str
    size: int
    info: MediaInfo


def spool_upload(
    *, stream: BinaryIO, filename: str, settings: Settings, tmp_dir: Path
) -> SpooledUpload:
    """Copy an upload to a temp file (enforcing the size limit), hash it and check its content."""
    limit = settings.max_upload_bytes
    digest = hashlib.sha256()
    size = 0
    tmp_dir.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=tmp_dir, prefix=".spool-", delete=False)
    path = Path(handle.name)
    try:
        with handle:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(
                        f"{filename}: larger than the upload limit of {settings.max_upload_mb:g} MB"
                    )
                digest.update(chunk)
                handle.write(chunk)
        info = inspect_upload(
            path,
            filename,
            settings.max_pages_per_document,
            settings.max_image_pixels,
            settings.render_dpi,
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return SpooledUpload(filename, path, digest.hexdigest(), size, info)


def discard(spooled: Iterable[SpooledUpload]) -> None:
    """Remove temp files of uploads that will not be stored."""
    for item in spooled:
        item.path.unlink(missing_ok=True)


def store_uploads(
    *, session: Session, storage: LocalStorage, project: Project, spooled: list[SpooledUpload]
) -> list[tuple[Document, bool]]:
    """Move checked uploads into the store; returns (document, created) — re-uploads are found."""
    stored = []
    for item in spooled:
        existing = session.scalar(
            select(Document).where(
                Document.project_id == project.id, Document.sha256 == item.sha256
            )
        )
        if existing is not None:
            item.path.unlink(missing_ok=True)
            stored.append((existing, False))
            continue
        blob = move_into_store(storage, item.path, item.sha256, item.info.extension)
        document = Document(
            project_id=project.id,
            filename=display_filename(item.filename, "upload"),
            media_type=item.info.media_type,
            sha256=item.sha256,
            size_bytes=item.size,
            storage_key=blob.key,
            status=DocumentStatus.UPLOADED,
            page_count=item.info.page_count,
        )
        session.add(document)
        session.flush()
        stored.append((document, True))
    return stored


def import_local_file(
    *, session: Session, storage: LocalStorage, settings: Settings, project: Project, path: Path
) -> tuple[Document, bool]:
    """Store a file from disk as a document of `project` (the CLI's way in)."""
    with path.open("rb") as stream:
        spooled = spool_upload(
            stream=stream, filename=path.name, settings=settings, tmp_dir=storage.root / "tmp"
        )
    return store_uploads(session=session, storage=storage, project=project, spooled=[spooled])[0]
