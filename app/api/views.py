"""Turning rows into API models (shared by the JSON routes and the HTML pages)."""

from typing import Any
from urllib.parse import quote

from sqlalchemy import func, select
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
    run_documents,
)
from app.pipeline.scheduler import stage_counts
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


def document_public(session: Session, document: Document) -> dict[str, Any]:
    """A document's public fields, with ingest progress and ground-truth flags."""
    pages = session.scalar(select(func.count()).where(Page.document_id == document.id)) or 0
    kinds = set(
        session.scalars(select(GroundTruth.kind).where(GroundTruth.document_id == document.id))
    )
    data = DocumentPublic.model_validate(document).model_dump()
    data.update(
        pages_ingested=pages,
        has_ground_truth_text=GroundTruthKind.TEXT in kinds,
        has_ground_truth_records=GroundTruthKind.RECORDS in kinds,
    )
    return data


def document_detail(session: Session, document: Document) -> DocumentDetail:
    """A document with its pages."""
    return DocumentDetail(
        **document_public(session, document), pages=[page_public(p) for p in document.pages]
    )


def ground_truth_public(truth: GroundTruth) -> GroundTruthPublic:
    """Attached ground truth, without its content."""
    return GroundTruthPublic(
        id=truth.id,
        document_id=truth.document_id,
        page_id=truth.page_id,
        kind=truth.kind,
        filename=truth.filename,
        characters=len(truth.content),
        created_at=truth.created_at,
    )


def run_public(session: Session, run: Run) -> RunPublic:
    """A run with its progress counts and token/latency totals."""
    stages = stage_counts(session, run.id)
    totals = {
        key: sum(c.get(key, 0) for c in stages.values())
        for key in ("pending", "queued", "running", "done", "failed", "skipped")
    }
    total = sum(totals.values())
    waiting = sum(
        1 for d in run.documents if d.status in (DocumentStatus.UPLOADED, DocumentStatus.INGESTING)
    )
    finished = totals["done"] + totals["failed"] + totals["skipped"]
    sums = session.execute(
        select(
            func.sum(StageResult.tokens_in),
            func.sum(StageResult.tokens_out),
            func.sum(StageResult.latency_s),
        ).where(StageResult.run_id == run.id)
    ).one()
    records = session.scalar(select(func.count()).where(Record.run_id == run.id)) or 0
    dpi = session.scalars(
        select(Page.dpi)
        .distinct()
        .join(run_documents, run_documents.c.document_id == Page.document_id)
        .where(run_documents.c.run_id == run.id, Page.dpi.is_not(None))
    ).all()
    return RunPublic(
        id=run.id,
        project_id=run.project_id,
        name=run.name,
        status=run.status,
        config=run.config,
        created_at=run.created_at,
        finished_at=run.finished_at,
        document_ids=[d.id for d in run.documents],
        page_dpi=sorted(d for d in dpi if d is not None),
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
