"""Uploading documents, reading their pages, attaching ground truth and imported text."""

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from app.api.deps import (
    DispatcherDep,
    DocumentDep,
    PageDep,
    ProjectDep,
    RowId,
    SessionDep,
    SettingsDep,
    StorageDep,
    found,
    read_in_thread,
)
from app.api.views import (
    document_detail,
    document_public,
    documents_public,
    ground_truth_public,
)
from app.db.tables import MAX_ID, Document, GroundTruthKind, Project
from app.errors import InvalidUpload, NotFound, UploadTooLarge
from app.pipeline.dispatch import EVALUATE_TASK, INGEST_TASK, Dispatch
from app.pipeline.media import decode_text
from app.pipeline.run_config import default_stages
from app.schemas.documents import (
    DocumentDetail,
    DocumentPublic,
    GroundTruthPublic,
    UploadedDocument,
    UploadResult,
)
from app.schemas.text import display_filename
from app.services.documents import SpooledUpload, discard, spool_upload, store_uploads
from app.services.imports import attach_imported_text
from app.services.projects import attach_ground_truth, runs_to_rescore
from app.services.runs import create_run

router = APIRouter(tags=["documents"])


@router.post(
    "/projects/{project_id}/documents",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
)
def upload_documents(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    dispatcher: DispatcherDep,
    files: Annotated[list[UploadFile], File(description="PDF, PNG, JPEG or TIFF scans")],
    start_run: Annotated[bool, Form(description="start the default pipeline on them")] = False,
) -> UploadResult:
    """Store scans (checked by content and size) and queue their ingest; all or nothing."""
    if not files:
        raise InvalidUpload("no files in the upload")
    spooled: list[SpooledUpload] = []
    try:
        for upload in files:
            spooled.append(
                spool_upload(
                    stream=upload.file,
                    filename=upload.filename or "upload",
                    settings=settings,
                    tmp_dir=storage.root / "tmp",
                )
            )
    except BaseException:
        discard(spooled)
        raise
    stored = store_uploads(session=session, storage=storage, project=project, spooled=spooled)
    dispatches = [
        Dispatch(task=INGEST_TASK, args=(doc.id,), queue="cpu")
        for doc, created in stored
        if created
    ]
    run_id = None
    if start_run:
        run, more = create_run(
            session=session,
            settings=settings,
            project=project,
            stages=default_stages(),
            document_ids=[doc.id for doc, _ in stored],
        )
        run_id = run.id
        dispatches.extend(more)
    listed = documents_public(session, Document.id.in_({doc.id for doc, _ in stored}))
    by_id = {d["id"]: d for d in listed}
    result = UploadResult(
        documents=[
            UploadedDocument(**by_id[doc.id], duplicate=not created) for doc, created in stored
        ],
        run_id=run_id,
    )
    session.commit()
    dispatcher.send(dispatches)
    return result


@router.get("/projects/{project_id}/documents", response_model=list[DocumentPublic])
async def list_documents(project_id: RowId, settings: SettingsDep) -> list[dict[str, object]]:
    """The project's documents, oldest first (polled: read in one worker thread)."""

    def read(session: Session) -> list[dict[str, object]]:
        found(session, Project, project_id, "project")
        return documents_public(session, Document.project_id == project_id)

    return await read_in_thread(settings, read)


@router.get("/documents/{document_id}", response_model=DocumentDetail)
def get_document(document: DocumentDep, session: SessionDep) -> DocumentDetail:
    """A document with its pages."""
    return document_detail(session, document)


@router.get("/documents/{document_id}/file")
def get_document_file(document: DocumentDep, storage: StorageDep) -> FileResponse:
    """The uploaded file as it was received."""
    return FileResponse(
        storage.path(document.storage_key),
        media_type=document.media_type,
        filename=document.filename,
    )


@router.get("/pages/{page_id}/image")
def get_page_image(page: PageDep, storage: StorageDep) -> FileResponse:
    """The page image at full resolution (PNG)."""
    if page.image_key is None:
        raise NotFound(f"page {page.id} is imported text and has no image")
    return FileResponse(storage.path(page.image_key), media_type="image/png")


@router.get("/pages/{page_id}/preview")
def get_page_preview(page: PageDep, storage: StorageDep) -> FileResponse:
    """A smaller JPEG of the page for the browser."""
    if page.preview_key is None:
        raise NotFound(f"page {page.id} is imported text and has no image")
    return FileResponse(storage.path(page.preview_key), media_type="image/jpeg")


@router.post(
    "/documents/{document_id}/ground-truth",
    status_code=status.HTTP_201_CREATED,
    response_model=GroundTruthPublic,
)
def upload_ground_truth(
    document: DocumentDep,
    session: SessionDep,
    dispatcher: DispatcherDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="a .txt transcription or a .csv of records")],
    kind: Annotated[
        str | None, Form(description="text or records; by file ending if left out")
    ] = None,
    page: Annotated[
        int | None,
        Form(ge=1, le=MAX_ID, description="page number, for a page's transcription"),
    ] = None,
) -> GroundTruthPublic:
    """Attach a transcription (document or page) or a records CSV; finished runs are re-scored."""
    filename = display_filename(file.filename, "ground-truth")
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLarge(f"{filename}: larger than the upload limit")
    chosen = _ground_truth_kind(kind, filename)
    truth = attach_ground_truth(
        session=session,
        document=document,
        content=decode_text(data, filename),
        kind=chosen,
        filename=filename,
        page_number=page,
    )
    result = ground_truth_public(truth)
    rescore = [
        Dispatch(task=EVALUATE_TASK, args=(run.id,), queue="cpu")
        for run in runs_to_rescore(session, document.id)
    ]
    session.commit()
    dispatcher.send(rescore)
    return result


def _ground_truth_kind(kind: str | None, filename: str) -> GroundTruthKind:
    if kind is None:
        return (
            GroundTruthKind.RECORDS if filename.lower().endswith(".csv") else GroundTruthKind.TEXT
        )
    try:
        return GroundTruthKind(kind)
    except ValueError as exc:
        raise InvalidUpload(f"kind must be 'text' or 'records', not {kind!r}") from exc


@router.get("/documents/{document_id}/ground-truth", response_model=list[GroundTruthPublic])
def list_ground_truth(document: DocumentDep) -> list[GroundTruthPublic]:
    """What ground truth the document has."""
    return [ground_truth_public(t) for t in document.ground_truths]


@router.post("/documents/{document_id}/imported-text", response_model=DocumentPublic)
def upload_imported_text(
    document: DocumentDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    files: Annotated[
        list[UploadFile],
        File(description="PAGE XML, ALTO or text: one file for the document, or one per page"),
    ],
) -> dict[str, object]:
    """Attach text made elsewhere (e.g. a Transkribus export) for runs with `--ocr import`."""
    from models.importers import ImportFormatError, import_pages

    with tempfile.TemporaryDirectory(dir=storage.root) as folder:
        for index, upload in enumerate(files):
            data = upload.file.read(settings.max_upload_bytes + 1)
            if len(data) > settings.max_upload_bytes:
                raise UploadTooLarge(f"{upload.filename}: larger than the upload limit")
            name = display_filename(upload.filename, f"page-{index + 1}.txt")
            (Path(folder) / name).write_bytes(data)
        target = Path(folder) if len(files) > 1 else Path(folder) / name
        try:
            pages = import_pages(target, document.page_count or 0)
        except ImportFormatError as exc:
            raise InvalidUpload(str(exc)) from exc
    attach_imported_text(session=session, storage=storage, document=document, pages=pages)
    return document_public(session, document)
