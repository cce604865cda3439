"""Train: fine-tune a project's recogniser on its training set (a task on the cpu queue).

The task claims its queued `RecognizerModel` row (a conditional update: a second delivery of
the same task finds it taken and returns), builds the training set from the project's state
(app/services/recognizer_data.py), stores it as a zip, and runs `finetune_model`
(models/ocr/training.py). While it works it renews the row's heartbeat (a training whose
worker died is failed by the recovery sweep one lease later: it is not resumed, a user starts
it again), writes the progress of each chunk of iterations, and checks the row's status: a
user's cancel stops it within about a second, and no model is written. The training log is
kept in the file store whatever the outcome. Every write after the claim is conditional on the
row still being in training, so a cancel or a sweep is never overwritten.
"""

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import update

from app.db.recognizers import RecognizerModel, TrainingStatus
from app.db.session import utcnow
from app.pipeline.dispatch import TRAIN_TASK
from app.services.recognizer_data import plan_training_set
from app.services.recognizer_lines import counts, cut_training_set, zip_training_set
from models.ocr.training import (
    FinetuneResult,
    FinetuneSettings,
    TrainingCancelled,
    TrainingFailed,
    TrainingProgress,
    finetune_model,
)
from workers.celery_app import celery_app
from workers.context import TaskContext, beat_interval_s, celery_context, heartbeat

logger = logging.getLogger(__name__)

#: The row's status is read at most this often by the cancel check (the training tools poll
#: it every half second).
CANCEL_CHECK_S = 1.0
LOG_NAME = "training.log"


@dataclass(frozen=True)
class Claimed:
    """The training this task now runs."""

    id: int
    project_id: int
    number: int
    base_model: str
    parameters: dict[str, Any]


def train_recognizer(ctx: TaskContext, model_id: int) -> None:
    """Run the queued training `model_id` (nothing when it was cancelled or taken)."""
    claimed = _claim(ctx, model_id)
    if claimed is None:
        return
    logger.info("training recogniser version %s of project %s", claimed.number, claimed.project_id)
    with (
        heartbeat(lambda: _beat(ctx, model_id), beat_interval_s(ctx.settings)),
        tempfile.TemporaryDirectory(prefix="histocr-train-") as work,
    ):
        folder = Path(work)
        try:
            _train(ctx, claimed, folder)
        except TrainingCancelled:
            _end(ctx, model_id, folder, {})  # the row already says cancelled
            logger.info("recogniser version %s cancelled", claimed.number)
        except TrainingFailed as exc:
            _end(ctx, model_id, folder, {"status": TrainingStatus.FAILED, "error": str(exc)})
            logger.warning("recogniser version %s failed: %s", claimed.number, exc)
        except Exception as exc:
            failed = {"status": TrainingStatus.FAILED, "error": f"internal error: {exc}"}
            _end(ctx, model_id, folder, failed)
            raise


def _claim(ctx: TaskContext, model_id: int) -> Claimed | None:
    now = utcnow()
    with ctx.session() as session:
        row = session.execute(
            update(RecognizerModel)
            .where(RecognizerModel.id == model_id, RecognizerModel.status == TrainingStatus.QUEUED)
            .values(
                status=TrainingStatus.TRAINING,
                started_at=now,
                heartbeat_at=now,
                progress={"phase": "preparing"},
            )
            .returning(
                RecognizerModel.project_id,
                RecognizerModel.number,
                RecognizerModel.base_model,
                RecognizerModel.parameters,
            )
        ).first()
    if row is None:
        logger.info("recogniser training %s: cancelled, taken or gone", model_id)
        return None
    return Claimed(model_id, row[0], row[1], row[2], dict(row[3] or {}))


def _write(ctx: TaskContext, model_id: int, values: dict[str, Any]) -> bool:
    """Update the row while it is still in training; whether it was."""
    with ctx.session() as session:
        result = session.execute(
            update(RecognizerModel)
            .where(
                RecognizerModel.id == model_id,
                RecognizerModel.status == TrainingStatus.TRAINING,
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _beat(ctx: TaskContext, model_id: int) -> None:
    _write(ctx, model_id, {"heartbeat_at": utcnow()})


def _cancel_check(ctx: TaskContext, model_id: int) -> Callable[[], bool]:
    """True once the row left `training` (a user's cancel, the sweep, a deleted project)."""
    state = {"checked": 0.0, "stopped": False}

    def cancelled() -> bool:
        if not state["stopped"] and time.monotonic() - state["checked"] >= CANCEL_CHECK_S:
            state["checked"] = time.monotonic()
            with ctx.session() as session:
                status = session.get(RecognizerModel, model_id)
                state["stopped"] = status is None or status.status != TrainingStatus.TRAINING
        return bool(state["stopped"])

    return cancelled


def _train(ctx: TaskContext, claimed: Claimed, folder: Path) -> None:
    cancelled = _cancel_check(ctx, claimed.id)
    with ctx.session() as session:
        plan = plan_training_set(session, claimed.project_id)
    cut = cut_training_set(plan, ctx.storage, folder / "lines", cancelled)
    if not cut:
        raise TrainingFailed("no line of the project's pages could be cut for training")
    stored = ctx.storage.put_bytes(zip_training_set(folder / "lines"), ".zip")
    _write(
        ctx,
        claimed.id,
        {
            **counts(cut),
            "training_set_key": stored.key,
            "progress": {"phase": "training", "history": []},
        },
    )
    config = FinetuneSettings().config(
        **claimed.parameters,
        base_model=claimed.base_model,
        tessdata_dir=ctx.settings.tesseract.tessdata_dir,
        model_name=f"histocr-p{claimed.project_id}-v{claimed.number}",
    )
    history: list[dict[str, Any]] = []

    def progress(step: TrainingProgress) -> None:
        history.append(_step(step))
        _write(
            ctx, claimed.id, {"progress": {"phase": "training", **history[-1], "history": history}}
        )

    result = finetune_model(
        [(line.image, line.text) for line in cut],
        folder / "work",
        folder / "model.traineddata",
        config,
        progress=progress,
        cancelled=cancelled,
    )
    model = ctx.storage.put_bytes(result.model_path.read_bytes(), ".traineddata")
    _end(ctx, claimed.id, folder, _figures(result, model.key, model.sha256, history))
    logger.info(
        "recogniser version %s done: validation CER %.4f (base %.4f)",
        claimed.number,
        result.validation_cer,
        result.base_validation_cer,
    )


def _step(step: TrainingProgress) -> dict[str, Any]:
    return {
        "iteration": step.iteration,
        "max_iterations": step.max_iterations,
        "training_cer": step.training_cer,
        "validation_cer": step.validation_cer,
        "best_validation_cer": step.best_validation_cer,
        "best_iteration": step.best_iteration,
    }


def _figures(
    result: FinetuneResult, key: str, sha256: str, history: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "status": TrainingStatus.DONE,
        "model_key": key,
        "model_sha256": sha256,
        "training_lines": result.training_lines,
        "validation_lines": result.validation_lines,
        "skipped_lines": result.skipped_lines,
        "iterations": result.iterations,
        "iterations_run": result.iterations_run,
        "training_cer": result.training_cer,
        "validation_cer": result.validation_cer,
        "base_validation_cer": result.base_validation_cer,
        "seconds": result.seconds,
        "cpu_seconds": result.cpu_seconds,
        "progress": {
            "phase": "done",
            **(history[-1] if history else {}),
            "history": history,
            "skipped_characters": result.skipped_characters,
        },
    }


def _end(ctx: TaskContext, model_id: int, folder: Path, values: dict[str, Any]) -> None:
    """Keep the log and write the outcome (while the row is in training), and the log alone
    on a row that was cancelled meanwhile."""
    log = folder / "work" / LOG_NAME
    log_key = ctx.storage.put_bytes(log.read_bytes(), ".log").key if log.is_file() else None
    finished = {"finished_at": utcnow(), **({"log_key": log_key} if log_key else {}), **values}
    if values and _write(ctx, model_id, finished):
        return
    if log_key:
        with ctx.session() as session:
            session.execute(
                update(RecognizerModel)
                .where(RecognizerModel.id == model_id, RecognizerModel.log_key.is_(None))
                .values(log_key=log_key)
            )


@celery_app.task(name=TRAIN_TASK)
def train_task(model_id: int) -> None:
    """Celery entry point for a recogniser training."""
    train_recognizer(celery_context(), model_id)
