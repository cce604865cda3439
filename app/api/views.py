"""Turning rows into API models (shared by the JSON routes and the HTML pages)."""

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from sqlalchemy import ColumnElement, Exists, ScalarSelect, exists, func, select
from sqlalchemy.orm import Session

from app.db.tables import (
    Document,
    DocumentStatus,
    GroundTruth,
    GroundTruthKind,
    Page,
    Record,
    Run,
    StageResult,
    StageStatus,
    run_documents,
)
from app.schemas.documents import DocumentDetail, DocumentPublic, GroundTruthPublic, PagePublic
from app.schemas.runs import Progress, RunPublic

API = "/api/v1"


def attachment(filename: str) -> dict[str, str]:
    """A Content-Disposition header that survives any file name (RFC 6266 / 5987)."""
    fallback = filename.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return {
        "Content-Disposition": f'attachment; filename="{fallback}"; '
        f"filename*=UTF-8''{quote(filename)}"
    }


def page_public(page: Page) -> PagePublic:
    """A page with the URLs of its image."""
    return PagePublic(
        id=page.id,
        document_id=page.document_id,
        number=page.number,
        width=page.width,
        height=page.height,
        dpi=page.dpi,
        image_url=f"{API}/pages/{page.id}/image" if page.image_key else None,
        preview_url=f"{API}/pages/{page.id}/preview" if page.preview_key else None,
    )


def _pages_ingested() -> ScalarSelect[int]:
    return (
        select(func.count(Page.id))
        .where(Page.document_id == Document.id)
        .correlate(Document)
        .scalar_subquery()
    )


def _has_ground_truth(kind: GroundTruthKind) -> Exists:
    return exists().where(GroundTruth.document_id == Document.id, GroundTruth.kind == kind)


def documents_public(session: Session, *criteria: ColumnElement[bool]) -> list[dict[str, Any]]:
    """The documents that match `criteria`, oldest first, with ingest progress and ground-truth
    flags: one statement however many there are (the document lists are polled)."""
    rows = session.execute(
        select(
            Document,
            _pages_ingested(),
            _has_ground_truth(GroundTruthKind.TEXT),
            _has_ground_truth(GroundTruthKind.RECORDS),
        )
        .where(*criteria)
        .order_by(Document.id)
    )
    out = []
    for document, pages, has_text, has_records in rows:
        data = DocumentPublic.model_validate(document).model_dump()
        data.update(
            pages_ingested=pages or 0,
            has_ground_truth_text=bool(has_text),
            has_ground_truth_records=bool(has_records),
        )
        out.append(data)
    return out


def document_public(session: Session, document: Document) -> dict[str, Any]:
    """A document's public fields, with ingest progress and ground-truth flags."""
    return documents_public(session, Document.id == document.id)[0]


def document_detail(session: Session, document: Document) -> DocumentDetail:
    """A document with its pages."""
    return DocumentDetail(
        **document_public(session, document), pages=[page_public(p) for p in document.pages]
    )


def ground_truth_public(truth: GroundTruth, *, current: bool = True) -> GroundTruthPublic:
    """A version of attached ground truth, without its content."""
    return GroundTruthPublic(
        id=truth.id,
        document_id=truth.document_id,
        page_id=truth.page_id,
        kind=truth.kind,
        filename=truth.filename,
        characters=len(truth.content),
        version=truth.version,
        author=truth.author,
        current=current,
        created_at=truth.created_at,
    )


def runs_public(session: Session, runs: Sequence[Run]) -> list[RunPublic]:
    """Runs with their progress counts and token/latency totals: a fixed number of statements
    however many runs there are (the run lists and the run page are polled)."""
    ids = [run.id for run in runs]
    if not ids:
        return []
    stages, sums = _stage_counts(session, ids)
    documents: dict[int, dict[int, str]] = defaultdict(dict)
    dpi: dict[int, set[int]] = defaultdict(set)
    # One statement for the documents and the resolutions their pages were rendered at.
    for run_id, document_id, status, value in session.execute(
        select(run_documents.c.run_id, Document.id, Document.status, Page.dpi)
        .join(Document, Document.id == run_documents.c.document_id)
        .outerjoin(Page, Page.document_id == Document.id)
        .where(run_documents.c.run_id.in_(ids))
        .group_by(run_documents.c.run_id, Document.id, Document.status, Page.dpi)
        .order_by(Document.id)
    ):
        documents[run_id][document_id] = status
        if value is not None:
            dpi[run_id].add(value)
    records = dict(
        session.execute(
            select(Record.run_id, func.count())
            .where(Record.run_id.in_(ids))
            .group_by(Record.run_id)
        ).all()
    )
    return [
        _run_public(
            run,
            stages.get(run.id, {}),
            list(documents[run.id].items()),
            sums.get(run.id, (None, None, None)),
            records.get(run.id, 0),
            sorted(dpi[run.id]),
        )
        for run in runs
    ]


def run_public(session: Session, run: Run) -> RunPublic:
    """A run with its progress counts and token/latency totals."""
    return runs_public(session, [run])[0]


def _stage_counts(
    session: Session, run_ids: list[int]
) -> tuple[dict[int, dict[str, dict[str, int]]], dict[int, tuple[Any, Any, Any]]]:
    """Per run: how many pages each stage has in each status (every status present, 0 or more),
    and the run's token and latency totals, from one grouped statement."""
    counts: dict[int, dict[str, dict[str, int]]] = defaultdict(dict)
    totals: dict[int, list[Any]] = {}
    for run_id, stage, status, count, tokens_in, tokens_out, latency in session.execute(
        select(
            StageResult.run_id,
            StageResult.stage,
            StageResult.status,
            func.count(),
            func.sum(StageResult.tokens_in),
            func.sum(StageResult.tokens_out),
            func.sum(StageResult.latency_s),
        )
        .where(StageResult.run_id.in_(run_ids))
        .group_by(StageResult.run_id, StageResult.stage, StageResult.status)
    ):
        per_stage = counts[run_id].setdefault(stage, {s.value: 0 for s in StageStatus})
        per_stage[status] = count
        summed = totals.setdefault(run_id, [None, None, None])
        for index, value in enumerate((tokens_in, tokens_out, latency)):
            if value is not None:
                summed[index] = value if summed[index] is None else summed[index] + value
    return counts, {run_id: (a, b, c) for run_id, (a, b, c) in totals.items()}


def _run_public(
    run: Run,
    stages: dict[str, dict[str, int]],
    documents: list[tuple[int, str]],
    sums: tuple[int | None, int | None, float | None],
    records: int,
    dpi: list[int],
) -> RunPublic:
    totals = {
        key: sum(c.get(key, 0) for c in stages.values())
        for key in ("pending", "queued", "running", "done", "failed", "skipped")
    }
    total = sum(totals.values())
    waiting = sum(
        1
        for _, status in documents
        if status in (DocumentStatus.UPLOADED, DocumentStatus.INGESTING)
    )
    finished = totals["done"] + totals["failed"] + totals["skipped"]
    return RunPublic(
        id=run.id,
        project_id=run.project_id,
        number=run.number,
        name=run.name,
        status=run.status,
        config=run.config,
        created_at=run.created_at,
        finished_at=run.finished_at,
        document_ids=[document_id for document_id, _ in documents],
        page_dpi=dpi,
        progress=Progress(
            total=total,
            documents_waiting=waiting,
            fraction=(finished / total) if total and not waiting else 0.0,
            **totals,
        ),
        stages=stages,
        totals={
            "tokens_in": sums[0],
            "tokens_out": sums[1],
            "latency_s": float(sums[2]) if sums[2] is not None else None,
            "records": records,
        },
        summary=run_summary(run),
    )


def run_summary(run: Run) -> dict[str, Any] | None:
    """The headline scores of a finished run (final text stage and records), if any."""
    metrics = run.metrics
    if not metrics:
        return None
    final = metrics["text"].get(metrics["final_stage"], {}).get("run")
    records = (metrics.get("records") or {}).get("run")
    return {"stage": metrics["final_stage"], "text": final, "records": records}
