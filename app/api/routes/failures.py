"""A run's failed pages: which pages did not get through which stage, and why."""

from fastapi import APIRouter
from sqlalchemy import select

from app.api.deps import RunDep, SessionDep
from app.api.responses import DocumentedRoute
from app.db.tables import Document, Page, StageResult, StageStatus
from app.schemas.failures import FailedPage

router = APIRouter(tags=["runs"], route_class=DocumentedRoute)


@router.get("/runs/{run_id}/failed-pages", response_model=list[FailedPage])
def list_failed_pages(run: RunDep, session: SessionDep) -> list[FailedPage]:
    """Every failed or skipped stage of the run's pages, by document, page and stage, with the
    error; `no_text` marks the pages that have no final text and so count as empty text in the
    scores (100 % CER on that page's ground truth)."""
    final = run.config.final_text_stage
    rows = session.execute(
        select(StageResult, Page.number, Document.id, Document.filename)
        .join(Page, Page.id == StageResult.page_id)
        .join(Document, Document.id == Page.document_id)
        .where(
            StageResult.run_id == run.id,
            StageResult.status.in_([StageStatus.FAILED, StageStatus.SKIPPED]),
        )
        .order_by(Document.id, Page.number, StageResult.position)
    ).all()
    no_text = {result.page_id for result, *_ in rows if result.stage == final}
    return [
        FailedPage(
            document_id=document_id,
            filename=filename,
            page_id=result.page_id,
            page_number=number,
            stage=result.stage,
            status=result.status,
            error=result.error,
            no_text=result.page_id in no_text,
        )
        for result, number, document_id, filename in rows
    ]
