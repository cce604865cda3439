"""Small factories for database rows: a project, documents with pages, a run over them."""

from collections.abc import Sequence
from itertools import count

from sqlalchemy.orm import Session

from app.db.tables import Document, DocumentStatus, Page, Project, Run
from app.pipeline.run_config import RunConfig, StageConfig

_numbers = count(1)


def add_project(session: Session, name: str = "") -> Project:
    """A project with the default record schema."""
    project = Project(name=name or f"project {next(_numbers)}")
    session.add(project)
    session.flush()
    return project


def add_document(
    session: Session, project: Project, *, pages: int, status: str = DocumentStatus.READY
) -> Document:
    """A document in `status` with `pages` pages (ingest has stored their images)."""
    number = next(_numbers)
    document = Document(
        project=project,
        filename=f"scan-{number}.pdf",
        media_type="application/pdf",
        sha256=f"{number:064x}",
        size_bytes=1000,
        storage_key=f"documents/{number}",
        status=status,
        page_count=pages,
    )
    document.pages = [
        Page(number=n, image_key=f"pages/{number}-{n}.png", width=100, height=150)
        for n in range(1, pages + 1)
    ]
    session.add(document)
    session.flush()
    return document


def stages(*names: str, batch_size: int = 1, queue: str = "cpu") -> RunConfig:
    """A run configuration with the named stages on one engine, as the scheduler reads it."""
    return RunConfig(
        stages=tuple(
            StageConfig(stage=name, engine="test", queue=queue, batch_size=batch_size)  # type: ignore[arg-type]
            for name in names
        )
    )


def add_run(
    session: Session, project: Project, documents: Sequence[Document], config: RunConfig
) -> Run:
    """A pending run of `config` over `documents`."""
    run = Run(project_id=project.id, config=config, documents=list(documents))
    session.add(run)
    session.flush()
    return run
