"""Scoring a run's texts and records against the current version of its ground truth."""

from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session, aliased, selectinload

from app.db.tables import (
    Document,
    GroundTruth,
    GroundTruthKind,
    Page,
    Run,
    StageResult,
    StageStatus,
    run_documents,
)
from app.metrics.records import RecordScores, read_records_csv, score_records
from app.metrics.text import TextScores, score_text
from app.pipeline.versions import Version, apply_line_edits, current_records


def current_ground_truth() -> ColumnElement[bool]:
    """True for the rows of `GroundTruth` that are the latest version of their (document, page,
    kind): no later version of the same piece exists."""
    later = aliased(GroundTruth)
    return ~exists().where(
        later.document_id == GroundTruth.document_id,
        later.kind == GroundTruth.kind,
        later.page_id.is_not_distinct_from(GroundTruth.page_id),
        later.version > GroundTruth.version,
    )


def scored_kinds(run: Run) -> list[GroundTruthKind]:
    """The kinds of ground truth a run's scores depend on: records only where it extracts."""
    return [GroundTruthKind.TEXT] + ([GroundTruthKind.RECORDS] if run.config.extracts else [])


def ground_truth_used(truth: GroundTruth, page_numbers: dict[int, int]) -> dict[str, Any]:
    """What an evaluation records about one piece of ground truth it used (not its content)."""
    return {
        "id": truth.id,
        "document_id": truth.document_id,
        "page_id": truth.page_id,
        "page": page_numbers.get(truth.page_id) if truth.page_id is not None else None,
        "kind": truth.kind,
        "version": truth.version,
        "filename": truth.filename,
        "author": truth.author,
        "created_at": truth.created_at.isoformat(),
    }


def page_texts(
    session: Session,
    run: Run,
    stage: str,
    *,
    document_id: int | None = None,
    version: Version = "engine",
) -> dict[int, str | None]:
    """Page id → the stage's text (None where the stage did not succeed); of one document's
    pages only when `document_id` is given (a page view needs no more); with the reviewers'
    edited lines in place for `version="latest"`."""
    query = select(StageResult.page_id, StageResult.status, StageResult.text).where(
        StageResult.run_id == run.id, StageResult.stage == stage
    )
    if document_id is not None:
        query = query.where(
            StageResult.page_id.in_(select(Page.id).where(Page.document_id == document_id))
        )
    rows = session.execute(query).all()
    texts = {
        page_id: (text if status == StageStatus.DONE else None) for page_id, status, text in rows
    }
    return apply_line_edits(session, run.id, stage, texts) if version == "latest" else texts


def document_text(pages: list[Page], texts: dict[int, str | None]) -> str:
    """A document's transcription: its pages' texts in order, one after the other."""
    return "\n".join(texts.get(page.id) or "" for page in pages)


def _ground_truth(
    document: Document, truths: list[GroundTruth]
) -> tuple[str | None, dict[int, str], str | None]:
    doc_text: str | None = None
    page_text: dict[int, str] = {}
    records: str | None = None
    for truth in truths:
        if truth.kind == GroundTruthKind.RECORDS:
            records = truth.content
        elif truth.page_id is None:
            doc_text = truth.content
        else:
            page_text[truth.page_id] = truth.content
    if doc_text is None and page_text and all(p.id in page_text for p in document.pages):
        doc_text = "\n".join(page_text[p.id] for p in document.pages)
    return doc_text, page_text, records


def compute_run_metrics(session: Session, run: Run, version: Version = "engine") -> dict[str, Any]:
    """CER/WER per page, document and run for every text stage; record scores where possible;
    and the versions of the ground truth they were computed against (`ground_truth`). Of the
    engine's output, or of the reviewed text and records (`version="latest"`)."""
    text_stages = run.config.text_stages
    texts = {stage: page_texts(session, run, stage, version=version) for stage in text_stages}
    fields = list(run.config.schema_fields)
    out: dict[str, Any] = {"final_stage": run.config.final_text_stage, "text": {}, "records": None}
    stage_totals: dict[str, TextScores | None] = dict.fromkeys(text_stages)
    stage_docs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    stage_pages: dict[str, list[dict[str, Any]]] = defaultdict(list)
    record_total: RecordScores | None = None
    record_docs: list[dict[str, Any]] = []
    documents = _run_documents(session, run)
    truths = _current_truths(session, run)
    hypotheses = _records_by_document(session, run, truths, fields, version)
    used: list[dict[str, Any]] = []
    for document in documents:
        numbers = {page.id: page.number for page in document.pages}
        pieces = sorted(
            truths.get(document.id, []), key=lambda t: (t.kind, numbers.get(t.page_id or 0, 0))
        )
        used.extend(ground_truth_used(t, numbers) for t in pieces)
        doc_truth, page_truth, records_truth = _ground_truth(document, pieces)
        for stage in text_stages:
            for page in document.pages:
                if page.id in page_truth:
                    scores = score_text(page_truth[page.id], texts[stage].get(page.id) or "")
                    stage_pages[stage].append(
                        {"page_id": page.id, "document_id": document.id, "number": page.number}
                        | scores.as_dict()
                    )
            if doc_truth is None:
                continue
            scores = score_text(doc_truth, document_text(document.pages, texts[stage]))
            stage_docs[stage].append(
                {"document_id": document.id, "filename": document.filename} | scores.as_dict()
            )
            total = stage_totals[stage]
            stage_totals[stage] = scores if total is None else total + scores
        if run.config.extracts and records_truth is not None:
            _, reference = read_records_csv(records_truth, fields)
            scored = score_records(reference, hypotheses.get(document.id, []), fields)
            record_docs.append(
                {"document_id": document.id, "filename": document.filename} | scored.as_dict()
            )
            record_total = scored if record_total is None else record_total + scored
    for stage in text_stages:
        total = stage_totals[stage]
        out["text"][stage] = {
            "run": total.as_dict() if total is not None else None,
            "documents": stage_docs[stage],
            "pages": stage_pages[stage],
        }
    if record_total is not None:
        out["records"] = {"run": record_total.as_dict(), "documents": record_docs}
    out["ground_truth"] = used
    return out


def _run_documents(session: Session, run: Run) -> list[Document]:
    """The run's documents with their pages, in two statements."""
    return list(
        session.scalars(
            select(Document)
            .join(run_documents, run_documents.c.document_id == Document.id)
            .where(run_documents.c.run_id == run.id)
            .options(selectinload(Document.pages))
            .order_by(Document.id)
        )
    )


def _current_truths(session: Session, run: Run) -> dict[int, list[GroundTruth]]:
    """Document id → the current version of each piece of ground truth the run is scored on,
    in one statement (earlier versions are never loaded)."""
    rows = session.scalars(
        select(GroundTruth)
        .join(run_documents, run_documents.c.document_id == GroundTruth.document_id)
        .where(
            run_documents.c.run_id == run.id,
            GroundTruth.kind.in_(scored_kinds(run)),
            current_ground_truth(),
        )
    )
    out: dict[int, list[GroundTruth]] = defaultdict(list)
    for truth in rows:
        out[truth.document_id].append(truth)
    return out


def _records_by_document(
    session: Session,
    run: Run,
    truths: dict[int, list[GroundTruth]],
    fields: list[str],
    version: Version,
) -> dict[int, list[dict[str, Any]]]:
    """Document id → the run's records on it (schema fields only), in page and line order."""
    with_truth = [
        document_id
        for document_id, pieces in truths.items()
        if any(t.kind == GroundTruthKind.RECORDS for t in pieces)
    ]
    if not run.config.extracts or not with_truth:
        return {}
    document_of = dict(
        session.execute(
            select(Page.id, Page.document_id)
            .join(run_documents, run_documents.c.document_id == Page.document_id)
            .where(run_documents.c.run_id == run.id, Page.document_id.in_(with_truth))
        ).all()
    )
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    records = current_records(session, run.id, version, Page.document_id.in_(with_truth))
    for record in records:
        values = record.fields
        out[document_of[record.page_id]].append({name: values.get(name) for name in fields})
    return out
