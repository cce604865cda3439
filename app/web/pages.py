"""The browser UI: server-rendered pages that the scripts in frontend/static keep live."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.api.actor import ActorDep
from app.api.deps import DocumentDep, ProjectDep, RunDep, SessionDep
from app.api.views import (
    document_public,
    documents_public,
    page_public,
    run_public,
    runs_public,
)
from app.db.accounts import Role
from app.db.tables import Document, Project, Run, run_documents
from app.errors import NotFound
from app.services.accounts import project_role, visible_project_ids
from app.services.projects import ground_truth_versions
from app.services.schemas import current_schema
from app.web.templates import TEMPLATES
from models.registry import engine_specs
from models.stages.schema import DEFAULT_RECORD_FIELDS

router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep, actor: ActorDep) -> HTMLResponse:
    """The projects the user may see, and a form for a new one with its record fields."""
    query = select(Project).order_by(Project.id.desc())
    visible = visible_project_ids(session, actor)
    if visible is not None:
        query = query.where(Project.id.in_(visible))
    projects = session.scalars(query).all()
    return _render(
        request,
        "index.html",
        {
            "projects": projects,
            "default_fields": [field.model_dump() for field in DEFAULT_RECORD_FIELDS],
        },
    )


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(
    request: Request, project: ProjectDep, session: SessionDep, actor: ActorDep
) -> HTMLResponse:
    """A project: its record schema, upload, documents, runs; renaming and deleting."""
    runs = session.scalars(select(Run).where(Run.project_id == project.id).order_by(Run.id.desc()))
    schema = current_schema(session, project)
    return _render(
        request,
        "project.html",
        {
            "project": project,
            "schema": schema,
            "schema_json": [field.model_dump() for field in schema.fields],
            "default_fields": [field.model_dump() for field in DEFAULT_RECORD_FIELDS],
            "documents": documents_public(session, Document.project_id == project.id),
            "latest_runs": latest_runs(session, project.id),
            "runs": runs_public(session, runs.all()),
            "owner": project_role(session, actor, project.id) == Role.OWNER,
        },
    )


@router.get("/documents/{document_id}", response_class=HTMLResponse)
def document_overview(request: Request, document: DocumentDep, session: SessionDep) -> HTMLResponse:
    """A document outside any run: its pages, ground truth and the runs over it."""
    project = session.get_one(Project, document.project_id)
    runs = session.scalars(
        select(Run)
        .join(run_documents, run_documents.c.run_id == Run.id)
        .where(run_documents.c.document_id == document.id)
        .order_by(Run.id.desc())
    ).all()
    return _render(
        request,
        "document_overview.html",
        {
            "project": project,
            "document": document_public(session, document),
            "pages": [page_public(page) for page in document.pages],
            "ground_truth": ground_truth_versions(session, document),
            "page_numbers": {page.id: page.number for page in document.pages},
            "runs": runs_public(session, list(runs)),
        },
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run: RunDep, session: SessionDep) -> HTMLResponse:
    """A run: progress, scores, failed pages, downloads, its documents and pages."""
    project = session.get_one(Project, run.project_id)
    documents = session.scalars(
        select(Document)
        .join(run_documents, run_documents.c.document_id == Document.id)
        .where(run_documents.c.run_id == run.id)
        .options(selectinload(Document.pages))  # the template counts each document's pages
        .order_by(Document.id)
    ).all()
    return _render(
        request,
        "run.html",
        {
            "run": run_public(session, run),
            "project": project,
            "documents": documents,
            "parameter_help": parameter_help(),
        },
    )


def latest_runs(session: Session, project_id: int) -> dict[int, Run]:
    """Document id → the newest run of the project over it (where a document's name leads)."""
    rows = session.execute(
        select(run_documents.c.document_id, Run)
        .join(Run, Run.id == run_documents.c.run_id)
        .where(Run.project_id == project_id)
        .order_by(Run.id)
    ).all()
    return {document_id: run for document_id, run in rows}


def parameter_help() -> dict[str, dict[str, str]]:
    """Engine → parameter → what it means, from the engines' specs (the run page explains the
    settings a run recorded, psm and oem among them, in the words the spec gives them)."""
    return {
        name: {parameter.name: parameter.description for parameter in spec.parameters}
        for name, spec in engine_specs().items()
    }


@router.get("/runs/{run_id}/documents/{document_id}", response_class=HTMLResponse)
def document_page(
    request: Request, run: RunDep, document: DocumentDep, session: SessionDep
) -> HTMLResponse:
    """A document in a run: the review workspace, each page's scan beside its lines."""
    if document.id not in {d.id for d in run.documents}:
        raise NotFound(f"document {document.id} is not part of run {run.id}")
    project = session.get_one(Project, run.project_id)
    public = run_public(session, run)
    # What the script starts from, so it asks for no image a page does not have (a text-only
    # document has none) and knows whether the run extracts records before any page has run.
    workspace = {
        "run": {
            "id": run.id,
            "status": public.status,
            "extracts": run.config.has_stage("extract"),
            "fields": [
                {"name": f.name, "description": f.description} for f in run.config.record_schema
            ],
        },
        "document": {"id": document.id, "status": document.status, "error": document.error},
        "pages": [page_public(page).model_dump(mode="json") for page in document.pages],
    }
    return _render(
        request,
        "document.html",
        {"run": public, "project": project, "document": document, "workspace": workspace},
    )
