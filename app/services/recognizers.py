"""A project's recogniser versions: starting and cancelling trainings, which version is the
default, and training by itself once enough new lines were verified.

A training is a `RecognizerModel` row (app/db/recognizers.py) and a task on the cpu queue
(workers/tasks/train.py). The row is queued here, in the request's transaction, with the task
in the outbox; one training at a time per project (a partial unique index holds it). A version
is the default for new runs when it is done and reads its held-out lines no worse than the
model it started from (`default_version`); of those, the one with the lowest validation error.
A failed or cancelled training never becomes a default, so the previous default stays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.recognizers import (
    ACTIVE_TRAINING,
    RecognizerModel,
    RecognizerSetting,
    TrainingStatus,
)
from app.db.review import PageVerification
from app.db.session import utcnow
from app.db.tables import Line, Project, StageResult
from app.errors import Conflict
from app.pipeline.dispatch import TRAIN_TASK, Dispatch
from app.services.recognizer_data import TrainingPlan, plan_training_set, tesseract_runs
from models.ocr.training import FinetuneSettings

#: Who a training the verified-line threshold started is attributed to.
AUTOMATIC = "automatic"
#: The training parameters a request may set (the rest are this machine's settings).
TRAINING_PARAMETERS = (
    "learning_rate",
    "max_iterations",
    "chunk_iterations",
    "patience",
    "validation_fraction",
)


class RecognizerLimits(BaseSettings):
    """What a project needs before its recogniser is trained (HISTOCR_RECOGNIZER_*)."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_RECOGNIZER_", extra="ignore")

    #: Fewer lines than this teach the model little and measure it on almost nothing.
    min_lines: int = Field(default=20, ge=1)


class TrainingRefused(Conflict):
    """A training that cannot start now; the answer carries the project's line counts."""

    def __init__(self, message: str, counts: Mapping[str, int]) -> None:
        super().__init__(message)
        self.counts = dict(counts)

    @property
    def extra(self) -> dict[str, object]:
        """`counts`: the training lines the project has, and how many it needs."""
        return {"counts": self.counts}


def base_model(settings: Settings) -> str:
    """The model a training starts from: the installation's default Tesseract model (one model:
    a run that reads with several cannot be replaced by one trained from one of them)."""
    languages = settings.tesseract.languages
    return "frak2021" if "+" in languages else languages


def _lock_project(session: Session, project_id: int) -> None:
    """Take the project's row (an UPDATE that changes nothing), so that two trainings started
    at once read the same numbers one after the other."""
    session.execute(
        update(Project)
        .where(Project.id == project_id)
        .values(name=Project.name)
        .execution_options(synchronize_session=False)
    )


def active_training(session: Session, project_id: int) -> RecognizerModel | None:
    """The project's queued or running training, if any."""
    return session.scalar(
        select(RecognizerModel).where(
            RecognizerModel.project_id == project_id,
            RecognizerModel.status.in_(ACTIVE_TRAINING),
        )
    )


def start_training(
    *,
    session: Session,
    settings: Settings,
    project: Project,
    author: str,
    parameters: Mapping[str, Any] | None = None,
    plan: TrainingPlan | None = None,
) -> tuple[RecognizerModel, list[Dispatch]]:
    """Queue a training of the project's next version (TrainingRefused, a 409, when one is
    queued or running, or when the project has too few lines)."""
    _lock_project(session, project.id)
    plan = plan if plan is not None else plan_training_set(session, project.id)
    counts = {**plan.counts(), "min_lines": RecognizerLimits().min_lines}
    running = active_training(session, project.id)
    if running is not None:
        raise TrainingRefused(
            f"version {running.number} is {running.status}: one training at a time", counts
        )
    if counts["lines"] < counts["min_lines"]:
        raise TrainingRefused(
            f"{counts['lines']} training line(s) ({counts['verified_lines']} from verified "
            f"pages, {counts['ground_truth_lines']} from ground truth); a training needs at "
            f"least {counts['min_lines']} (HISTOCR_RECOGNIZER_MIN_LINES): verify more pages "
            "or attach ground truth",
            counts,
        )
    defaults = FinetuneSettings()
    chosen = {name: getattr(defaults, name) for name in TRAINING_PARAMETERS}
    chosen.update({k: v for k, v in (parameters or {}).items() if v is not None})
    number = (
        session.scalar(
            select(func.max(RecognizerModel.number)).where(RecognizerModel.project_id == project.id)
        )
        or 0
    ) + 1
    model = RecognizerModel(
        project_id=project.id,
        number=number,
        status=TrainingStatus.QUEUED,
        base_model=base_model(settings),
        parameters=chosen,
        author=author,
        progress={"phase": "queued"},
    )
    session.add(model)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # another request queued one between our check and our insert
        raise TrainingRefused("a training was queued at the same moment", counts) from None
    return model, [Dispatch(task=TRAIN_TASK, args=(model.id,), queue="cpu")]


def get_version(session: Session, project_id: int, number: int) -> RecognizerModel | None:
    """The project's version `number`, if it exists."""
    return session.scalar(
        select(RecognizerModel).where(
            RecognizerModel.project_id == project_id, RecognizerModel.number == number
        )
    )


def list_versions(session: Session, project_id: int) -> list[RecognizerModel]:
    """The project's versions, newest first."""
    return list(
        session.scalars(
            select(RecognizerModel)
            .where(RecognizerModel.project_id == project_id)
            .order_by(RecognizerModel.number.desc())
        )
    )


def cancel_training(session: Session, model: RecognizerModel) -> RecognizerModel:
    """Cancel a queued or running training (its worker stops at its next check and writes no
    model); Conflict when it has finished."""
    if model.status not in ACTIVE_TRAINING:
        raise Conflict(f"version {model.number} is {model.status}: there is nothing to cancel")
    model.status = TrainingStatus.CANCELLED
    model.finished_at = utcnow()
    session.flush()
    return model


def default_version(session: Session, project_id: int) -> RecognizerModel | None:
    """The version new runs use by default: done, trained (a checkpoint was kept) and no worse
    than its base on its held-out lines; of those the lowest validation error, the newer (more
    lines) on a tie. None: the shipped model.

    No worse rather than better: a few dozen held-out lines of a clean print are often all read
    right by the base already (0 % both), and a version that ties there still reads the unseen
    pages better (type-1, page 1's 24 lines: pages 2–3 from 3.64 to 3.33 % CER).
    """
    return session.scalars(
        select(RecognizerModel)
        .where(
            RecognizerModel.project_id == project_id,
            RecognizerModel.status == TrainingStatus.DONE,
            RecognizerModel.model_key.is_not(None),
            RecognizerModel.iterations > 0,
            RecognizerModel.validation_cer <= RecognizerModel.base_validation_cer,
        )
        .order_by(RecognizerModel.validation_cer, RecognizerModel.number.desc())
        .limit(1)
    ).first()


def auto_train_after(session: Session, project_id: int) -> int | None:
    """The project's threshold of newly verified lines (None: no automatic training)."""
    row = session.get(RecognizerSetting, project_id)
    return row.auto_train_after if row is not None else None


def set_auto_train_after(
    session: Session, project_id: int, value: int | None, author: str
) -> int | None:
    """Set (or with None switch off) the project's automatic training threshold."""
    row = session.get(RecognizerSetting, project_id)
    if row is None:
        row = RecognizerSetting(project_id=project_id)
        session.add(row)
    row.auto_train_after = value
    row.author = author
    session.flush()
    return value


def verified_lines_since(session: Session, project_id: int, since: datetime | None) -> int:
    """Lines on the pages verified after `since` (each page once, in the newest run it was
    verified in) in the project's Tesseract runs: the new lines a training would get."""
    runs = tesseract_runs(session, project_id)
    if not runs:
        return 0
    query = select(PageVerification.page_id, func.max(PageVerification.run_id)).where(
        PageVerification.run_id.in_(list(runs))
    )
    if since is not None:
        query = query.where(PageVerification.created_at > since)
    pairs = session.execute(query.group_by(PageVerification.page_id)).all()
    if not pairs:
        return 0
    count = 0
    for page_id, run_id in pairs:
        count += (
            session.scalar(
                select(func.count(Line.id))
                .join(StageResult, StageResult.id == Line.stage_result_id)
                .where(
                    Line.run_id == run_id,
                    Line.page_id == page_id,
                    StageResult.stage == runs[run_id].final_text_stage,
                    func.length(func.trim(Line.text)) > 0,
                )
            )
            or 0
        )
    return count


def since_last_version(session: Session, project_id: int) -> int:
    """Lines verified since the newest version was started (whatever became of it, so that
    a training that failed is not started again by every verification after it)."""
    last = session.scalar(
        select(func.max(RecognizerModel.created_at)).where(RecognizerModel.project_id == project_id)
    )
    return verified_lines_since(session, project_id, last)


def after_verification(*, session: Session, settings: Settings, project: Project) -> list[Dispatch]:
    """Queue a training when a verification brought the lines verified since the last version
    to the project's threshold (nothing when it has none, or a training is under way)."""
    threshold = auto_train_after(session, project.id)
    if threshold is None or active_training(session, project.id) is not None:
        return []
    if since_last_version(session, project.id) < threshold:
        return []
    try:
        _, dispatches = start_training(
            session=session, settings=settings, project=project, author=AUTOMATIC
        )
    except TrainingRefused:  # too few lines in all, or another one just started
        return []
    return dispatches


@dataclass(frozen=True)
class StaleTraining:
    """A training whose worker stopped beating."""

    id: int
    project_id: int
    number: int


def fail_stale_trainings(session: Session, *, lease_s: float) -> list[StaleTraining]:
    """Fail the trainings whose worker sent no heartbeat for a lease (the worker died: a
    training is not resumed, it is started again by whoever wants it)."""
    cutoff = utcnow() - timedelta(seconds=lease_s)
    stale = session.scalars(
        select(RecognizerModel).where(
            RecognizerModel.status == TrainingStatus.TRAINING,
            RecognizerModel.heartbeat_at < cutoff,
        )
    ).all()
    for model in stale:
        model.status = TrainingStatus.FAILED
        model.finished_at = utcnow()
        model.error = (
            f"the training's worker stopped (no heartbeat for {lease_s:.0f} s): start it again"
        )
    session.flush()
    return [StaleTraining(m.id, m.project_id, m.number) for m in stale]
