"""A project's training set for its own recogniser, from what the project already knows.

Two kinds of line are training data, both from runs whose OCR was Tesseract (the lines have
boxes in the page image and the page can be prepared again exactly as the run read it):

- **verified pages**: a reviewer said the page's text is right, so every line of the run's
  final text, in its latest version, is the true text of its box;
- **ground truth**: a document's (or a page's) attached transcription aligned to the OCR's
  lines (`app.pipeline.adapt.align_truth`, which keeps text the OCR missed at a line's edge
  with the line it was printed on); a line is left out when its alignment is unsure, its OCR
  is more than half wrong or too much is missing at its edges (`LineTruth.usable`).

Each page contributes from one run only, so no line is trained twice: where it is verified,
the newest run it was verified in; otherwise the newest run that read all of its document.

Planning (which lines, with which text) needs only the database, so a request can count the
lines before it queues a training (an upper bound: cutting leaves out the lines whose box no
printed line confirms); cutting the images is the training task's work
(app/services/recognizer_lines.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.review import PageVerification
from app.db.tables import Document, GroundTruth, GroundTruthKind, Line, Page, Run, StageResult
from app.db.tables import StageStatus as Status
from app.pipeline.adapt import LineTruth, align_truth
from app.pipeline.evaluation import current_ground_truth
from app.pipeline.run_config import TEXT_STAGES, RunConfig
from app.pipeline.versions import lines_with_edits
from models.ocr.layout import Box
from models.ocr.truthforms import in_reading_forms

Source = Literal["verified", "ground_truth"]


@dataclass(frozen=True)
class PlannedLine:
    """A line to cut: its box in page-image pixels and its true text."""

    position: int
    box: Box
    text: str
    source: Source
    #: What the run's engine read there (to find the line again when it is cut).
    reading: str = ""
    #: Ground-truth characters the OCR missed at the line's start and end (the cut is widened
    #: by as many of the line's characters), and the length of its OCR to estimate their width.
    missing_before: int = 0
    missing_after: int = 0
    ocr_length: int = 0


@dataclass(frozen=True)
class PlannedPage:
    """A page's lines, and how to prepare its image as the run that read them did."""

    page_id: int
    document_id: int
    number: int
    run_id: int
    image_key: str
    dpi: int | None
    #: The run's Tesseract parameters (page preparation) and the quarter turn it applied.
    parameters: dict[str, Any]
    rotate: int
    lines: tuple[PlannedLine, ...]


@dataclass(frozen=True)
class TrainingPlan:
    """A project's training set before its images are cut."""

    pages: tuple[PlannedPage, ...]

    def count(self, source: Source | None = None) -> int:
        """Lines in the set (of one source when given)."""
        return sum(1 for page in self.pages for line in page.lines if source in (None, line.source))

    def counts(self) -> dict[str, int]:
        """Lines in all, from verified pages and from ground truth, and the pages."""
        return {
            "lines": self.count(),
            "verified_lines": self.count("verified"),
            "ground_truth_lines": self.count("ground_truth"),
            "pages": sum(1 for page in self.pages if page.lines),
        }


@dataclass(frozen=True)
class _Result:
    id: int
    layout: dict[str, Any] | None


def tesseract_runs(session: Session, project_id: int) -> dict[int, RunConfig]:
    """The project's runs whose OCR is Tesseract, by id."""
    rows = session.execute(select(Run.id, Run.config).where(Run.project_id == project_id))
    return {
        run_id: config
        for run_id, config in rows
        if config.has_stage("ocr") and config.stage("ocr").engine == "tesseract"
    }


def plan_training_set(session: Session, project_id: int) -> TrainingPlan:
    """The project's training lines (see the module docstring)."""
    runs = tesseract_runs(session, project_id)
    if not runs:
        return TrainingPlan(())
    done = _done_results(session, list(runs))
    pages = {
        page.id: page
        for page in session.scalars(
            select(Page).join(Document).where(Document.project_id == project_id)
        )
    }
    verified = _verified_runs(session, runs, done)
    planned = [
        _verified_page(session, pages[page_id], run_id, runs[run_id], done)
        for page_id, run_id in sorted(verified.items())
    ]
    planned += _ground_truth_pages(session, project_id, runs, done, pages, set(verified))
    return TrainingPlan(tuple(sorted(planned, key=lambda p: (p.document_id, p.number))))


def _done_results(session: Session, run_ids: list[int]) -> dict[tuple[int, int, str], _Result]:
    """(run, page, stage) → the stage's result, for the text stages done in these runs."""
    rows = session.execute(
        select(
            StageResult.run_id,
            StageResult.page_id,
            StageResult.stage,
            StageResult.id,
            StageResult.page_layout,
        ).where(
            StageResult.run_id.in_(run_ids),
            StageResult.status == Status.DONE,
            StageResult.stage.in_(TEXT_STAGES),
        )
    )
    return {(r, p, s): _Result(i, layout) for r, p, s, i, layout in rows}


def _verified_runs(
    session: Session, runs: dict[int, RunConfig], done: dict[tuple[int, int, str], _Result]
) -> dict[int, int]:
    """Page id → the newest run it was verified in whose final text the page has."""
    chosen: dict[int, int] = {}
    rows = session.execute(
        select(PageVerification.run_id, PageVerification.page_id).where(
            PageVerification.run_id.in_(list(runs))
        )
    )
    for run_id, page_id in rows:
        final = runs[run_id].final_text_stage
        if (run_id, page_id, final) in done and (run_id, page_id, "ocr") in done:
            chosen[page_id] = max(run_id, chosen.get(page_id, 0))
    return chosen


def _verified_page(
    session: Session,
    page: Page,
    run_id: int,
    config: RunConfig,
    done: dict[tuple[int, int, str], _Result],
) -> PlannedPage:
    result = done[(run_id, page.id, config.final_text_stage)]
    rows = lines_with_edits(session, run_id, Line.stage_result_id == result.id)
    lines = []
    for line, edit in rows:
        text = (edit.text if edit is not None else line.text).strip()
        if not text or not _fits(line.bbox):
            continue
        if edit is None and line.diplomatic:
            text = line.diplomatic.strip()  # unchanged: the reading itself, in its letter forms
        elif line.diplomatic:
            text = in_reading_forms(text, line.diplomatic)
        lines.append(PlannedLine(line.position, _box(line.bbox), text, "verified", line.text))
    return _page(page, run_id, config, done[(run_id, page.id, "ocr")], lines)


def _ground_truth_pages(
    session: Session,
    project_id: int,
    runs: dict[int, RunConfig],
    done: dict[tuple[int, int, str], _Result],
    pages: dict[int, Page],
    verified: set[int],
) -> list[PlannedPage]:
    """The usable aligned lines of the pages with ground truth that no one verified."""
    truths = session.scalars(
        select(GroundTruth)
        .join(Document)
        .where(
            Document.project_id == project_id,
            GroundTruth.kind == GroundTruthKind.TEXT,
            current_ground_truth(),
        )
    ).all()
    by_document: dict[int, list[GroundTruth]] = {}
    for truth in truths:
        by_document.setdefault(truth.document_id, []).append(truth)
    planned = []
    for document_id, found in sorted(by_document.items()):
        document_pages = sorted(
            (p for p in pages.values() if p.document_id == document_id), key=lambda p: p.number
        )
        run_id = _newest_complete_run(runs, done, document_pages)
        if run_id is None or not document_pages:
            continue
        read = {
            page.id: _ocr_lines(session, done[(run_id, page.id, "ocr")].id)
            for page in document_pages
        }
        aligned = _aligned(found, document_pages, read)
        for page in document_pages:
            if page.id in verified or page.id not in aligned:
                continue
            lines = _truth_lines(read[page.id], aligned[page.id])
            planned.append(_page(page, run_id, runs[run_id], done[(run_id, page.id, "ocr")], lines))
    return planned


def _newest_complete_run(
    runs: dict[int, RunConfig], done: dict[tuple[int, int, str], _Result], pages: list[Page]
) -> int | None:
    """The newest run whose OCR read every page of the document."""
    complete = [
        run_id for run_id in runs if all((run_id, page.id, "ocr") in done for page in pages)
    ]
    return max(complete) if complete else None


def _ocr_lines(session: Session, result_id: int) -> list[Line]:
    return list(
        session.scalars(
            select(Line).where(Line.stage_result_id == result_id).order_by(Line.position)
        )
    )


def _aligned(
    truths: list[GroundTruth], pages: list[Page], read: dict[int, list[Line]]
) -> dict[int, list[LineTruth]]:
    """Page id → its lines' share of the ground truth: a page's own file where it has one, the
    document's (aligned over all its pages) otherwise."""
    out: dict[int, list[LineTruth]] = {}
    document = next((t for t in truths if t.page_id is None), None)
    if document is not None:
        cut = align_truth(document.content, [[ln.text for ln in read[p.id]] for p in pages])
        out = {page.id: lines for page, lines in zip(pages, cut.lines, strict=True)}
    for truth in truths:
        if truth.page_id is not None and truth.page_id in read:
            own = align_truth(truth.content, [[ln.text for ln in read[truth.page_id]]])
            out[truth.page_id] = own.lines[0]
    return out


def _truth_lines(lines: list[Line], truths: list[LineTruth]) -> list[PlannedLine]:
    planned = []
    for line, truth in zip(lines, truths, strict=True):
        if not truth.usable or not _fits(line.bbox):
            continue
        planned.append(
            PlannedLine(
                position=line.position,
                box=_box(line.bbox),
                text=in_reading_forms(truth.text, line.diplomatic or line.text),
                source="ground_truth",
                reading=line.text,
                missing_before=truth.missing_before,
                missing_after=truth.missing_after,
                ocr_length=len(truth.ocr),
            )
        )
    return planned


def _fits(box: list[int] | None) -> bool:
    return box is not None and box[2] > box[0] and box[3] > box[1]


def _box(box: list[int] | None) -> Box:
    assert box is not None
    return (box[0], box[1], box[2], box[3])


def _page(
    page: Page, run_id: int, config: RunConfig, ocr: _Result, lines: Sequence[PlannedLine]
) -> PlannedPage:
    return PlannedPage(
        page_id=page.id,
        document_id=page.document_id,
        number=page.number,
        run_id=run_id,
        image_key=page.image_key or "",
        dpi=page.dpi,
        parameters=dict(config.stage("ocr").parameters),
        rotate=int((ocr.layout or {}).get("rotate") or 0),
        lines=tuple(lines),
    )
