"""A project's own recogniser: train a version, follow and cancel its training, read its log,
export its training set, and set when it trains by itself.

Editors train and cancel, viewers read (`valid_project` checks the role by method). Training
runs on the cpu queue (workers/tasks/train.py); the routes queue it through the outbox.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.api.actor import ActorDep
from app.api.deps import OutboxDep, ProjectDep, RowId, SessionDep, SettingsDep, StorageDep
from app.api.idempotency import IdempotencyDep
from app.api.responses import DocumentedRoute, binary, errors, text
from app.db.recognizers import RecognizerModel
from app.errors import NotFound
from app.services import recognizers as service
from app.services.recognizer_data import plan_training_set

router = APIRouter(prefix="/projects", tags=["recognizers"], route_class=DocumentedRoute)


class TrainingRequest(BaseModel):
    """How to train; anything left out is this machine's default (HISTOCR_FINETUNE_*)."""

    max_iterations: int | None = Field(default=None, ge=1, le=100_000)
    chunk_iterations: int | None = Field(
        default=None, ge=1, le=10_000, description="iterations between two validations"
    )
    learning_rate: float | None = Field(default=None, gt=0, le=0.01)
    patience: int | None = Field(
        default=None, ge=1, le=100, description="validations without progress before stopping"
    )
    validation_fraction: float | None = Field(
        default=None, gt=0, lt=1, description="share of the lines held out to measure"
    )


class TrainingStep(BaseModel):
    """The figures after one chunk of iterations (error rates as fractions)."""

    iteration: int
    max_iterations: int
    training_cer: float | None = None
    validation_cer: float
    best_validation_cer: float
    best_iteration: int


class TrainingProgressPublic(BaseModel):
    """Where a training stands: its phase and the chunks so far."""

    phase: str = Field(description="queued, preparing (cutting lines), training or done")
    iteration: int | None = None
    max_iterations: int | None = None
    validation_cer: float | None = None
    best_validation_cer: float | None = None
    history: list[TrainingStep] = Field(default_factory=list)
    skipped_characters: str | None = None


class RecognizerPublic(BaseModel):
    """A version of the project's recogniser and how it was trained (error rates as
    fractions: 0.05 = 5 %)."""

    number: int
    status: str = Field(description="queued, training, done, failed or cancelled")
    default: bool = Field(description="whether new runs read with it by default")
    base_model: str
    parameters: dict[str, Any]
    lines: int | None = Field(description="training set: line pairs in all")
    verified_lines: int | None
    ground_truth_lines: int | None
    pages: int | None
    training_lines: int | None
    validation_lines: int | None
    skipped_lines: int | None
    iterations: int | None = Field(description="of the checkpoint kept (0: the base was kept)")
    iterations_run: int | None
    training_cer: float | None
    validation_cer: float | None = Field(description="on the held-out lines")
    base_validation_cer: float | None = Field(description="the base model on the same lines")
    seconds: float | None
    cpu_seconds: float | None
    progress: TrainingProgressPublic | None
    model_sha256: str | None
    has_log: bool
    has_training_set: bool
    error: str | None
    author: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class TrainingLines(BaseModel):
    """The lines a training would get now."""

    lines: int
    verified_lines: int
    ground_truth_lines: int
    pages: int


class RecognizerSettingsPublic(BaseModel):
    """When the project's recogniser trains, and what it has to train on."""

    auto_train_after: int | None = Field(
        description="train by itself once this many lines were verified since the last "
        "version (null: only when asked)"
    )
    min_lines: int = Field(description="lines a training needs (HISTOCR_RECOGNIZER_MIN_LINES)")
    base_model: str = Field(description="the model a training starts from")
    default_version: int | None = Field(description="the version new runs use (null: base)")
    active_version: int | None = Field(description="the version training now, if any")
    available: TrainingLines
    verified_since_last: int = Field(description="lines verified since the last version")


class RecognizerSettingsUpdate(BaseModel):
    """When the project's recogniser trains by itself."""

    auto_train_after: int | None = Field(ge=1, le=1_000_000)


def recognizer_public(model: RecognizerModel, default: int | None) -> RecognizerPublic:
    """A version as the API shows it."""
    progress = TrainingProgressPublic.model_validate(model.progress) if model.progress else None
    return RecognizerPublic(
        number=model.number,
        status=model.status,
        default=model.number == default,
        base_model=model.base_model,
        parameters=dict(model.parameters or {}),
        lines=model.lines,
        verified_lines=model.verified_lines,
        ground_truth_lines=model.ground_truth_lines,
        pages=model.pages,
        training_lines=model.training_lines,
        validation_lines=model.validation_lines,
        skipped_lines=model.skipped_lines,
        iterations=model.iterations,
        iterations_run=model.iterations_run,
        training_cer=model.training_cer,
        validation_cer=model.validation_cer,
        base_validation_cer=model.base_validation_cer,
        seconds=model.seconds,
        cpu_seconds=model.cpu_seconds,
        progress=progress,
        model_sha256=model.model_sha256,
        has_log=model.log_key is not None,
        has_training_set=model.training_set_key is not None,
        error=model.error,
        author=model.author,
        created_at=model.created_at,
        started_at=model.started_at,
        finished_at=model.finished_at,
    )


def _default_number(session: Session, project_id: int) -> int | None:
    found = service.default_version(session, project_id)
    return found.number if found is not None else None


def _version(session: Session, project_id: int, number: int) -> RecognizerModel:
    model = service.get_version(session, project_id, number)
    if model is None:
        raise NotFound(f"recogniser version {number} not found in project {project_id}")
    return model


@router.post(
    "/{project_id}/recognizers",
    status_code=status.HTTP_201_CREATED,
    response_model=RecognizerPublic,
    responses=errors(409),
)
def start_training(
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    outbox: OutboxDep,
    idempotency: IdempotencyDep,
    body: Annotated[TrainingRequest | None, Body()] = None,
) -> RecognizerPublic:
    """Train the project's next recogniser version on its verified pages and aligned ground
    truth, from the shipped model. 409 when a training is queued or running, or when the
    project has fewer lines than a training needs (`counts` says how many it has)."""
    model, dispatches = service.start_training(
        session=session,
        settings=settings,
        project=project,
        author=actor.name,
        parameters=body.model_dump(exclude_none=True) if body else None,
    )
    outbox.add(dispatches)
    result = idempotency.save(recognizer_public(model, _default_number(session, project.id)))
    session.commit()
    return result


@router.get("/{project_id}/recognizers", response_model=list[RecognizerPublic])
def list_recognizers(project: ProjectDep, session: SessionDep) -> list[RecognizerPublic]:
    """The project's recogniser versions, newest first, with how each was trained and what
    it reached; `default` marks the one new runs read with."""
    default = _default_number(session, project.id)
    return [recognizer_public(m, default) for m in service.list_versions(session, project.id)]


@router.get("/{project_id}/recognizers/{number}", response_model=RecognizerPublic)
def get_recognizer(project: ProjectDep, number: RowId, session: SessionDep) -> RecognizerPublic:
    """One version: its training's progress (polled while it trains) and figures."""
    model = _version(session, project.id, number)
    return recognizer_public(model, _default_number(session, project.id))


@router.post(
    "/{project_id}/recognizers/{number}/cancel",
    response_model=RecognizerPublic,
    responses=errors(409),
)
def cancel_recognizer(project: ProjectDep, number: RowId, session: SessionDep) -> RecognizerPublic:
    """Cancel a queued or running training: it stops within seconds, writes no model, and the
    default version stays as it was. 409 when the training has finished."""
    model = service.cancel_training(session, _version(session, project.id, number))
    return recognizer_public(model, _default_number(session, project.id))


@router.get(
    "/{project_id}/recognizers/{number}/log",
    response_class=Response,
    responses=text("text/plain", "the training tools' output"),
)
def recognizer_log(
    project: ProjectDep, number: RowId, session: SessionDep, storage: StorageDep
) -> Response:
    """The training's log (the commands run and their output); 404 until there is one."""
    model = _version(session, project.id, number)
    if model.log_key is None or not storage.exists(model.log_key):
        raise NotFound(f"recogniser version {number} has no log yet")
    return Response(storage.read_bytes(model.log_key), media_type="text/plain; charset=utf-8")


@router.get(
    "/{project_id}/recognizers/{number}/training-set.zip",
    response_class=Response,
    responses=binary("application/zip", description="the line images and their texts"),
)
def training_set(
    project: ProjectDep, number: RowId, session: SessionDep, storage: StorageDep
) -> Response:
    """The version's training set as `name.png` + `name.gt.txt` pairs (what tesstrain, kraken
    and Calamari read) and `manifest.csv` (each line's source, document, page, run and line);
    404 until the training has cut its lines."""
    model = _version(session, project.id, number)
    if model.training_set_key is None or not storage.exists(model.training_set_key):
        raise NotFound(f"recogniser version {number} has no training set yet")
    name = f"project-{project.id}-recognizer-{number}-training-set.zip"
    return Response(
        storage.read_bytes(model.training_set_key),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _settings_public(
    session: Session, project_id: int, base_model: str
) -> RecognizerSettingsPublic:
    active = service.active_training(session, project_id)
    return RecognizerSettingsPublic(
        auto_train_after=service.auto_train_after(session, project_id),
        min_lines=service.RecognizerLimits().min_lines,
        base_model=base_model,
        default_version=_default_number(session, project_id),
        active_version=active.number if active is not None else None,
        available=TrainingLines(**plan_training_set(session, project_id).counts()),
        verified_since_last=service.since_last_version(session, project_id),
    )


@router.get("/{project_id}/recognizer-settings", response_model=RecognizerSettingsPublic)
def get_recognizer_settings(
    project: ProjectDep, session: SessionDep, settings: SettingsDep
) -> RecognizerSettingsPublic:
    """When the project's recogniser trains, which version new runs use, and how many lines
    a training would get now."""
    return _settings_public(session, project.id, service.base_model(settings))


@router.put("/{project_id}/recognizer-settings", response_model=RecognizerSettingsPublic)
def put_recognizer_settings(
    body: RecognizerSettingsUpdate,
    project: ProjectDep,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> RecognizerSettingsPublic:
    """Set after how many newly verified lines the recogniser trains by itself (null: off)."""
    service.set_auto_train_after(session, project.id, body.auto_train_after, actor.name)
    return _settings_public(session, project.id, service.base_model(settings))
