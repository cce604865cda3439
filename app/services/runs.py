"""Starting runs, and estimating them before they start."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.tables import Document, Project, Run
from app.errors import InvalidRequest
from app.pipeline.dispatch import Dispatch
from app.pipeline.preflight import check_engines
from app.pipeline.run_config import StageRequest, build_run_config
from app.pipeline.scheduler import advance, lock_documents, materialize
from app.services.housekeeping import next_run_number
from app.services.recognizer_runs import resolve_recognizer
from app.services.schemas import current_schema


def select_documents(
    *, session: Session, project: Project, document_ids: Sequence[int] | None
) -> list[Document]:
    """The project's documents a run covers: those named, or all of them."""
    query = select(Document).where(Document.project_id == project.id).order_by(Document.id)
    if document_ids is not None:
        query = query.where(Document.id.in_(set(document_ids)))
    documents = list(session.scalars(query))
    if document_ids is not None:
        missing = sorted(set(document_ids) - {d.id for d in documents})
        if missing:
            raise InvalidRequest(f"project {project.id} has no document(s) {missing}")
    if not documents:
        raise InvalidRequest("the run has no documents: upload some first")
    return documents


def create_run(
    *,
    session: Session,
    settings: Settings,
    project: Project,
    stages: Sequence[StageRequest],
    document_ids: Sequence[int] | None = None,
    name: str = "",
) -> tuple[Run, list[Dispatch]]:
    """Record a run with its full configuration and queue what can start now."""
    schema = current_schema(session, project)  # recorded in full, with its version
    config = build_run_config(
        stages=stages, schema_fields=schema.fields, schema_version=schema.version, settings=settings
    )
    config = resolve_recognizer(session, project.id, config)  # the exact model it reads with
    documents = select_documents(session=session, project=project, document_ids=document_ids)
    check_engines(config, settings)
    lock_documents(session, [document.id for document in documents])  # see lock_documents
    run = Run(
        project_id=project.id,
        number=next_run_number(session, project.id),
        name=name.strip(),
        config=config,
        documents=documents,
    )
    session.add(run)
    session.flush()
    materialize(session, run)
    return run, advance(session, run)
