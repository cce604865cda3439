"""Dependencies shared by the routes: settings, sessions, storage, dispatcher, lookups."""

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import Settings
from app.db.session import get_sessionmaker
from app.db.tables import MAX_ID, Document, Page, Project, Run
from app.errors import NotFound
from app.pipeline.dispatch import Dispatcher
from app.storage import LocalStorage


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (async: an attribute read needs no thread)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

#: An id in a path: a larger one is a 422 that names the limit, never a query that overflows
#: (PostgreSQL) or a 500.
RowId = Annotated[int, Path(ge=1, le=MAX_ID)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One session per request, committed when the route returns without error.

    Declared with `scope="function"` (in `SessionDep`): the commit runs before the response is
    sent. FastAPI's default for a dependency with `yield` ends it after the response is sent,
    so a client that read "201 Created" and asked at once for what it created got a 404.
    """
    session = get_sessionmaker(settings.resolved_database_url)()
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


def valid_project(session: SessionDep, project_id: RowId) -> Project:
    """The project in the path, or 404."""
    return found(session, Project, project_id, "project")


def valid_document(session: SessionDep, document_id: RowId) -> Document:
    """The document in the path, or 404."""
    return found(session, Document, document_id, "document")


def valid_page(session: SessionDep, page_id: RowId) -> Page:
    """The page in the path, or 404."""
    return found(session, Page, page_id, "page")


def valid_run(session: SessionDep, run_id: RowId) -> Run:
    """The run in the path, or 404."""
    return found(session, Run, run_id, "run")


ProjectDep = Annotated[Project, Depends(valid_project)]
DocumentDep = Annotated[Document, Depends(valid_document)]
PageDep = Annotated[Page, Depends(valid_page)]
RunDep = Annotated[Run, Depends(valid_run)]
