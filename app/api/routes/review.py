"""The review queue: a run's pages, the probably worst first (app/pipeline/quality.py)."""

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import RunDep, SessionDep
from app.api.responses import DocumentedRoute
from app.pipeline.quality import run_estimates
from app.pipeline.versions import verified_pages

router = APIRouter(tags=["review"], route_class=DocumentedRoute)


class ReviewItem(BaseModel):
    """A page to review, with how wrong its text is estimated to be."""

    page_id: int
    document_id: int
    page_number: int
    estimated_cer: float = Field(
        description="estimated character error rate of the page's latest text, 0–1, from the "
        "engines' confidences, the text's plausibility and the share of unparsed lines "
        "(no ground truth used); 1.0 for a page with no text"
    )
    verified: bool = Field(description="whether a reviewer has verified the page")


@router.get("/runs/{run_id}/review-queue", response_model=list[ReviewItem])
def review_queue(run: RunDep, session: SessionDep) -> list[ReviewItem]:
    """The run's pages ordered by estimated error, highest first (ties in document and page
    order); pages a reviewer has verified come last, with `verified: true`."""
    estimates = run_estimates(session, run)
    verified = verified_pages(session, run.id)
    ordered = sorted(estimates, key=lambda e: (e.page_id in verified, -e.estimated_cer))
    return [
        ReviewItem(
            page_id=e.page_id,
            document_id=e.document_id,
            page_number=e.page_number,
            estimated_cer=e.estimated_cer,
            verified=e.page_id in verified,
        )
        for e in ordered
    ]
