"""Projects and their ground truth (versioned: an upload adds a version, never replaces one)."""

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db.session import utcnow
from app.db.tables import (
    DEFAULT_SCHEMA_FIELDS,
    Document,
    GroundTruth,
    GroundTruthKind,
    Page,
    Project,
)
from app.errors import Conflict, InvalidRequest
from app.identity import LOCAL
from app.metrics.records import read_records_csv
from app.pipeline.evaluation import current_ground_truth


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
    author: str = LOCAL,
) -> tuple[GroundTruth, bool]:
    """Add the next version of a document's or page's transcription, or of a document's records
    CSV; and whether it is new (content identical to the current version adds nothing).

    Earlier versions stay: runs evaluated against them keep those scores until someone asks to
    score them again (`app.services.evaluations.record_evaluation`).
    """
    page_id = _ground_truth_page(session, document, kind, page_number)
    if kind == GroundTruthKind.RECORDS:
        try:
            read_records_csv(content, list(document.project.schema_fields))
        except ValueError as exc:
            raise InvalidRequest(f"{filename or 'CSV'}: {exc}") from exc
    _lock_document(session, document.id)
    current = session.scalar(
        select(GroundTruth)
        .where(
            GroundTruth.document_id == document.id,
            GroundTruth.kind == kind,
            GroundTruth.page_id.is_(None) if page_id is None else GroundTruth.page_id == page_id,
        )
        .order_by(GroundTruth.version.desc())
        .limit(1)
    )
    if current is not None and current.content == content:
        return current, False
    truth = GroundTruth(
        document_id=document.id,
        page_id=page_id,
        kind=kind,
        filename=filename,
        content=content,
        version=1 if current is None else current.version + 1,
        author=author,
    )
    session.add(truth)
    session.flush()
    return truth, True


def _ground_truth_page(
    session: Session, document: Document, kind: GroundTruthKind, page_number: int | None
) -> int | None:
    """The id of the page a transcription is for (None for the whole document), checked."""
    if page_number is None:
        return None
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
    return page.id


def _lock_document(session: Session, document_id: int) -> None:
    """Hold the document's row until the transaction ends, before reading the latest version.

    Two uploads of the same piece at once would otherwise both read version n and both write
    n + 1 (the unique constraint would then refuse one with an error). An UPDATE, rather than
    SELECT … FOR UPDATE, because it also takes SQLite's write lock: the second upload waits
    (busy_timeout) and then reads the first one's version.
    """
    session.execute(
        update(Document)
        .where(Document.id == document_id)
        .values(updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def ground_truth_versions(
    session: Session, document: Document, *, every_version: bool = False
) -> list[GroundTruth]:
    """The document's current ground truth (one per document/page and kind), or every version;
    by kind, page (the whole document first) and version."""
    query = select(GroundTruth).where(GroundTruth.document_id == document.id)
    if not every_version:
        query = query.where(current_ground_truth())
    return list(
        session.scalars(
            query.outerjoin(Page, Page.id == GroundTruth.page_id).order_by(
                GroundTruth.kind,
                Page.number.is_not(None),
                Page.number,
                GroundTruth.version,
            )
        )
    )
