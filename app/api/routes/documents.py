"""Uploading documents, reading their pages, attaching ground truth and imported text."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from app.api.actor import ActorDep
from app.api.deps import (
    DocumentDep,
    OutboxDep,
    PageDep,
    ProjectDep,
    RowId,
    SessionDep,
    SettingsDep,
    StorageDep,
    read_in_thread,
    valid_project,
)
from app.api.idempotency import IdempotencyDep
from app.api.limits import LimitedUploadRoute, page_files_limit
from app.api.responses import binary, errors
from app.api.views import (
    document_detail,
    document_public,
    documents_public,
    ground_truth_public,
)
from app.db.tables import MAX_ID, Document, GroundTruthKind
from app.errors import InvalidUpload, NotFound, UploadTooLarge
from app.pipeline.dispatch import INGEST_TASK, Dispatch
from app.pipeline.media import MEDIA_TYPES, decode_text
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
from app.services.imports import attach_imported_text, read_uploaded_pages
from app.services.projects import (
    attach_ground_truth,
    attach_ground_truth_files,
    ground_truth_versions,
)
from app.services.runs import create_run

ConfirmQuery = Annotated[
    bool,
    Query(description="attach ground truth even where its text does not look like the document's"),
]

# Upload bodies are read under the upload limits as they stream in (and documented as a
# DocumentedRoute's are): see app/api/limits.py.
router = APIRouter(tags=["documents"], route_class=LimitedUploadRoute)


@router.post(
    "/projects/{project_id}/documents",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadResult,
    responses=errors(409, 413, 503),
)
def upload_documents(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    outbox: OutboxDep,
    idempotency: IdempotencyDep,
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
    outbox.add(dispatches)
    idempotency.save(result)
    session.commit()
    return result


@router.get("/projects/{project_id}/documents", response_model=list[DocumentPublic])
async def list_documents(
    project_id: RowId, settings: SettingsDep, actor: ActorDep, request: Request
) -> list[dict[str, object]]:
    """The project's documents, oldest first (polled: read in one worker thread)."""

    def read(session: Session) -> list[dict[str, object]]:
        valid_project(session, project_id, actor, request)
        return documents_public(session, Document.project_id == project_id)

    return await read_in_thread(settings, read)


@router.get("/documents/{document_id}", response_model=DocumentDetail)
def get_document(document: DocumentDep, session: SessionDep) -> DocumentDetail:
    """A document with its pages."""
    return document_detail(session, document)


@router.get(
    "/documents/{document_id}/file",
    response_class=FileResponse,
    responses=binary(*MEDIA_TYPES, "text/plain", description="the file as uploaded"),
)
def get_document_file(document: DocumentDep, storage: StorageDep) -> FileResponse:
    """The uploaded file as it was received."""
    return FileResponse(
        storage.path(document.storage_key),
        media_type=document.media_type,
        filename=document.filename,
    )


@router.get(
    "/pages/{page_id}/image",
    response_class=FileResponse,
    responses=binary("image/png", description="the page image"),
)
def get_page_image(page: PageDep, storage: StorageDep) -> FileResponse:
    """The page image at full resolution (PNG)."""
    if page.image_key is None:
        raise NotFound(f"page {page.id} is imported text and has no image")
    return FileResponse(storage.path(page.image_key), media_type="image/png")


@router.get(
    "/pages/{page_id}/preview",
    response_class=FileResponse,
    responses=binary("image/jpeg", description="a preview of the page image"),
)
def get_page_preview(page: PageDep, storage: StorageDep) -> FileResponse:
    """A smaller JPEG of the page for the browser."""
    if page.preview_key is None:
        raise NotFound(f"page {page.id} is imported text and has no image")
    return FileResponse(storage.path(page.preview_key), media_type="image/jpeg")


@router.post(
    "/documents/{document_id}/ground-truth",
    status_code=status.HTTP_201_CREATED,
    response_model=GroundTruthPublic,
    responses={
        200: {"model": GroundTruthPublic, "description": "identical to the current version"},
        **errors(409, 413),
    },
)
def upload_ground_truth(
    document: DocumentDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    response: Response,
    idempotency: IdempotencyDep,
    file: Annotated[UploadFile, File(description="a .txt transcription or a .csv of records")],
    kind: Annotated[
        str | None, Form(description="text or records; by file ending if left out")
    ] = None,
    page: Annotated[
        int | None,
        Form(ge=1, le=MAX_ID, description="page number, for a page's transcription"),
    ] = None,
    confirm: ConfirmQuery = False,
) -> GroundTruthPublic:
    """Add a version of a transcription (document or page) or of a records CSV.

    Earlier versions are kept, and runs keep the scores they were evaluated with (they show
    that newer ground truth exists; `POST /runs/{id}/evaluate` scores them again). A file
    identical to the current version adds nothing: 200 with the current version. A
    transcription whose CER against the latest finished run's text of the document (or page)
    is above 65 % is refused with 409 (`mismatches` says against which run) unless
    `confirm=true`. A records CSV may be comma, semicolon or tab separated, with or without BOM.
    """
    filename = display_filename(file.filename, "ground-truth")
    data = file.file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise UploadTooLarge(f"{filename}: larger than the upload limit")
    chosen = _ground_truth_kind(kind, filename)
    truth, created = attach_ground_truth(
        session=session,
        document=document,
        content=decode_text(data, filename),
        kind=chosen,
        filename=filename,
        page_number=page,
        author=actor.name,
        confirm=confirm,
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return idempotency.save(ground_truth_public(truth))


@router.post(
    "/projects/{project_id}/ground-truth",
    status_code=status.HTTP_201_CREATED,
    response_model=list[GroundTruthPublic],
    responses={
        200: {"model": list[GroundTruthPublic], "description": "every file was current already"},
        **errors(409, 413),
    },
)
def upload_project_ground_truth(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    response: Response,
    idempotency: IdempotencyDep,
    files: Annotated[
        list[UploadFile],
        File(description="transcriptions (.txt) and records (.csv) named like the documents"),
    ],
    confirm: ConfirmQuery = False,
) -> list[GroundTruthPublic]:
    """Attach ground truth to several documents at once, matched by file name: `type-1.txt`
    (or `type-1.gt.txt`) is the transcription of `type-1.pdf`, `type-1.csv` its records. All or
    nothing: a file that names no document (422), or a transcription that reads like another
    text than its document's (409, unless `confirm=true`), attaches none of them."""
    contents = []
    for upload in files:
        filename = display_filename(upload.filename, "ground-truth")
        data = upload.file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise UploadTooLarge(f"{filename}: larger than the upload limit")
        contents.append((filename, decode_text(data, filename)))
    if not contents:
        raise InvalidUpload("no files in the upload")
    attached = attach_ground_truth_files(
        session=session, project=project, files=contents, author=actor.name, confirm=confirm
    )
    if not any(created for _, created in attached):
        response.status_code = status.HTTP_200_OK
    return idempotency.save([ground_truth_public(truth) for truth, _ in attached])


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
def list_ground_truth(
    document: DocumentDep,
    session: SessionDep,
    every: Annotated[
        bool, Query(alias="all", description="every version, not only the current ones")
    ] = False,
) -> list[GroundTruthPublic]:
    """The document's current ground truth (or, with `all=true`, every version): by kind, page
    and version, without content."""
    truths = ground_truth_versions(session, document, every_version=every)
    current = {t.id for t in ground_truth_versions(session, document)} if every else None
    return [ground_truth_public(t, current=current is None or t.id in current) for t in truths]


@router.post(
    "/documents/{document_id}/imported-text", response_model=DocumentPublic, responses=errors(413)
)
@page_files_limit  # one file a page: as many files as a document may have pages
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
    pages = read_uploaded_pages(
        uploads=[(upload.filename, upload.file) for upload in files],
        page_count=document.page_count,
        settings=settings,
        work_dir=storage.root / "tmp",
    )
    attach_imported_text(session=session, storage=storage, document=document, pages=pages)
    return document_public(session, document)
