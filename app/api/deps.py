"""Dependencies shared by the routes: settings, sessions, storage, dispatcher, lookups."""

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.api.actor import ActorDep
from app.config import Settings
from app.db import audit  # noqa: F401  (the audit trail's flush hook)
from app.db.accounts import Role
from app.db.session import get_sessionmaker
from app.db.tables import MAX_ID, Document, Line, Page, Project, Record, Run
from app.errors import NotFound
from app.identity import Actor
from app.pipeline.dispatch import Dispatcher
from app.pipeline.outbox import Outbox
from app.services.accounts import require_role
from app.storage import LocalStorage


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (async: an attribute read needs no thread)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

#: An id in a path: a larger one is a 422 that names the limit, never a query that overflows
#: (PostgreSQL) or a 500.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def get_session(settings: SettingsDep, actor: ActorDep) -> Iterator[Session]:
    """One session per request, committed when the route returns without error; what it
    changes is written to the audit trail as the request's actor's doing.

    Declared with `scope="function"` (in `SessionDep`): the commit runs before the response is
    sent. FastAPI's default for a dependency with `yield` ends it after the response is sent,
    so a client that read "201 Created" and asked at once for what it created got a 404.
    """
    session = get_sessionmaker(settings.resolved_database_url)()
    session.info["actor"] = actor
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]

T = TypeVar("T")


async def read_in_thread(settings: Settings, read: Callable[[Session], T]) -> T:
    """Run `read` with a session of its own in one worker thread, for the routes clients poll.

    A sync route with sync dependencies moves between the event loop and the thread pool once
    per dependency (about ten times a request); under load each move waits for the GIL, and
    that wait, not the queries, was the tail of the polled routes' latency.
    """

    def run() -> T:
        with get_sessionmaker(settings.resolved_database_url)() as session:
            return read(session)

    return await run_in_threadpool(run)


def found(session: Session, table: type[T], key: int, what: str) -> T:
    """The row of `table` with this primary key, or NotFound naming it."""
    row = session.get(table, key)
    if row is None:
        raise NotFound(f"{what} {key} not found")
    return row


def get_storage(settings: SettingsDep) -> LocalStorage:
    """The file store."""
    return LocalStorage(settings.resolved_storage_dir)


StorageDep = Annotated[LocalStorage, Depends(get_storage)]


async def get_dispatcher(request: Request) -> Dispatcher:
    """Where new work is sent (async: an attribute read needs no thread)."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


def get_outbox(session: SessionDep, dispatcher: DispatcherDep) -> Outbox:
    """Where a route puts the tasks it starts: rows in its transaction, sent after the commit
    (or, with the broker down, by the recovery sweep): routes never send themselves."""
    return Outbox(session, dispatcher)


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def needed_role(request: Request) -> Role:
    """Reading needs the viewer role in the project, anything else the editor role."""
    return Role.VIEWER if request.method in SAFE_METHODS else Role.EDITOR


def authorize(session: Session, actor: Actor, project_id: int, request: Request) -> None:
    """Refuse a request its actor's role in the project does not allow (404 or 403)."""
    require_role(session, actor, project_id, needed_role(request))


def valid_project(
    session: SessionDep, project_id: RowId, actor: ActorDep, request: Request
) -> Project:
    """The project in the path, or 404; the actor's role must allow the request."""
    project = found(session, Project, project_id, "project")
    authorize(session, actor, project.id, request)
    return project


def valid_document(
    session: SessionDep, document_id: RowId, actor: ActorDep, request: Request
) -> Document:
    """The document in the path, or 404; the actor's role must allow the request."""
    document = found(session, Document, document_id, "document")
    _authorize_or_hide(session, actor, document.project_id, request, f"document {document_id}")
    return document


def valid_page(session: SessionDep, page_id: RowId, actor: ActorDep, request: Request) -> Page:
    """The page in the path, or 404; the actor's role must allow the request."""
    page = found(session, Page, page_id, "page")
    project_id = session.get_one(Document, page.document_id).project_id
    _authorize_or_hide(session, actor, project_id, request, f"page {page_id}")
    return page


def valid_run(session: SessionDep, run_id: RowId, actor: ActorDep, request: Request) -> Run:
    """The run in the path, or 404; the actor's role must allow the request."""
    run = found(session, Run, run_id, "run")
    _authorize_or_hide(session, actor, run.project_id, request, f"run {run_id}")
    return run


def valid_line(session: SessionDep, line_id: RowId, actor: ActorDep, request: Request) -> Line:
    """The line in the path, or 404; the actor's role in its run's project must allow it."""
    line = found(session, Line, line_id, "line")
    project_id = session.get_one(Run, line.run_id).project_id
    _authorize_or_hide(session, actor, project_id, request, f"line {line_id}")
    return line


def valid_record(
    session: SessionDep, record_id: RowId, actor: ActorDep, request: Request
) -> Record:
    """The record in the path, or 404; the actor's role in its run's project must allow it."""
    record = found(session, Record, record_id, "record")
    project_id = session.get_one(Run, record.run_id).project_id
    _authorize_or_hide(session, actor, project_id, request, f"record {record_id}")
    return record


def _authorize_or_hide(
    session: Session, actor: Actor, project_id: int, request: Request, what: str
) -> None:
    """As `authorize`, but a row of a project the actor may not see is "not found" by its own
    name (the project's id is not disclosed)."""
    try:
        authorize(session, actor, project_id, request)
    except NotFound:
        raise NotFound(f"{what} not found") from None


ProjectDep = Annotated[Project, Depends(valid_project)]
DocumentDep = Annotated[Document, Depends(valid_document)]
PageDep = Annotated[Page, Depends(valid_page)]
RunDep = Annotated[Run, Depends(valid_run)]
LineDep = Annotated[Line, Depends(valid_line)]
RecordDep = Annotated[Record, Depends(valid_record)]
