"""A run's evaluations: scores kept with the ground-truth versions they were computed against.

A run is scored once when it finishes; later ground truth does not change those scores. It
only makes them stale, and scoring again is an explicit action that adds an evaluation and
keeps the earlier ones (the attack this answers: a cross-site upload that replaced ground
truth silently re-scored a finished run from 23.18 % to 51.66 % normalized CER).
"""

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, defer

from app.db.tables import (
    EvaluationReason,
    GroundTruth,
    GroundTruthKind,
    Page,
    Run,
    RunEvaluation,
    run_documents,
)
from app.errors import NotFound
from app.pipeline.evaluation import (
    compute_run_metrics,
    current_ground_truth,
    ground_truth_used,
    scored_kinds,
)
from app.pipeline.versions import review_counts

#: The author of the evaluation a run gets when it finishes (no one asked for it).
AUTOMATIC = "histocr"


def record_evaluation(
    *, session: Session, run: Run, author: str, reason: EvaluationReason, first_only: bool = False
) -> RunEvaluation | None:
    """Score the run against the current ground truth and store it as its next evaluation (and
    as `run.metrics`, the latest). With `first_only`, nothing happens if the run has one already:
    a finished run's evaluate task may be delivered twice, and must not score it twice."""
    if first_only and _last_number(session, run) is not None:
        return None
    metrics = compute_run_metrics(session, run)
    _lock_run(session, run.id)
    last = _last_number(session, run)
    if first_only and last is not None:
        return None
    evaluation = RunEvaluation(
        run_id=run.id, number=(last or 0) + 1, reason=reason, author=author, metrics=metrics
    )
    session.add(evaluation)
    run.metrics = metrics
    session.flush()
    return evaluation


def _last_number(session: Session, run: Run) -> int | None:
    return session.scalar(
        select(func.max(RunEvaluation.number)).where(RunEvaluation.run_id == run.id)
    )


def _lock_run(session: Session, run_id: int) -> None:
    """Hold the run's row until the transaction ends, before reading the last number: two
    evaluations stored at once (a double click, a task delivered twice) would otherwise both
    take the same number. An UPDATE that changes nothing, as it also takes SQLite's write lock."""
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(status=Run.status)
        .execution_options(synchronize_session=False)
    )


def run_metrics(session: Session, run: Run, number: int | None = None) -> dict[str, Any]:
    """A run's scores as the API serves them: evaluation `number` (the latest by default), the
    list of its evaluations, and whether newer ground truth exists than the scores were
    computed against (`stale`, `newer_ground_truth`).

    A run that has not been evaluated (still running) is scored now, provisionally.
    """
    listed = _evaluations(session, run)
    chosen: dict[str, Any] | None = None
    if number is not None:
        chosen = next((e for e in listed if e["number"] == number), None)
        if chosen is None:
            raise NotFound(
                f"run {run.id} has no evaluation {number} (it has {len(listed)})"
                if listed
                else f"run {run.id} has not been evaluated yet"
            )
    elif listed:
        chosen = listed[-1]
    if chosen is None:
        metrics = compute_run_metrics(session, run)
        newer: list[dict[str, Any]] = []
    else:
        metrics = session.scalars(
            select(RunEvaluation.metrics).where(
                RunEvaluation.run_id == run.id, RunEvaluation.number == chosen["number"]
            )
        ).one()
        newer = newer_ground_truth(session, run, metrics.get("ground_truth", []))
    return (
        {"run_id": run.id, "status": run.status}
        | metrics
        | _engine_and_latest(session, run, metrics)
        | {
            "provisional": chosen is None,
            "evaluation": chosen,
            "evaluations": listed,
            "stale": bool(newer),
            "newer_ground_truth": newer,
        }
    )


def _evaluations(session: Session, run: Run) -> list[dict[str, Any]]:
    """Number, reason, author and time of each of the run's evaluations, oldest first (their
    scores are not loaded)."""
    rows = session.execute(
        select(
            RunEvaluation.number,
            RunEvaluation.reason,
            RunEvaluation.author,
            RunEvaluation.created_at,
        )
        .where(RunEvaluation.run_id == run.id)
        .order_by(RunEvaluation.number)
    )
    return [
        {"number": number, "reason": reason, "author": author, "created_at": created_at}
        for number, reason, author, created_at in rows
    ]


def newer_ground_truth(
    session: Session, run: Run, used: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The current ground truth of the run's documents that the scores were not computed
    against: newer versions, and pieces attached since. One statement; no content is read."""
    rows = session.execute(
        select(GroundTruth, Page.number)
        .join(run_documents, run_documents.c.document_id == GroundTruth.document_id)
        .outerjoin(Page, Page.id == GroundTruth.page_id)
        .where(
            run_documents.c.run_id == run.id,
            GroundTruth.kind.in_(scored_kinds(run)),
            current_ground_truth(),
        )
        .options(defer(GroundTruth.content))
        .order_by(GroundTruth.document_id, GroundTruth.kind, Page.number.nulls_first())
    )
    seen = {entry["id"] for entry in used}
    return [
        ground_truth_used(truth, {truth.page_id: number} if truth.page_id else {})
        for truth, number in rows
        if truth.id not in seen
    ]


def page_ground_truth(session: Session, run: Run, page_id: int) -> GroundTruth | None:
    """The page's own transcription to show beside the run's text: the version the run's latest
    evaluation used, so the page agrees with the run's scores; the current one where the run
    has not been evaluated or its evaluation had none for the page."""
    used = [
        entry["id"]
        for entry in (run.metrics or {}).get("ground_truth", [])
        if entry["kind"] == GroundTruthKind.TEXT and entry["page_id"] == page_id
    ]
    query = select(GroundTruth).where(
        GroundTruth.page_id == page_id, GroundTruth.kind == GroundTruthKind.TEXT
    )
    query = query.where(GroundTruth.id == used[0]) if used else query.where(current_ground_truth())
    return session.scalar(query)


def _engine_and_latest(session: Session, run: Run, metrics: dict[str, Any]) -> dict[str, Any]:
    """The scores of the engine's output (those of the evaluation) beside those of the reviewed
    text and records (latest versions, scored now against the current ground truth; the same
    as the engine's while nothing is edited)."""
    engine = {"text": metrics.get("text", {}), "records": metrics.get("records")}
    counts = review_counts(session, run.id)
    latest = engine
    if counts.lines_edited or counts.records_changed:
        scored = compute_run_metrics(session, run, "latest")
        latest = {"text": scored["text"], "records": scored["records"]}
    return {"engine": engine, "latest": latest | {"review": counts.as_dict()}}
