"""A project's record schema: its current version, its history, and defining a new version."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db.schemas import ProjectSchema
from app.db.tables import Document, GroundTruth, GroundTruthKind, Project
from app.errors import Conflict, InvalidRequest
from app.identity import LOCAL
from app.metrics.records import read_records_csv
from app.pipeline.evaluation import current_ground_truth
from app.schemas.projects import MAX_SCHEMA_FIELDS
from models.stages.schema import DEFAULT_RECORD_FIELDS, RecordField, record_fields

#: Names a field may not have: `line`, the key under which extraction answers carry a record's
#: line number (models.base.LINE_KEY), and `id`, the column a ground-truth CSV may carry and the
#: reader leaves out (app.metrics.records.IGNORED_COLUMNS). A field named like a provenance
#: column of the exports (document, page, run, …) is fine: that column gets a prefix there.
RESERVED_FIELD_NAMES = frozenset({"id", "line"})


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a project's schema."""

    version: int
    fields: tuple[RecordField, ...]
    author: str
    #: None for the implicit first version of a project made before schemas had versions.
    created_at: datetime | None


def _version(row: ProjectSchema) -> SchemaVersion:
    return SchemaVersion(
        version=row.version,
        fields=tuple(RecordField.model_validate(field) for field in row.fields),
        author=row.author,
        created_at=row.created_at,
    )


def _implicit(project: Project) -> SchemaVersion:
    """Version 1 of a project that has no stored version (made by `histocr process`, or by
    code that creates the row directly): its field names with the default meanings."""
    return SchemaVersion(
        version=1, fields=record_fields(project.schema_fields), author=LOCAL, created_at=None
    )


def current_schema(session: Session, project: Project) -> SchemaVersion:
    """The project's schema as new runs use it."""
    row = session.scalar(
        select(ProjectSchema)
        .where(ProjectSchema.project_id == project.id)
        .order_by(ProjectSchema.version.desc())
        .limit(1)
    )
    return _version(row) if row is not None else _implicit(project)


def schema_history(session: Session, project: Project) -> list[SchemaVersion]:
    """Every version of the project's schema, oldest first."""
    rows = session.scalars(
        select(ProjectSchema)
        .where(ProjectSchema.project_id == project.id)
        .order_by(ProjectSchema.version)
    ).all()
    return [_version(row) for row in rows] or [_implicit(project)]


def check_fields(fields: Sequence[RecordField]) -> tuple[RecordField, ...]:
    """The fields, trimmed, or InvalidRequest saying what is wrong with them."""
    cleaned = tuple(
        field.model_copy(
            update={
                "name": field.name.strip(),
                "description": field.description.strip(),
                "example": field.example.strip(),
            }
        )
        for field in fields
    )
    if not cleaned:
        raise InvalidRequest("a schema needs at least one field")
    if len(cleaned) > MAX_SCHEMA_FIELDS:
        raise InvalidRequest(f"a schema has at most {MAX_SCHEMA_FIELDS} fields")
    seen: set[str] = set()
    for field in cleaned:
        key = field.name.casefold()
        if not key:
            raise InvalidRequest("every field needs a name")
        if key in seen:
            # "Surname" and "surname" would be two columns no one can tell apart.
            raise InvalidRequest(
                f"the field {field.name!r} appears twice (names are compared "
                "without regard to case)"
            )
        if key in RESERVED_FIELD_NAMES:
            raise InvalidRequest(
                f"{field.name!r} cannot be a field name: exports and extraction use it "
                f"(reserved: {', '.join(sorted(RESERVED_FIELD_NAMES))})"
            )
        seen.add(key)
    return cleaned


def start_schema(
    *,
    session: Session,
    project: Project,
    fields: Sequence[RecordField] | None = None,
    author: str = LOCAL,
) -> SchemaVersion:
    """Version 1 of a new project's schema (the city-directory fields when none are given)."""
    chosen = check_fields(fields or DEFAULT_RECORD_FIELDS)
    project.schema_fields = [field.name for field in chosen]
    row = ProjectSchema(
        project_id=project.id,
        version=1,
        fields=[field.model_dump() for field in chosen],
        author=author,
    )
    session.add(row)
    session.flush()
    return _version(row)


def define_schema(
    *, session: Session, project: Project, fields: Sequence[RecordField], author: str = LOCAL
) -> tuple[SchemaVersion, bool]:
    """Make `fields` the project's schema: the next version, and whether it is new (the same
    fields as the current version add nothing). Runs keep the version they started with.

    Refused (409) when a document's current records ground truth lacks a column of the new
    schema: every run started afterwards would be scored against it and could not be.
    """
    chosen = check_fields(fields)
    _lock_project(session, project.id)
    current = current_schema(session, project)
    if current.fields == chosen:
        return current, False
    _check_ground_truth(session, project, [field.name for field in chosen])
    last = session.scalar(
        select(func.max(ProjectSchema.version)).where(ProjectSchema.project_id == project.id)
    )
    if last is None:  # keep the implicit version 1 as it was: runs may have used it
        session.add(
            ProjectSchema(
                project_id=project.id,
                version=1,
                fields=[field.model_dump() for field in current.fields],
                author=current.author,
            )
        )
        last = 1
    row = ProjectSchema(
        project_id=project.id,
        version=last + 1,
        fields=[field.model_dump() for field in chosen],
        author=author,
    )
    session.add(row)
    project.schema_fields = [field.name for field in chosen]
    session.flush()
    return _version(row), True


def _lock_project(session: Session, project_id: int) -> None:
    """Hold the project's row until the transaction ends, before reading the last version: two
    changes at once would otherwise both take the same number. An UPDATE that changes nothing,
    as it also takes SQLite's write lock."""
    session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(name=Project.name)
        .execution_options(synchronize_session=False)
    )


def _check_ground_truth(session: Session, project: Project, names: list[str]) -> None:
    """Refuse a schema the project's current records ground truth cannot be read with."""
    rows = session.execute(
        select(Document.filename, GroundTruth.filename, GroundTruth.content)
        .join(Document, Document.id == GroundTruth.document_id)
        .where(
            Document.project_id == project.id,
            GroundTruth.kind == GroundTruthKind.RECORDS,
            current_ground_truth(),
        )
        .order_by(Document.id)
    ).all()
    for document, truth, content in rows:
        try:
            read_records_csv(content, names)
        except ValueError as exc:
            raise Conflict(
                f"the records ground truth of {document} ({truth or 'CSV'}) does not fit the "
                f"new schema: {exc}. Attach a CSV with the new columns to it first."
            ) from exc


def current_versions(session: Session, project_ids: Sequence[int]) -> dict[int, int]:
    """Project id → its current schema version, in one statement (1 where none is stored)."""
    found = dict(
        session.execute(
            select(ProjectSchema.project_id, func.max(ProjectSchema.version))
            .where(ProjectSchema.project_id.in_(list(project_ids)))
            .group_by(ProjectSchema.project_id)
        ).all()
    )
    return {project_id: int(found.get(project_id) or 1) for project_id in project_ids}
