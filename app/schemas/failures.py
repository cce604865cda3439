"""A run's pages that did not get through a stage, and why."""

from pydantic import BaseModel


class FailedPage(BaseModel):
    """One page on which a stage failed (or was skipped because the stage before it failed)."""

    document_id: int
    filename: str
    page_id: int
    page_number: int
    stage: str
    status: str
    error: str | None
    #: Whether the page has no text from the run's final text stage: it counts as empty text
    #: against its ground truth (every reference character an error: 100 % CER on the page).
    no_text: bool
