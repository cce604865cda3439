"""Projects."""

from fastapi import APIRouter, status
from sqlalchemy import select

from app.api.actor import ActorDep
from app.api.deps import ProjectDep, SessionDep
from app.api.idempotency import IdempotencyDep
from app.api.responses import DocumentedRoute, errors
from app.db.accounts import Role, User
from app.db.tables import Project
from app.errors import Forbidden
from app.schemas.projects import ProjectCreate, ProjectPublic
from app.services.accounts import set_member, visible_project_ids
from app.services.projects import create_project

router = APIRouter(prefix="/projects", tags=["projects"], route_class=DocumentedRoute)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ProjectPublic, responses=errors(409)
)
def create(
    body: ProjectCreate, session: SessionDep, actor: ActorDep, idempotency: IdempotencyDep
) -> Project:
    """Create a project (names are unique; the schema defaults to the city-directory fields);
    its creator is its owner."""
    if actor.read_only:
        raise Forbidden("a read-only token cannot create projects")
    project = create_project(
        session=session,
        name=body.name,
        description=body.description,
        schema_fields=body.schema_fields,
    )
    if actor.user_id is not None:
        set_member(session, project.id, session.get_one(User, actor.user_id), Role.OWNER)
    return idempotency.save(project)


@router.get("", response_model=list[ProjectPublic])
def list_projects(session: SessionDep, actor: ActorDep) -> list[Project]:
    """The projects the caller may see (an administrator: all), newest first."""
    query = select(Project).order_by(Project.id.desc())
    visible = visible_project_ids(session, actor)
    if visible is not None:
        query = query.where(Project.id.in_(visible))
    return list(session.scalars(query))


@router.get("/{project_id}", response_model=ProjectPublic)
def get_project(project: ProjectDep) -> Project:
    """One project."""
    return project
