"""A page of a run: every stage's output, its lines with their boxes, its records, and how its
text compares with the ground truth."""

from collections.abc import Sequence

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import PageDep, RunDep, SessionDep
from app.api.responses import DocumentedRoute
from app.api.views import API
from app.db.review import LineVersion
from app.db.tables import Line, Record, Run, StageResult, StageStatus
from app.errors import NotFound
from app.metrics.alignment import PageAlignment
from app.metrics.text import score_text
from app.pipeline.quality import page_estimate
from app.pipeline.run_config import TEXT_STAGES
from app.pipeline.versions import current_records, lines_with_edits, verified_pages
from app.schemas.runs import (
    DiffOpPublic,
    LineDiff,
    LinePublic,
    PageCer,
    PageResult,
    RecordPublic,
    StageResultPublic,
    Verification,
)
from app.services.evaluations import page_ground_truth
from app.services.page_truth import PageTruth, page_truth

router = APIRouter(tags=["runs"], route_class=DocumentedRoute)


@router.get("/runs/{run_id}/pages/{page_id}", response_model=PageResult)
def get_page_result(run: RunDep, page: PageDep, session: SessionDep) -> PageResult:
    """Every stage's output for a page, its records, and its scores where ground truth exists."""
    results = session.scalars(
        select(StageResult)
        .where(StageResult.run_id == run.id, StageResult.page_id == page.id)
        .order_by(StageResult.position)
    ).all()
    if not results and page.document_id not in {d.id for d in run.documents}:
        raise NotFound(f"page {page.id} is not part of run {run.id}")
    lines = _page_lines(session, run, results)
    stage = lines[0].stage if lines else run.config.final_text_stage
    extracted = any(r.stage == "extract" and r.status == StageStatus.DONE for r in results)
    records = _page_records(session, run, page.id, stage, lines, extracted=extracted)
    truth = page_ground_truth(session, run, page.id)
    aligned = page_truth(session, run, page, stage, truth)
    if aligned is not None:
        lines = _with_ground_truth(lines, aligned.alignment)
    metrics = {
        r.stage: score_text(truth.content, r.text or "").as_dict()
        for r in results
        if truth is not None and r.stage in ("ocr", "correct") and r.text is not None
    }
    verified = verified_pages(session, run.id, [page.id]).get(page.id)
    return PageResult(
        run_id=run.id,
        page_id=page.id,
        document_id=page.document_id,
        number=page.number,
        image_url=f"{API}/pages/{page.id}/image" if page.image_key else None,
        preview_url=f"{API}/pages/{page.id}/preview" if page.preview_key else None,
        stages=[StageResultPublic.model_validate(r, from_attributes=True) for r in results],
        records=records,
        lines=lines,
        ground_truth=truth.content if truth else None,
        metrics=metrics,
        ground_truth_aligned=aligned.alignment.gt_text if aligned else None,
        gt_cer=_page_cer(aligned) if aligned else None,
        estimated_cer=page_estimate(session, run, page.id),
        verified=Verification(author=verified.author, at=verified.created_at) if verified else None,
        page_width=page.width,
        page_height=page.height,
    )


def _page_records(
    session: Session,
    run: Run,
    page_id: int,
    stage: str,
    lines: list[LinePublic],
    *,
    extracted: bool,
) -> list[RecordPublic]:
    """The page's records as reviewed (latest versions, deleted ones left out), each with the
    ids of the lines it came from; the lines learn their records and whether they have none."""
    if not run.config.extracts:
        return []
    by_position = {line.position: line for line in lines}
    linked = run.config.stage("extract").source in (None, stage)
    out = []
    for record in current_records(session, run.id, "latest", Record.page_id == page_id):
        line_ids = []
        if linked and record.line_number is not None:
            first = record.line_number - 1
            for position in range(first, first + record.source_line.count("\n") + 1):
                if position in by_position:
                    line_ids.append(by_position[position].id)
                    by_position[position].record_ids.append(record.id)
        out.append(
            RecordPublic(
                id=record.id,
                position=record.position,
                line_number=record.line_number,
                line_ids=line_ids,
                source_line=record.source_line,
                fields=dict(record.fields),
                version=record.version,
                source=record.source,
                provenance=dict(record.provenance),
            )
        )
    if linked and extracted:
        for line in lines:
            line.unparsed = line.kind == "body" and bool(line.text.strip()) and not line.record_ids
    return out


def _with_ground_truth(lines: list[LinePublic], alignment: PageAlignment) -> list[LinePublic]:
    """The lines with their aligned ground-truth line, diff and unsure flag (by position: line
    `position` is line `position + 1` of the stage's text the alignment was made on)."""
    out: list[LinePublic] = []
    for line in lines:
        if line.position >= len(alignment.lines):
            out.append(line)
            continue
        match = alignment.lines[line.position]
        diff = LineDiff(
            raw=[DiffOpPublic(op=o.op, gt=o.gt, ocr=o.ocr) for o in match.diff],
            normalized=[DiffOpPublic(op=o.op, gt=o.gt, ocr=o.ocr) for o in match.diff_normalized],
        )
        update = {"gt_text": match.gt_text, "diff": diff, "gt_unsure": match.unsure}
        out.append(line.model_copy(update=update))
    return out


def _page_cer(aligned: PageTruth) -> PageCer:
    raw, strict = aligned.alignment.cer, aligned.alignment.cer_normalized
    return PageCer(
        source=aligned.source,
        stage=aligned.stage,
        cer=raw.rate,
        cer_normalized=strict.rate,
        cer_distance=raw.distance,
        cer_reference_length=raw.reference_length,
        cer_normalized_distance=strict.distance,
        cer_normalized_reference_length=strict.reference_length,
        unsure_lines=aligned.alignment.unsure_lines,
    )


def _page_lines(session: Session, run: Run, results: Sequence[StageResult]) -> list[LinePublic]:
    """The lines of the run's reviewed text (its last text stage; the last one with lines in
    runs from before every stage kept its lines), each in its latest version."""
    stage_of = {r.id: r.stage for r in results if r.stage in TEXT_STAGES}
    if not stage_of:
        return []
    rows = lines_with_edits(session, run.id, Line.stage_result_id.in_(list(stage_of)))
    by_stage: dict[str, list[tuple[Line, LineVersion | None]]] = {}
    for row, edit in rows:
        by_stage.setdefault(stage_of[row.stage_result_id], []).append((row, edit))
    final = run.config.final_text_stage
    stage = final if final in by_stage else next(reversed(by_stage), None)
    if stage is None:
        return []
    out = []
    for row, edit in by_stage[stage]:
        out.append(
            LinePublic(
                id=row.id,
                stage=stage,
                position=row.position,
                text=edit.text if edit else row.text,
                diplomatic=row.diplomatic if edit is None else None,
                bbox=row.bbox,
                confidence=row.confidence,
                min_confidence=row.min_confidence,
                kind=row.kind,
                version=edit.version if edit else 1,
                edited=edit is not None,
                engine_text=row.text,
            )
        )
    return out
