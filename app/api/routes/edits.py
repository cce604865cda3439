"""Reviewing a run: correct lines, edit/add/delete records, undo, verify pages.

Every change names the version it was made to (`version`); a change to a version that is no
longer current answers 409 with the current state in `current`, so two reviewers never
overwrite each other silently. Engine output is never changed (app/services/review.py).
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from app.api.actor import ActorDep
from app.api.deps import (
    LineDep,
    OutboxDep,
    PageDep,
    RecordDep,
    RunDep,
    SessionDep,
    SettingsDep,
)
from app.api.responses import DocumentedRoute, errors
from app.db.tables import MAX_ID, Line, Page, Project, Record, Run, StageResult
from app.errors import NotFound
from app.pipeline.provenance import field_provenance
from app.schemas.runs import RecordPublic, Verification
from app.services import review
from app.services.recognizers import after_verification
from app.services.review import HistoryEntry

router = APIRouter(tags=["review"], route_class=DocumentedRoute, responses=errors(409))

#: Longest line text or field value a reviewer can store (a printed line is < 200 characters).
MAX_TEXT = 10_000


class LineChange(BaseModel):
    """A corrected line: the new text and the version it corrects."""

    text: str = Field(max_length=MAX_TEXT, description="the line's new text (no line breaks)")
    version: int = Field(
        ge=1, le=MAX_ID, description="the version the edit was made to (409 if not current)"
    )


class VersionRef(BaseModel):
    """The version a change was made to."""

    version: int = Field(ge=1, le=MAX_ID, description="the current version (409 if it is not)")


class LineState(BaseModel):
    """A line as it is now."""

    id: int
    run_id: int
    page_id: int
    stage: str
    position: int
    text: str
    version: int
    edited: bool
    engine_text: str
    bbox: list[int] | None


class LineVersionPublic(BaseModel):
    """One version of a line."""

    version: int
    text: str
    source: str = Field(description="engine, edit, or undo")
    author: str = Field(description="the reviewer, or the engine for version 1")
    created_at: datetime | None


FieldName = Annotated[str, Field(max_length=200)]
FieldValues = dict[FieldName, Annotated[str | None, Field(max_length=MAX_TEXT)]]


class RecordChange(BaseModel):
    """New values for some of a record's fields, and the version they change."""

    fields: FieldValues = Field(description="field → new value (null clears it)")
    version: int = Field(ge=1, le=MAX_ID, description="the version the change was made to")


class RecordCreate(BaseModel):
    """A record the engine missed."""

    fields: FieldValues = Field(description="field → value; fields left out are empty")
    line_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="the line it is read from"
    )


class RecordVersionPublic(BaseModel):
    """One version of a record."""

    version: int
    fields: dict[str, Any]
    deleted: bool
    source: str = Field(description="engine, edit, or undo")
    author: str
    created_at: datetime | None


class VerificationState(BaseModel):
    """Whether a page is verified."""

    run_id: int
    page_id: int
    verified: Verification | None


def _line_state(session: SessionDep, line: Line) -> LineState:
    version, text = review.line_current(session, line)
    return LineState(
        id=line.id,
        run_id=line.run_id,
        page_id=line.page_id,
        stage=session.get_one(StageResult, line.stage_result_id).stage,
        position=line.position,
        text=text,
        version=version,
        edited=version > 1,
        engine_text=line.text,
        bbox=line.bbox,
    )


def _record_public(session: SessionDep, record: Record) -> RecordPublic:
    version, fields, deleted = review.record_current(session, record)
    return RecordPublic(
        id=record.id,
        position=record.position,
        line_number=record.line_number,
        source_line=record.source_line,
        fields=fields,
        version=version,
        source=record.source,
        deleted=deleted,
        provenance=field_provenance(
            source=record.source,
            engine_fields=record.fields,
            engine_provenance=record.provenance,
            shown=fields,
        ),
    )


@router.get("/lines/{line_id}", response_model=LineState)
def get_line(line: LineDep, session: SessionDep) -> LineState:
    """A line's current text and version."""
    return _line_state(session, line)


@router.patch("/lines/{line_id}", response_model=LineState)
def edit_line(line: LineDep, body: LineChange, session: SessionDep, actor: ActorDep) -> LineState:
    """Correct a line: a new version (`version` + 1) with the text; the engine's stays."""
    review.edit_line(session, line, body.text, body.version, actor.name)
    return _line_state(session, line)


@router.post("/lines/{line_id}/undo", response_model=LineState)
def undo_line(line: LineDep, body: VersionRef, session: SessionDep, actor: ActorDep) -> LineState:
    """Undo a line's last change: a new version with the text it had before."""
    review.undo_line(session, line, body.version, actor.name)
    return _line_state(session, line)


@router.get("/lines/{line_id}/history", response_model=list[LineVersionPublic])
def line_history(line: LineDep, session: SessionDep) -> list[LineVersionPublic]:
    """Every version of a line, the engine's first."""
    return [_line_version(e) for e in review.line_history(session, line)]


def _line_version(entry: HistoryEntry) -> LineVersionPublic:
    return LineVersionPublic(
        version=entry.version,
        text=entry.text or "",
        source=entry.source,
        author=entry.author,
        created_at=entry.created_at,
    )


@router.patch("/records/{record_id}", response_model=RecordPublic)
def edit_record(
    record: RecordDep, body: RecordChange, session: SessionDep, actor: ActorDep
) -> RecordPublic:
    """Change some fields of a record: a new version; fields not named keep their values."""
    review.edit_record(session, record, body.fields, body.version, actor.name)
    return _record_public(session, record)


@router.delete("/records/{record_id}", response_model=RecordPublic)
def delete_record(
    record: RecordDep,
    session: SessionDep,
    actor: ActorDep,
    version: Annotated[int, Query(ge=1, le=MAX_ID, description="the record's current version")],
) -> RecordPublic:
    """Delete a record from the reviewed dataset (`latest`); the engine's output keeps it and
    the deletion can be undone."""
    review.delete_record(session, record, version, actor.name)
    return _record_public(session, record)


@router.post("/records/{record_id}/undo", response_model=RecordPublic)
def undo_record(
    record: RecordDep, body: VersionRef, session: SessionDep, actor: ActorDep
) -> RecordPublic:
    """Undo a record's last change (an edit or a deletion)."""
    review.undo_record(session, record, body.version, actor.name)
    return _record_public(session, record)


@router.get("/records/{record_id}/history", response_model=list[RecordVersionPublic])
def record_history(record: RecordDep, session: SessionDep) -> list[RecordVersionPublic]:
    """Every version of a record, oldest first."""
    return [
        RecordVersionPublic(
            version=e.version,
            fields=e.fields or {},
            deleted=e.deleted,
            source=e.source,
            author=e.author,
            created_at=e.created_at,
        )
        for e in review.record_history(session, record)
    ]


def _run_page(session: SessionDep, run: Run, page_id: int) -> None:
    page = session.get(Page, page_id)
    if page is None or page.document_id not in {d.id for d in run.documents}:
        raise NotFound(f"page {page_id} is not part of run {run.id}")


@router.post(
    "/runs/{run_id}/pages/{page_id}/records",
    response_model=RecordPublic,
    status_code=status.HTTP_201_CREATED,
)
def add_record(
    run: RunDep, page: PageDep, body: RecordCreate, session: SessionDep, actor: ActorDep
) -> RecordPublic:
    """Add a record the engine missed (version 1, source `edit`; only in `latest`)."""
    _run_page(session, run, page.id)
    line = None
    if body.line_id is not None:
        line = session.get(Line, body.line_id)
        if line is None:
            raise NotFound(f"line {body.line_id} not found")
    record = review.add_record(session, run, page.id, body.fields, line, actor.name)
    return _record_public(session, record)


@router.post("/runs/{run_id}/pages/{page_id}/verify", response_model=VerificationState)
def verify_page(
    run: RunDep,
    page: PageDep,
    session: SessionDep,
    actor: ActorDep,
    settings: SettingsDep,
    outbox: OutboxDep,
) -> VerificationState:
    """Mark a page verified: it leaves the review queue (verifying it again changes nothing).
    Its lines become training lines of the project's recogniser, which trains by itself when
    the project's threshold of newly verified lines is reached."""
    _run_page(session, run, page.id)
    row = review.verify_page(session, run, page.id, actor.name)
    project = session.get_one(Project, run.project_id)
    outbox.add(after_verification(session=session, settings=settings, project=project))
    return VerificationState(
        run_id=run.id, page_id=page.id, verified=Verification(author=row.author, at=row.created_at)
    )


@router.delete(
    "/runs/{run_id}/pages/{page_id}/verify",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
)
def unverify_page(run: RunDep, page: PageDep, session: SessionDep) -> Response:
    """Put a verified page back in the review queue."""
    _run_page(session, run, page.id)
    review.unverify_page(session, run, page.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
