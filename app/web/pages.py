"""The browser UI: server-rendered pages that the scripts in frontend/static keep live."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api.actor import ActorDep
from app.api.deps import DocumentDep, ProjectDep, RunDep, SessionDep
from app.api.views import documents_public, run_public, runs_public
from app.db.tables import Document, Project, Run, run_documents
from app.errors import NotFound
from app.services.accounts import visible_project_ids
from app.web.templates import TEMPLATES

router = APIRouter(include_in_schema=False)


def _render(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, name, context)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, session: SessionDep, actor: ActorDep) -> HTMLResponse:
    """The projects the user may see."""
    query = select(Project).order_by(Project.id.desc())
    visible = visible_project_ids(session, actor)
    if visible is not None:
        query = query.where(Project.id.in_(visible))
    projects = session.scalars(query).all()
    return _render(request, "index.html", {"projects": projects})


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project: ProjectDep, session: SessionDep) -> HTMLResponse:
    """A project: upload, documents, runs."""
    runs = session.scalars(select(Run).where(Run.project_id == project.id).order_by(Run.id.desc()))
    return _render(
        request,
        "project.html",
        {
            "project": project,
            "documents": documents_public(session, Document.project_id == project.id),
            "runs": runs_public(session, runs.all()),
        },
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run: RunDep, session: SessionDep) -> HTMLResponse:
    """A run: progress, scores, downloads, its documents and pages."""
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
        {"run": run_public(session, run), "project": project, "documents": documents},
    )


@router.get("/runs/{run_id}/documents/{document_id}", response_class=HTMLResponse)
def document_page(
    request: Request, run: RunDep, document: DocumentDep, session: SessionDep
) -> HTMLResponse:
    """A document in a run: each page image beside its text, with CER where ground truth exists."""
    if document.id not in {d.id for d in run.documents}:
        raise NotFound(f"document {document.id} is not part of run {run.id}")
    project = session.get_one(Project, run.project_id)
    return _render(
        request,
        "document.html",
        {"run": run_public(session, run), "project": project, "document": document},
    )
