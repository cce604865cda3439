"""Projects."""

from fastapi import APIRouter, status
from sqlalchemy import select

from app.api.deps import ProjectDep, SessionDep
from app.db.tables import Project
from app.schemas.projects import ProjectCreate, ProjectPublic
from app.services.projects import create_project

router = APIRouter(prefix="/projects", tags=["projects"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProjectPublic)
def create(body: ProjectCreate, session: SessionDep) -> Project:
    """Create a project (names are unique; the schema defaults to the city-directory fields)."""
    return create_project(
        session=session,
        name=body.name,
        description=body.description,
        schema_fields=body.schema_fields,
    )


@router.get("", response_model=list[ProjectPublic])
def list_projects(session: SessionDep) -> list[Project]:
    """All projects, newest first."""
    return list(session.scalars(select(Project).order_by(Project.id.desc())))


@router.get("/{project_id}", response_model=ProjectPublic)
def get_project(project: ProjectDep) -> Project:
    """One project."""
    return project
