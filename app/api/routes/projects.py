"""Projects: creating, listing, renaming and deleting them; their record schemas; checking a
run's engines before it starts."""

from typing import Any

from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.actor import ActorDep
from app.api.deps import ProjectDep, SessionDep, SettingsDep, StorageDep
from app.api.idempotency import IdempotencyDep
from app.api.responses import DocumentedRoute, errors
from app.db.accounts import Role, User
from app.db.tables import Project
from app.errors import Forbidden
from app.pipeline.preflight import check_engines
from app.pipeline.run_config import build_run_config, default_stages
from app.schemas.projects import (
    ProjectCreate,
    ProjectPublic,
    ProjectUpdate,
    RecordFieldPublic,
    SchemaPublic,
    SchemaUpdate,
)
from app.schemas.runs import RunCreate
from app.services.accounts import require_role, set_member, visible_project_ids
from app.services.housekeeping import delete_project, remove_files, rename_project
from app.services.projects import create_project
from app.services.runs import select_documents
from app.services.schemas import (
    SchemaVersion,
    current_schema,
    current_versions,
    define_schema,
    schema_history,
    start_schema,
)
from models.stages.schema import RecordField

router = APIRouter(prefix="/projects", tags=["projects"], route_class=DocumentedRoute)


def projects_public(session: Session, projects: list[Project]) -> list[ProjectPublic]:
    """Projects with their schema versions (one statement for the versions of all)."""
    versions = current_versions(session, [project.id for project in projects])
    return [
        ProjectPublic.model_validate(project).model_copy(
            update={"schema_version": versions[project.id]}
        )
        for project in projects
    ]


def schema_public(schema: SchemaVersion) -> SchemaPublic:
    """A schema version as the API shows it."""
    return SchemaPublic(
        version=schema.version,
        fields=[RecordFieldPublic.model_validate(field) for field in schema.fields],
        author=schema.author,
        created_at=schema.created_at,
    )


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ProjectPublic, responses=errors(409)
)
def create(
    body: ProjectCreate, session: SessionDep, actor: ActorDep, idempotency: IdempotencyDep
) -> ProjectPublic:
    """Create a project (names are unique) with its record schema: `record_fields` with their
    meaning, or `schema_fields` (names alone), or the city-directory fields when neither is
    given. Its creator is its owner."""
    if actor.read_only:
        raise Forbidden("a read-only token cannot create projects")
    project = create_project(
        session=session,
        name=body.name,
        description=body.description,
        schema_fields=body.schema_fields,
    )
    if body.record_fields is not None:
        fields = [RecordField.model_validate(f.model_dump()) for f in body.record_fields]
        start_schema(session=session, project=project, fields=fields, author=actor.name)
    else:
        start_schema(
            session=session,
            project=project,
            fields=current_schema(session, project).fields,
            author=actor.name,
        )
    if actor.user_id is not None:
        set_member(session, project.id, session.get_one(User, actor.user_id), Role.OWNER)
    return idempotency.save(projects_public(session, [project])[0])


@router.get("", response_model=list[ProjectPublic])
def list_projects(session: SessionDep, actor: ActorDep) -> list[ProjectPublic]:
    """The projects the caller may see (an administrator: all), newest first."""
    query = select(Project).order_by(Project.id.desc())
    visible = visible_project_ids(session, actor)
    if visible is not None:
        query = query.where(Project.id.in_(visible))
    return projects_public(session, list(session.scalars(query)))


@router.get("/{project_id}", response_model=ProjectPublic)
def get_project(project: ProjectDep, session: SessionDep) -> ProjectPublic:
    """One project."""
    return projects_public(session, [project])[0]


@router.patch("/{project_id}", response_model=ProjectPublic, responses=errors(409))
def update_project(body: ProjectUpdate, project: ProjectDep, session: SessionDep) -> ProjectPublic:
    """Rename a project or change its description (editors and owners)."""
    rename_project(session=session, project=project, name=body.name, description=body.description)
    return projects_public(session, [project])[0]


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_project(
    project: ProjectDep, session: SessionDep, actor: ActorDep, storage: StorageDep
) -> Response:
    """Delete a project with its documents, runs (running ones are cancelled first), ground
    truth and schema versions; its stored files go unless another project holds the same file.
    Only the project's owners (and administrators) may."""
    require_role(session, actor, project.id, Role.OWNER)
    orphans = delete_project(session=session, project=project)
    session.commit()  # the files go only once the rows are gone for good
    remove_files(storage, orphans)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project_id}/schema", response_model=SchemaPublic)
def get_schema(project: ProjectDep, session: SessionDep) -> SchemaPublic:
    """The project's current record schema: the fields new runs extract, in column order."""
    return schema_public(current_schema(session, project))


@router.get("/{project_id}/schema/versions", response_model=list[SchemaPublic])
def list_schema_versions(project: ProjectDep, session: SessionDep) -> list[SchemaPublic]:
    """Every version of the project's schema, oldest first (a run names the one it used)."""
    return [schema_public(version) for version in schema_history(session, project)]


@router.put("/{project_id}/schema", response_model=SchemaPublic, responses=errors(409))
def put_schema(
    body: SchemaUpdate, project: ProjectDep, session: SessionDep, actor: ActorDep
) -> SchemaPublic:
    """Give the project a new record schema (the next version; the same fields as now change
    nothing). Runs already started keep theirs; the CSV of a run has its schema's columns in
    its order. 409 when a document's records ground truth lacks a column of the new schema."""
    fields = [RecordField.model_validate(f.model_dump()) for f in body.fields]
    schema, _ = define_schema(session=session, project=project, fields=fields, author=actor.name)
    return schema_public(schema)


@router.post("/{project_id}/runs/preflight", responses=errors(503))
def preflight_run(
    body: RunCreate, project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> dict[str, Any]:
    """Check a run before starting it: what starting it would refuse (an engine that cannot do
    a stage, no model, an endpoint that does not answer or does not serve the model: 503) is
    refused here the same way, and nothing starts. The run form asks this as it is filled in."""
    stages = default_stages() if body.stages is None else list(body.stages)
    schema = current_schema(session, project)
    config = build_run_config(stages=stages, schema_fields=schema.fields, settings=settings)
    select_documents(session=session, project=project, document_ids=body.document_ids)
    check_engines(config, settings)
    return {
        "ready": True,
        "stages": [
            {"stage": stage.stage, "engine": stage.engine, "model": stage.parameters.get("model")}
            for stage in config.stages
        ],
    }
