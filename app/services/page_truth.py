"""The ground truth a page of a run is shown against: its own, or its slice of the document's.

Page-level ground truth, where attached, wins; otherwise the document's ground truth is aligned
to the run's text of all the document's pages (app/metrics/alignment.py) and the page gets its
slice. Either way the version is the one the run's latest evaluation used, so the page agrees
with the run's scores; the current version where the run was not evaluated with one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Document, GroundTruth, GroundTruthKind, Page, Run
from app.metrics.alignment import PageAlignment, align_document
from app.metrics.text import score_text
from app.pipeline.evaluation import current_ground_truth, page_texts


@dataclass(frozen=True)
class PageTruth:
    """A page's aligned ground truth: where it came from and the stage it was aligned to."""

    source: Literal["page", "document"]
    stage: str
    alignment: PageAlignment


def document_ground_truth(session: Session, run: Run, document_id: int) -> GroundTruth | None:
    """The document's own text ground truth, in the version the run's scores used."""
    used = [
        entry["id"]
        for entry in (run.metrics or {}).get("ground_truth", [])
        if entry["kind"] == GroundTruthKind.TEXT
        and entry["page_id"] is None
        and entry["document_id"] == document_id
    ]
    query = select(GroundTruth).where(
        GroundTruth.document_id == document_id,
        GroundTruth.page_id.is_(None),
        GroundTruth.kind == GroundTruthKind.TEXT,
    )
    query = query.where(GroundTruth.id == used[0]) if used else query.where(current_ground_truth())
    return session.scalar(query)


def _lines(text: str | None) -> list[str]:
    """A stage's page text as its lines (line `position` is the Line row of that position)."""
    return (text or "").split("\n")


def page_truth(
    session: Session, run: Run, page: Page, stage: str, own: GroundTruth | None
) -> PageTruth | None:
    """The page's ground truth aligned to `stage`'s reviewed text (latest versions), or None
    where there is none; `own` is the page's own ground truth (`page_ground_truth`), which wins
    over the document's."""
    texts = page_texts(session, run, stage, document_id=page.document_id, version="latest")
    if own is not None:
        aligned = align_document(own.content, [_lines(texts.get(page.id))])[0]
        # A page with its own file is scored on it alone, exactly as the run's page scores.
        scores = score_text(own.content, texts.get(page.id) or "")
        aligned = replace(aligned, cer=scores.cer, cer_normalized=scores.cer_normalized)
        return PageTruth("page", stage, aligned)
    truth = document_ground_truth(session, run, page.document_id)
    if truth is None:
        return None
    pages = session.get_one(Document, page.document_id).pages
    index = [p.id for p in pages].index(page.id)
    hypothesis = tuple(tuple(_lines(texts.get(p.id))) for p in pages)
    return PageTruth("document", stage, _align_cached(truth.content, hypothesis)[index])


@lru_cache(maxsize=8)
def _align_cached(reference: str, pages: tuple[tuple[str, ...], ...]) -> tuple[PageAlignment, ...]:
    """The document alignment, kept for the next page of the same document: a reviewer pages
    through it, and the whole document is aligned for each page (about 0.5 s for the 24,000
    characters of the five benchmark documents together, growing faster than linearly). Keyed
    by the texts themselves, so a changed text or ground truth is aligned afresh."""
    return tuple(align_document(reference, pages))
