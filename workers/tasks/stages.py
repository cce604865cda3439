"""The ocr, correct and extract tasks: claim pages, call the engine, store what came back."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery.signals import worker_ready
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session, joinedload

from app.db.session import utcnow
from app.db.tables import Page, Record, Run, StageResult, StageStatus
from app.pipeline.dispatch import STAGE_TASKS, Dispatch
from app.pipeline.engines import default_parameters, engine_environment
from app.pipeline.outbox import enqueue
from app.pipeline.run_config import StageConfig
from app.pipeline.scheduler import advance, lock_run
from app.services.imports import imported_pages
from app.services.recognizer_runs import model_folder, project_model_inputs, uses_project_model
from models.base import EngineError, EngineResult
from models.registry import engine_specs, get_engine
from models.rewrite import rewrite_problem
from models.stages import PageInput, StageOutput, StageOutputInvalid, build_requests, parse_result
from workers.celery_app import celery_app
from workers.context import TaskContext, beat_interval_s, celery_context, heartbeat
from workers.tasks.lines import store_lines

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedPage:
    """A stage result this task now owns, with the inputs it needs."""

    result_id: int
    page_id: int
    attempt: int
    page: PageInput
    #: The resolution the page image was rendered at (None for text pages).
    dpi: int | None = None


def run_stage(ctx: TaskContext, stage: str, result_ids: Sequence[int]) -> None:
    """Run one stage on a batch of pages of one run."""
    claimed, spec, run_id = _claim(ctx, stage, result_ids)
    if not claimed or spec is None or run_id is None:
        return
    outcomes: list[StageOutput | EngineError]
    used: dict[str, Any] = {}
    # The lease of the pages this task holds is renewed until their outcome is stored, so a
    # page that takes long (a 2-minute answer) is never taken for one whose worker died.
    with heartbeat(lambda: _beat(ctx, claimed), beat_interval_s(ctx.settings)):
        try:
            environment = ctx.engine_environment(spec.engine)
            parameters = spec.parameters
            if uses_project_model(spec.engine, parameters):  # a version of the project's own
                with ctx.session() as session:
                    parameters, environment = project_model_inputs(
                        session=session,
                        storage=ctx.storage,
                        folder=model_folder(ctx.settings),
                        run_id=run_id,
                        parameters=parameters,
                        environment=environment,
                    )
            engine = get_engine(spec.engine, parameters, environment)
            used = engine.describe()
            requests = build_requests(spec, [c.page for c in claimed])
            answers = engine.run_batch(requests)
            outcomes = [_parse(spec, c.page, a) for c, a in zip(claimed, answers, strict=True)]
        except EngineError as exc:
            outcomes = [exc] * len(claimed)
        except Exception as exc:
            failed = [EngineError(f"internal error: {exc}")] * len(claimed)
            _store(ctx, run_id, claimed, failed, used)
            raise
        _store(ctx, run_id, claimed, outcomes, used)


def _parse(
    spec: StageConfig, page: PageInput, answer: EngineResult | EngineError
) -> StageOutput | EngineError:
    if isinstance(answer, EngineError):
        return answer
    if spec.stage == "correct":
        # Whatever the engine: a correction that lost most of its text is not stored over it.
        problem = rewrite_problem(page.text or "", answer.text)
        if problem:
            return EngineError(problem, attempts=answer.attempts)
    try:
        return parse_result(spec, page, answer)
    except StageOutputInvalid as exc:
        return EngineError(str(exc), attempts=answer.attempts)


def _claim(
    ctx: TaskContext, stage: str, result_ids: Sequence[int]
) -> tuple[list[ClaimedPage], StageConfig | None, int | None]:
    """Take the queued results nobody else runs; read their images and input texts."""
    with ctx.session() as session:
        now = utcnow()
        taken = set(
            session.scalars(
                update(StageResult)
                .where(
                    StageResult.id.in_(list(result_ids)),
                    StageResult.stage == stage,
                    StageResult.status.in_([StageStatus.QUEUED, StageStatus.PENDING]),
                )
                .values(
                    status=StageStatus.RUNNING,
                    attempts=StageResult.attempts + 1,
                    started_at=now,
                    heartbeat_at=now,
                )
                .returning(StageResult.id)
                .execution_options(synchronize_session=False)
            )
        )
        if len(taken) < len(result_ids):
            logger.info("stage results %s: already taken or finished", set(result_ids) - taken)
        if not taken:
            return [], None, None
        results = session.scalars(
            select(StageResult)
            .where(StageResult.id.in_(taken))
            .options(joinedload(StageResult.page).joinedload(Page.document))
            .order_by(StageResult.id)
        ).all()
        run = session.get_one(Run, results[0].run_id)
        spec = run.config.stage(stage)
        texts = _source_texts(session, run.id, spec.source, [r.page_id for r in results])
        claimed = [
            ClaimedPage(
                result_id=result.id,
                page_id=result.page_id,
                attempt=result.attempts,
                page=_page_input(ctx, result, texts),
                dpi=result.page.dpi if result.page.image_key else None,
            )
            for result in results
        ]
        return claimed, spec, run.id


def _source_texts(
    session: Session, run_id: int, source: str | None, page_ids: list[int]
) -> dict[int, str | None]:
    """Page id → the text of the stage a correction or extraction reads."""
    if source is None:
        return {}
    rows = session.execute(
        select(StageResult.page_id, StageResult.text).where(
            StageResult.run_id == run_id,
            StageResult.page_id.in_(page_ids),
            StageResult.stage == source,
            StageResult.status == StageStatus.DONE,
        )
    ).all()
    return {page_id: text for page_id, text in rows}


def _page_input(ctx: TaskContext, result: StageResult, texts: dict[int, str | None]) -> PageInput:
    page = result.page
    image = ctx.storage.path(page.image_key) if page.image_key else None
    if result.stage == "ocr":
        return PageInput(image_path=image, text=_imported_text(ctx, page), image_dpi=page.dpi)
    return PageInput(image_path=image, text=texts.get(page.id) or "")


def _imported_text(ctx: TaskContext, page: Page) -> str | None:
    """The page's text when it was made elsewhere: a .txt document, or text given for a scan."""
    if page.text_key:
        return ctx.storage.read_bytes(page.text_key).decode("utf-8")
    pages = imported_pages(ctx.storage, page.document.imported_text_key)
    return pages[page.number - 1] if pages else None


def _beat(ctx: TaskContext, claimed: Sequence[ClaimedPage]) -> None:
    """Renew the lease of the pages this task still holds.

    Held means running under this task's claim: each claim counts an attempt, so a page the
    recovery took back and another task claimed again has another count, and its lease is
    that task's to renew (were it renewed here, that task's death would go unnoticed).
    """
    held = [(c.result_id, c.attempt) for c in claimed]
    with ctx.session() as session:
        session.execute(
            update(StageResult)
            .where(
                tuple_(StageResult.id, StageResult.attempts).in_(held),
                StageResult.status == StageStatus.RUNNING,
            )
            .values(heartbeat_at=utcnow())
        )


def _store(
    ctx: TaskContext,
    run_id: int,
    claimed: list[ClaimedPage],
    outcomes: Sequence[StageOutput | EngineError],
    used: dict[str, Any],
) -> None:
    """Write every page's outcome and what the engine used, then queue what became ready
    (after the commit)."""
    dispatches: list[Dispatch] = []
    with ctx.session() as session:
        run = lock_run(session, run_id)  # stores of one run, one at a time (see lock_run)
        # One query for the task's rows, not one per page (a round trip each on PostgreSQL).
        rows = session.scalars(
            select(StageResult).where(StageResult.id.in_([c.result_id for c in claimed]))
        ).all()
        by_id = {row.id: row for row in rows}
        for item, outcome in zip(claimed, outcomes, strict=True):
            result = by_id.get(item.result_id)
            if result is None or result.status == StageStatus.DONE:
                continue
            # What actually happened: the engine's own account, and the page's real resolution.
            result.parameters = used | ({"dpi": item.dpi} if item.dpi else {})
            if isinstance(outcome, EngineError):
                dispatches.extend(_record_failure(ctx, run, result, outcome))
            else:
                _record_success(session, result, outcome)
        if run is not None:
            dispatches.extend(advance(session, run, page_ids=[c.page_id for c in claimed]))
        # Sent after the commit; kept for the sweep while the broker cannot be reached.
        enqueue(session, dispatches, sender=ctx.dispatcher)


def _record_failure(
    ctx: TaskContext, run: Run | None, result: StageResult, error: EngineError
) -> list[Dispatch]:
    """Count the tries, then queue the page again or fail it; the message says which and why.

    A failure that may pass (`retryable`: an endpoint that stayed busy or unreachable through
    its own retries, a local engine's passing fault) is queued again while the page's attempts
    are under HISTOCR_STAGE_MAX_ATTEMPTS; anything else fails at once.
    """
    max_attempts = ctx.settings.stage_max_attempts
    _count_attempts(result, error.attempts)
    message = str(error)
    earlier = result.attempts - error.attempts
    if earlier > 0:
        message += f"; {result.attempts} attempts at this stage in all, {earlier} before this task"
    result.finished_at = utcnow()
    if error.retryable and result.attempts < max_attempts:
        result.status = StageStatus.QUEUED
        result.queued_at = utcnow()
        result.error = (
            f"{message}; queued again ({result.attempts} attempts so far, "
            f"HISTOCR_STAGE_MAX_ATTEMPTS is {max_attempts})"
        )
        logger.warning("stage result %s: attempt %s failed: %s", result.id, result.attempts, error)
        return [
            Dispatch(
                task=STAGE_TASKS[result.stage],
                args=([result.id],),
                queue=run.config.stage(result.stage).queue if run else "cpu",
                countdown=min(60.0, 2.0**result.attempts),
            )
        ]
    if error.retryable:
        message += (
            f"; not queued again: the page has had {result.attempts} attempts, "
            f"HISTOCR_STAGE_MAX_ATTEMPTS is {max_attempts}"
        )
    result.error = message
    result.status = StageStatus.FAILED
    logger.error(
        "stage result %s failed after %s attempt(s): %s", result.id, result.attempts, error
    )
    return []


def _count_attempts(result: StageResult, tries: int) -> None:
    """Replace the one try the claim counted with the engine's own count.

    `attempts` counts a page's tries at a stage over all tasks: the requests sent to an
    endpoint (0 when none could be), the runs of a local engine. The claim counts one before
    the engine starts, so that a task whose worker dies is counted too.
    """
    result.attempts += tries - 1


def _record_success(session: Session, result: StageResult, output: StageOutput) -> None:
    """Store the page's text, lines and records; each record keeps what produced each of its
    fields, as the engine said (the CRF and rules engines name a model or rule per field), or
    else the engine itself."""
    answer = output.result
    _count_attempts(result, answer.attempts)
    result.status = StageStatus.DONE
    result.text = output.text
    result.model = answer.model
    result.tokens_in = answer.tokens_in
    result.tokens_out = answer.tokens_out
    result.latency_s = answer.latency_s
    result.error = None
    result.finished_at = utcnow()
    result.page_layout = dict(answer.page_layout) if answer.page_layout else None
    store_lines(session, result, answer.lines, output.text)
    if output.records is None:
        return
    session.execute(delete(Record).where(Record.stage_result_id == result.id))
    for position, record in enumerate(output.records):
        session.add(
            Record(
                run_id=result.run_id,
                page_id=result.page_id,
                stage_result_id=result.id,
                position=position,
                line_number=record.line_number,
                source_line=record.source_line,
                fields=record.fields,
                provenance=record.provenance
                or {name: result.engine for name, value in record.fields.items() if value},
            )
        )


@worker_ready.connect
def warm_up_engines(**_kwargs: object) -> None:
    """Let each engine prepare before the first task needs it (e.g. open an endpoint's pool)."""
    settings = celery_context().settings
    for spec in engine_specs().values():
        if spec.on_worker_ready is None:
            continue
        try:
            spec.on_worker_ready(
                default_parameters(spec, settings), engine_environment(spec, settings)
            )
        except Exception as exc:  # the first task reports a real problem; this is a head start
            logger.warning("%s engine not prepared ahead: %s", spec.name, exc)


@celery_app.task(name=STAGE_TASKS["ocr"])
def ocr_task(result_ids: list[int]) -> None:
    """Celery entry point for OCR."""
    run_stage(celery_context(), "ocr", result_ids)


@celery_app.task(name=STAGE_TASKS["correct"])
def correct_task(result_ids: list[int]) -> None:
    """Celery entry point for post-correction."""
    run_stage(celery_context(), "correct", result_ids)


@celery_app.task(name=STAGE_TASKS["extract"])
def extract_task(result_ids: list[int]) -> None:
    """Celery entry point for record extraction."""
    run_stage(celery_context(), "extract", result_ids)
