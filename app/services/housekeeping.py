"""Renaming and deleting projects, documents and runs, and removing the files no row needs.

Files are content-addressed (app/storage.py): the same bytes uploaded into two projects, or two
pages that render alike, are one file under one key. So a deleted row's files are only
candidates; a file goes when, after the rows are gone, no document or page names its key any
more (`unreferenced`), and only after the deletion is committed (`remove_files`): a rolled-back
deletion keeps every file.

Work in flight stops by itself once its rows are gone: a task claims stage results by a
conditional update, and stores under the run's lock (`lock_run`), so a task of a deleted run
claims nothing and stores nothing, and the recovery sweep finds no row to queue again.
`cancel_run` takes the run's lock first, so no task is half-way through storing a page of it
when it goes.
"""

import logging
from collections.abc import Iterable

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from app.db.session import utcnow
from app.db.tables import (
    Document,
    DocumentStatus,
    Page,
    Project,
    Run,
    RunStatus,
    StageResult,
    StageStatus,
)
from app.errors import Conflict, InvalidRequest
from app.pipeline.dispatch import Dispatch
from app.pipeline.scheduler import advance, lock_run, runs_waiting_for
from app.storage import LocalStorage

logger = logging.getLogger(__name__)

#: Stage results not finished yet: what cancelling a run stops.
OPEN_STAGE_STATUSES = (StageStatus.PENDING, StageStatus.QUEUED, StageStatus.RUNNING)


def next_run_number(session: Session, project_id: int) -> int:
    """The number the project's next run gets (1, 2, …).

    Takes the project's row first (an UPDATE that changes nothing: a row lock on PostgreSQL,
    the write lock on SQLite), so two runs started at once in one project do not both read the
    same highest number.
    """
    session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(name=Project.name)
        .execution_options(synchronize_session=False)
    )
    last = session.scalar(select(func.max(Run.number)).where(Run.project_id == project_id))
    return (last or 0) + 1


def rename_project(
    *, session: Session, project: Project, name: str | None, description: str | None
) -> Project:
    """A new name (unique) and/or description for a project."""
    if name is not None:
        name = name.strip()
        if not name:
            raise InvalidRequest("a project needs a name")
        taken = session.scalar(
            select(Project.id).where(Project.name == name, Project.id != project.id)
        )
        if taken is not None:
            raise Conflict(f"a project named {name!r} exists already")
        project.name = name
    if description is not None:
        project.description = description
    session.flush()
    return project


def rename_document(*, session: Session, document: Document, filename: str) -> Document:
    """A new display name for a document (its file stays what was uploaded)."""
    if not filename:
        raise InvalidRequest("a document needs a name")
    document.filename = filename
    session.flush()
    return document


def rename_run(*, session: Session, run: Run, name: str) -> Run:
    """A new name for a run (its configuration never changes)."""
    run.name = name.strip()
    session.flush()
    return run


def cancel_run(session: Session, run: Run, reason: str) -> int:
    """Stop a run's unfinished work: its open stage results are skipped with `reason`; returns
    how many. The run's row is locked first (see `lock_run`): a task storing a page of it waits,
    and then finds the page no longer running."""
    lock_run(session, run.id)
    cancelled = session.execute(
        update(StageResult)
        .where(StageResult.run_id == run.id, StageResult.status.in_(OPEN_STAGE_STATUSES))
        .values(status=StageStatus.SKIPPED, error=reason, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if cancelled:
        logger.info("run %s: %s open stage result(s) cancelled (%s)", run.id, cancelled, reason)
    return int(cancelled or 0)


def delete_run(*, session: Session, run: Run) -> None:
    """Delete a run with everything it produced (stage results, lines, records, edits,
    evaluations); a running run is cancelled first. Runs own no files."""
    if run.status in (RunStatus.PENDING, RunStatus.RUNNING):
        cancel_run(session, run, "cancelled: the run was deleted")
    session.delete(run)
    session.flush()


def document_files(session: Session, document_ids: Iterable[int]) -> set[str]:
    """Every storage key the documents and their pages name."""
    ids = list(document_ids)
    if not ids:
        return set()
    keys: set[str] = set()
    for document_keys in session.execute(
        select(Document.storage_key, Document.imported_text_key).where(Document.id.in_(ids))
    ):
        keys.update(key for key in document_keys if key)
    for page_keys in session.execute(
        select(Page.image_key, Page.preview_key, Page.text_key).where(Page.document_id.in_(ids))
    ):
        keys.update(key for key in page_keys if key)
    return keys


def unreferenced(session: Session, keys: Iterable[str]) -> set[str]:
    """Those of `keys` that no document or page names (after the session's own changes)."""
    wanted = sorted(set(keys))
    used: set[str] = set()
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        used.update(
            key
            for row in session.execute(
                select(Document.storage_key, Document.imported_text_key).where(
                    or_(Document.storage_key.in_(chunk), Document.imported_text_key.in_(chunk))
                )
            )
            for key in row
            if key
        )
        used.update(
            key
            for row in session.execute(
                select(Page.image_key, Page.preview_key, Page.text_key).where(
                    or_(
                        Page.image_key.in_(chunk),
                        Page.preview_key.in_(chunk),
                        Page.text_key.in_(chunk),
                    )
                )
            )
            for key in row
            if key
        )
    return set(wanted) - used


def delete_document(*, session: Session, document: Document) -> tuple[set[str], list[Dispatch]]:
    """Delete a document with its pages, ground truth and every run's results on it; returns
    the files nothing names any more (remove them after the commit: `remove_files`) and the
    tasks to send (a run that was only waiting for this document may now be finished).

    Runs over it stay, with their other documents; their stored scores stay as they were given.
    A document being ingested is refused: its pages are being written at this moment.
    """
    # Lock the row unless ingest holds it (a conditional UPDATE that changes nothing): an
    # ingest that would start now waits for this transaction, then finds no document to claim.
    locked = session.execute(
        update(Document)
        .where(Document.id == document.id, Document.status != DocumentStatus.INGESTING)
        .values(status=Document.status)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if not locked:
        raise Conflict(
            f"document {document.id} is being ingested: delete it when ingest has finished"
        )
    keys = document_files(session, [document.id])
    affected = runs_waiting_for(session, document.id)
    for run in affected:
        lock_run(session, run.id)  # a task storing a page of this document waits (see lock_run)
    session.delete(document)
    session.flush()
    dispatches: list[Dispatch] = []
    for run in affected:
        session.refresh(run)
        dispatches.extend(advance(session, run))
    return unreferenced(session, keys), dispatches


def delete_project(*, session: Session, project: Project) -> set[str]:
    """Delete a project with its documents, runs, ground truth and schema versions; its running
    runs are cancelled first. Returns the files nothing names any more (other projects may hold
    the same file: those stay)."""
    run_ids = session.scalars(
        select(Run.id).where(
            Run.project_id == project.id,
            Run.status.in_([RunStatus.PENDING, RunStatus.RUNNING]),
        )
    ).all()
    for run_id in run_ids:
        cancel_run(session, session.get_one(Run, run_id), "cancelled: the project was deleted")
    document_ids = session.scalars(
        select(Document.id).where(Document.project_id == project.id)
    ).all()
    keys = document_files(session, document_ids)
    # The runs go in one statement, and with them (ON DELETE CASCADE) their links to documents,
    # stage results, lines, records, edits and evaluations; the documents and their pages and
    # ground truth go with the project below (each a row of the audit trail).
    session.execute(delete(Run).where(Run.project_id == project.id))
    session.delete(project)
    session.flush()
    return unreferenced(session, keys)


def remove_files(storage: LocalStorage, keys: Iterable[str]) -> int:
    """Remove stored files (after the deletion that freed them is committed); returns how many
    were there. A file that cannot be removed is logged and left: it wastes space, no more."""
    removed = 0
    for key in sorted(set(keys)):
        try:
            removed += storage.remove(key)
        except (OSError, ValueError) as exc:
            logger.warning("cannot remove stored file %s: %s", key, exc)
    return removed
