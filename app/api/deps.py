"""Dependencies shared by the routes: settings, sessions, storage, dispatcher, lookups."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.session import get_sessionmaker
from app.db.tables import Document, Page, Project, Run
from app.errors import NotFound
from app.pipeline.dispatch import Dispatcher
from app.storage import LocalStorage


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with (async: an attribute read needs no thread)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


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


def get_storage(settings: SettingsDep) -> LocalStorage:
    """The file store."""
    return LocalStorage(settings.resolved_storage_dir)


StorageDep = Annotated[LocalStorage, Depends(get_storage)]


async def get_dispatcher(request: Request) -> Dispatcher:
    """Where new work is sent (async: an attribute read needs no thread)."""
    dispatcher: Dispatcher = request.app.state.dispatcher
    return dispatcher


DispatcherDep = Annotated[Dispatcher, Depends(get_dispatcher)]


def valid_project(session: SessionDep, project_id: Annotated[int, Path()]) -> Project:
    """The project in the path, or 404."""
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"project {project_id} not found")
    return project


def valid_document(session: SessionDep, document_id: Annotated[int, Path()]) -> Document:
    """The document in the path, or 404."""
    document = session.get(Document, document_id)
    if document is None:
        raise NotFound(f"document {document_id} not found")
    return document


def valid_page(session: SessionDep, page_id: Annotated[int, Path()]) -> Page:
    """The page in the path, or 404."""
    page = session.get(Page, page_id)
    if page is None:
        raise NotFound(f"page {page_id} not found")
    return page


def valid_run(session: SessionDep, run_id: Annotated[int, Path()]) -> Run:
    """The run in the path, or 404."""
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


ProjectDep = Annotated[Project, Depends(valid_project)]
DocumentDep = Annotated[Document, Depends(valid_document)]
PageDep = Annotated[Page, Depends(valid_page)]
RunDep = Annotated[Run, Depends(valid_run)]
