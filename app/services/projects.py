"""Projects and their ground truth (versioned: an upload adds a version, never replaces one)."""

from collections.abc import Sequence
from dataclasses import asdict

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
from app.errors import Conflict, InvalidRequest, InvalidUpload
from app.identity import LOCAL
from app.metrics.records import read_records_csv
from app.pipeline.evaluation import current_ground_truth
from app.services.truth_match import (
    GroundTruthMismatch,
    Mismatch,
    match_files,
    mismatch_message,
    text_mismatch,
)


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
    confirm: bool = False,
) -> tuple[GroundTruth, bool]:
    """Add the next version of a document's or page's transcription, or of a document's records
    CSV; and whether it is new (content identical to the current version adds nothing).

    Earlier versions stay: runs evaluated against them keep those scores until someone asks to
    score them again (`app.services.evaluations.record_evaluation`). A transcription that
    plainly is not the document's text is refused unless `confirm` (app/services/truth_match.py).
    """
    page_id = _ground_truth_page(session, document, kind, page_number)
    current = _current_version(session, document.id, kind, page_id)
    if current is not None and current.content == content:
        return current, False  # nothing new: no check (a confirmed upload sent again stays 200)
    check_ground_truth(
        session=session,
        document=document,
        content=content,
        kind=kind,
        filename=filename,
        page_id=page_id,
        confirm=confirm,
    )
    _lock_document(session, document.id)
    current = _current_version(session, document.id, kind, page_id)  # as of the lock
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


def _current_version(
    session: Session, document_id: int, kind: GroundTruthKind, page_id: int | None
) -> GroundTruth | None:
    return session.scalar(
        select(GroundTruth)
        .where(
            GroundTruth.document_id == document_id,
            GroundTruth.kind == kind,
            GroundTruth.page_id.is_(None) if page_id is None else GroundTruth.page_id == page_id,
        )
        .order_by(GroundTruth.version.desc())
        .limit(1)
    )


def check_ground_truth(
    *,
    session: Session,
    document: Document,
    content: str,
    kind: GroundTruthKind,
    filename: str = "",
    page_id: int | None = None,
    confirm: bool = False,
) -> None:
    """Refuse ground truth that cannot be attached as it is (for the page `page_id`, or the
    whole document): a records CSV must have the project's fields; a transcription must read
    like the latest finished run's text of its document or page, unless `confirm`
    (GroundTruthMismatch, 409)."""
    if kind == GroundTruthKind.RECORDS:
        try:
            read_records_csv(content, list(document.project.schema_fields))
        except ValueError as exc:
            raise InvalidRequest(f"{filename or 'CSV'}: {exc}") from exc
    elif not confirm:
        mismatch = text_mismatch(session, document, content, page_id)
        if mismatch is not None:
            name = filename or "the transcription"
            raise GroundTruthMismatch(
                mismatch_message(name, document, mismatch),
                [{"file": name, "document_id": document.id, **asdict(mismatch)}],
            )


def attach_ground_truth_files(
    *,
    session: Session,
    project: Project,
    files: Sequence[tuple[str, str]],
    author: str = LOCAL,
    confirm: bool = False,
) -> list[tuple[GroundTruth, bool]]:
    """Attach (file name, content) pairs to the project's documents named like them: `.csv`
    files as records, others as transcriptions. All or nothing: every file is matched and
    checked before any is attached, and the 409 for texts that do not fit names them all."""
    names = [name for name, _ in files]
    documents = match_files(list(project.documents), names)
    kinds = [_kind_of(name) for name in names]
    pieces = [(d.id, k) for d, k in zip(documents, kinds, strict=True)]
    doubled = sorted({n for n, p in zip(names, pieces, strict=True) if pieces.count(p) > 1})
    if doubled:
        raise InvalidUpload(
            f"{', '.join(doubled)}: more than one file for the same document; give one each"
        )
    mismatches: list[tuple[str, Document, Mismatch]] = []
    for (name, content), document, kind in zip(files, documents, kinds, strict=True):
        current = _current_version(session, document.id, kind, None)
        if current is not None and current.content == content:
            continue  # attached already: nothing to check
        if kind == GroundTruthKind.RECORDS:
            check_ground_truth(
                session=session, document=document, content=content, kind=kind, filename=name
            )
        elif not confirm and (found := text_mismatch(session, document, content)) is not None:
            mismatches.append((name, document, found))
    if mismatches:
        raise GroundTruthMismatch(
            "; ".join(mismatch_message(name, doc, found) for name, doc, found in mismatches),
            [
                {"file": name, "document_id": doc.id, **asdict(found)}
                for name, doc, found in mismatches
            ],
        )
    return [
        attach_ground_truth(
            session=session,
            document=document,
            content=content,
            kind=kind,
            filename=name,
            author=author,
            confirm=True,  # checked above
        )
        for (name, content), document, kind in zip(files, documents, kinds, strict=True)
    ]


def _kind_of(name: str) -> GroundTruthKind:
    return GroundTruthKind.RECORDS if name.lower().endswith(".csv") else GroundTruthKind.TEXT


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
