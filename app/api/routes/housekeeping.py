"""Renaming and deleting documents and runs (editors and owners of their project)."""

from fastapi import APIRouter, Response, status

from app.api.deps import DocumentDep, OutboxDep, RunDep, SessionDep, StorageDep
from app.api.responses import DocumentedRoute, errors
from app.api.views import document_public, run_public
from app.schemas.documents import DocumentPublic
from app.schemas.projects import DocumentUpdate, RunUpdate
from app.schemas.runs import RunPublic
from app.services.housekeeping import (
    delete_document,
    delete_run,
    remove_files,
    rename_document,
    rename_run,
)

router = APIRouter(tags=["housekeeping"], route_class=DocumentedRoute)


@router.patch("/documents/{document_id}", response_model=DocumentPublic)
def update_document(
    body: DocumentUpdate, document: DocumentDep, session: SessionDep
) -> dict[str, object]:
    """Rename a document (the name it is shown and exported under; the file stays)."""
    rename_document(session=session, document=document, filename=body.filename)
    return document_public(session, document)


@router.delete(
    "/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(409)
)
def remove_document(
    document: DocumentDep, session: SessionDep, storage: StorageDep, outbox: OutboxDep
) -> Response:
    """Delete a document with its pages, ground truth and every run's results on it; its files
    go unless another document holds the same file. Runs over it keep their other documents.
    409 while it is being ingested."""
    orphans, dispatches = delete_document(session=session, document=document)
    outbox.add(dispatches)
    session.commit()  # the files go only once the rows are gone for good
    remove_files(storage, orphans)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/runs/{run_id}", response_model=RunPublic)
def update_run(body: RunUpdate, run: RunDep, session: SessionDep) -> RunPublic:
    """Rename a run (its configuration never changes)."""
    rename_run(session=session, run=run, name=body.name)
    return run_public(session, run)


@router.delete("/runs/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_run(run: RunDep, session: SessionDep) -> Response:
    """Delete a run with everything it produced; a running run is cancelled first (its queued
    pages are never started, a page being worked on is not stored)."""
    delete_run(session=session, run=run)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
