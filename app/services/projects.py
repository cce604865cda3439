"""Projects and their ground truth."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import (
    DEFAULT_SCHEMA_FIELDS,
    SETTLED_RUN_STATUSES,
    Document,
    GroundTruth,
    GroundTruthKind,
    Page,
    Project,
    Run,
    run_documents,
)
from app.errors import Conflict, InvalidRequest
from app.metrics.records import read_records_csv


def create_project(
    *, session: Session, name: str, description: str = "", schema_fields: list[str] | None = None
) -> Project:
    """A new project; names are unique."""
    name = name.strip()
    if not name:
        raise InvalidRequest("a project needs a name")
    if session.scalar(select(Project).where(Project.name == name)) is not None:
        raise Conflict(f"a project named {name!r} exists already")
    fields = [f.strip() for f in (schema_fields or DEFAULT_SCHEMA_FIELDS)]
    if any(not f for f in fields) or len(set(fields)) != len(fields):
        raise InvalidRequest("schema fields must be non-empty and distinct")
    project = Project(name=name, description=description, schema_fields=fields)
    session.add(project)
    session.flush()
    return project


def get_or_create_project(*, session: Session, name: str) -> Project:
    """The project called `name`, created with the default schema if it does not exist."""
    project = session.scalar(select(Project).where(Project.name == name))
    return project or create_project(session=session, name=name)


def attach_ground_truth(
    *,
    session: Session,
    document: Document,
    content: str,
    kind: GroundTruthKind,
    filename: str = "",
    page_number: int | None = None,
) -> GroundTruth:
    """Attach (or replace) a document's or page's transcription, or a document's records CSV."""
    page_id = None
    if page_number is not None:
        if kind == GroundTruthKind.RECORDS:
            raise InvalidRequest("records ground truth belongs to a whole document, not a page")
        page = session.scalar(
            select(Page).where(Page.document_id == document.id, Page.number == page_number)
        )
        if page is None:
            raise InvalidRequest(
                f"document {document.id} has no page {page_number} "
                f"(it has {len(document.pages)} page(s) so far)"
            )
        page_id = page.id
    if kind == GroundTruthKind.RECORDS:
        try:
            read_records_csv(content, list(document.project.schema_fields))
        except ValueError as exc:
            raise InvalidRequest(f"{filename or 'CSV'}: {exc}") from exc
    for old in list(document.ground_truths):
        if old.kind == kind and old.page_id == page_id:
            document.ground_truths.remove(old)
            session.delete(old)
    truth = GroundTruth(
        document_id=document.id, page_id=page_id, kind=kind, filename=filename, content=content
    )
    document.ground_truths.append(truth)
    session.flush()
    return truth


def runs_to_rescore(session: Session, document_id: int) -> list[Run]:
    """Settled runs that include a document, their stored metrics dropped: they change with the
    document's ground truth, so until the evaluate task stores them again they are computed
    when asked for (see `app.api.routes.runs.get_metrics`) instead of served stale."""
    runs = list(
        session.scalars(
            select(Run)
            .join(run_documents, run_documents.c.run_id == Run.id)
            .where(
                run_documents.c.document_id == document_id,
                Run.status.in_(SETTLED_RUN_STATUSES),
            )
        )
    )
    for run in runs:
        run.metrics = None
    session.flush()
    return runs
