"""Fine-tune the offline recogniser (frak2021) on line images with their true text.

`finetune_model` is what a training task calls: samples (line images and their text) in; a
`.traineddata` file, the validation error it reached and how it got there out. It trains in
chunks of iterations and measures the model on held-out lines after each; it keeps the best
checkpoint and stops when more training no longer helps (early stopping), when the iteration
budget is spent, or when the caller's cancel check says so (no model is written then). A
progress callback hears about each chunk, so a task can report and a UI can draw the curve.
The Tesseract side (`lstmtraining`, `lstmeval`, `combine_tessdata`) is in
`models.ocr.finetune`; cutting line images from pages in `models.ocr.linecut`. The model it
makes reads best with the engine's `reading="lines"` (models/ocr/lineread.py): it was
trained on the same cuts.

No database, no Celery: a worker task wraps it with its own progress and cancel state.
"""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.ocr.finetune import (
    Tools,
    TrainingCancelled,
    TrainingFailed,
    evaluate,
    make_lstmf,
    train_until,
    unencodable,
    unpack_base,
    write_traineddata,
)
from models.ocr.tessdata import model_file, search_path
from models.ocr.transcription import regularise

__all__ = [
    "FinetuneConfig",
    "FinetuneSettings",
    "FinetuneResult",
    "TrainingCancelled",
    "TrainingFailed",
    "TrainingProgress",
    "finetune_model",
    "split_samples",
]


@dataclass(frozen=True)
class FinetuneConfig:
    """How a fine-tune runs. The defaults were measured on the benchmark (bench/finetune.py)."""

    #: The model training starts from, looked up like a run's model (`tessdata_dir` first,
    #: then the shipped models, then the system's).
    base_model: str = "frak2021"
    tessdata_dir: str | None = None
    #: Name of the trained model (`<name>.traineddata`, used as Tesseract's `-l <name>`).
    model_name: str = "histocr-tuned"
    #: Replaces the base's stored per-layer rates (frak2021: 0.00025–0.002). Trained on one
    #: page (15–40 lines), 0.0001 made the later pages worse (type-5: 6.4 → 7.3 % normalized
    #: CER, the model began to garble words); 0.00001 made all three documents tried better.
    learning_rate: float = 0.00001
    max_iterations: int = 1500
    #: Training is measured on the held-out lines after every chunk of this many iterations
    #: (lstmtraining saves its checkpoint every 100).
    chunk_iterations: int = 300
    #: Stop after this many chunks in a row worse than the best by more than one character
    #: of the held-out lines.
    patience: int = 2
    #: Share of the lines held out to choose the checkpoint (at least one line is held out;
    #: with a single line it is also the training line).
    validation_fraction: float = 0.2
    #: Cores for making samples side by side (training itself runs on one: see
    #: models/ocr/finetune.py).
    threads: int = 1
    tesseract: str = "tesseract"


class FinetuneSettings(BaseSettings):
    """This machine's defaults for fine-tuning (HISTOCR_FINETUNE_*): the budget a training
    may spend and how fast it moves away from the base model."""

    model_config = SettingsConfigDict(env_prefix="HISTOCR_FINETUNE_", extra="ignore")

    learning_rate: float = Field(default=FinetuneConfig.learning_rate, gt=0, le=0.01)
    max_iterations: int = Field(default=FinetuneConfig.max_iterations, ge=1)
    chunk_iterations: int = Field(default=FinetuneConfig.chunk_iterations, ge=1)
    patience: int = Field(default=FinetuneConfig.patience, ge=1)
    validation_fraction: float = Field(default=FinetuneConfig.validation_fraction, gt=0, lt=1)
    threads: int = Field(default=2, ge=1)

    def config(self, **given: object) -> FinetuneConfig:
        """A training configuration with these defaults and what the caller sets."""
        values: dict[str, object] = {name: getattr(self, name) for name in type(self).model_fields}
        return FinetuneConfig(**{**values, **given})  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainingProgress:
    """Where a training stands after a chunk (errors are fractions, 0.05 = 5 %)."""

    iteration: int
    max_iterations: int
    training_cer: float | None
    validation_cer: float
    best_validation_cer: float
    best_iteration: int


@dataclass(frozen=True)
class FinetuneResult:
    """The trained model and how it was trained."""

    model_path: Path
    model_name: str
    #: Iterations of the checkpoint that was kept (0: no checkpoint beat the base model,
    #: which is then written unchanged under the new name).
    iterations: int
    iterations_run: int
    training_cer: float | None
    validation_cer: float
    base_validation_cer: float
    seconds: float
    #: CPU seconds the training tools used (user + system): the machine-independent cost,
    #: where `seconds` depends on what else the machine was doing.
    cpu_seconds: float
    training_lines: int
    validation_lines: int
    #: Lines left out because the model cannot write one of their characters, and which.
    skipped_lines: int
    skipped_characters: str
    log_path: Path
    history: tuple[TrainingProgress, ...] = field(default=())
    learning_rate: float = 0.0


def split_samples(
    samples: Sequence[tuple[Path, str]], validation_fraction: float
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Training and validation lines: every k-th line held out, so validation spreads over
    the pages and documents in the order given rather than taking one end of them."""
    if len(samples) < 2:
        return list(samples), list(samples)
    held = max(1, round(len(samples) * validation_fraction))
    step = len(samples) / held
    chosen = {min(len(samples) - 1, int(step * k + step / 2)) for k in range(held)}
    training = [s for i, s in enumerate(samples) if i not in chosen]
    validation = [s for i, s in enumerate(samples) if i in chosen]
    return training, validation


def _base_traineddata(config: FinetuneConfig) -> Path:
    found = model_file(config.base_model, search_path(config.tessdata_dir, config.tesseract))
    if found is None:
        raise TrainingFailed(f"base model {config.base_model!r} not found on the model path")
    return found


def _copy_samples(samples: Sequence[tuple[Path, str]], folder: Path) -> list[tuple[Path, str]]:
    """The images copied under unique names into the working folder (Tesseract writes the box
    and sample files beside each image; the caller's folder stays as it was)."""
    folder.mkdir(parents=True, exist_ok=True)
    copied = []
    for index, (image, text) in enumerate(samples):
        target = folder / f"{index:05d}-{image.stem}{image.suffix}"
        shutil.copyfile(image, target)
        copied.append((target, text))
    return copied


def _listfile(path: Path, samples: Sequence[Path]) -> Path:
    path.write_text("".join(f"{sample}\n" for sample in samples), encoding="utf-8")
    return path


def finetune_model(
    samples: Sequence[tuple[Path, str]],
    workdir: Path,
    output: Path,
    config: FinetuneConfig = FinetuneConfig(),
    *,
    progress: Callable[[TrainingProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> FinetuneResult:
    """Fine-tune the base model on (line image, text) samples; the model goes to `output`
    (a `.traineddata` path, written only when training finishes).

    Raises TrainingCancelled when `cancelled()` turns true (checked while every tool runs),
    TrainingFailed when a tool is missing or fails, or when no line is usable.
    """
    started = time.monotonic()
    cpu_started = _children_cpu()
    tools = Tools(tesseract=config.tesseract, parallel=config.threads)
    tools.check()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "training.log"
    base = unpack_base(_base_traineddata(config), workdir / "base", tools, log)
    usable = [(image, text.strip()) for image, text in samples if text.strip()]
    encodable = [(i, t) for i, t in usable if not unencodable(t, base.characters)]
    skipped = "".join(dict.fromkeys(c for _, t in usable for c in unencodable(t, base.characters)))
    if not encodable:
        raise TrainingFailed("no line to train on (none with a text the model can write)")
    training, validation = split_samples(encodable, config.validation_fraction)
    train_files = make_lstmf(
        _copy_samples(training, workdir / "train"), base, tools, log, cancelled
    )
    eval_files = make_lstmf(
        _copy_samples(validation, workdir / "eval"), base, tools, log, cancelled
    )
    if not train_files or not eval_files:
        raise TrainingFailed(f"Tesseract made no training samples (log: {log})")
    train_list = _listfile(workdir / "train.txt", train_files)
    eval_list = _listfile(workdir / "eval.txt", eval_files)

    base_cer = evaluate(base.lstm, base, eval_list, tools, log, cancelled)
    # One character of the held-out lines: a difference that small is noise, not a finding.
    tolerance = 1 / max(1, sum(len(" ".join(regularise(t).split())) for _, t in validation))
    chunks = [_Chunk(0, base_cer, None, None)]
    history: list[TrainingProgress] = []
    output_base = workdir / "checkpoints" / config.model_name
    output_base.parent.mkdir(exist_ok=True)
    reached = 0
    while reached < config.max_iterations:
        target = min(config.max_iterations, reached + config.chunk_iterations)
        reached, training_cer = train_until(
            target, base, train_list, output_base, config.learning_rate, tools, log, cancelled
        )
        checkpoint = output_base.with_name(output_base.name + "_checkpoint")
        if not checkpoint.is_file():
            raise TrainingFailed(f"lstmtraining wrote no checkpoint (log: {log})")
        validation_cer = evaluate(checkpoint, base, eval_list, tools, log, cancelled)
        kept = workdir / "kept" / f"{reached}.checkpoint"
        kept.parent.mkdir(exist_ok=True)
        shutil.copyfile(checkpoint, kept)
        chunks.append(_Chunk(reached, validation_cer, training_cer, kept))
        step = TrainingProgress(
            reached,
            config.max_iterations,
            training_cer,
            validation_cer,
            min(chunk.validation_cer for chunk in chunks),
            _choose(chunks, tolerance).iteration,
        )
        history.append(step)
        if progress is not None:
            progress(step)
        if reached < target or _stalled(chunks, tolerance, config.patience):
            break  # lstmtraining stopped by itself, or validation stopped improving

    if cancelled is not None and cancelled():
        raise TrainingCancelled("training cancelled")
    chosen = _choose(chunks, tolerance)
    if chosen.checkpoint is None:
        # No checkpoint came near the base on the held-out lines: the base is the model.
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base.traineddata, output)
    else:
        write_traineddata(chosen.checkpoint, base, output, tools, log)
    return FinetuneResult(
        model_path=output,
        model_name=output.name.removesuffix(".traineddata"),
        iterations=chosen.iteration,
        iterations_run=reached,
        training_cer=chosen.training_cer,
        validation_cer=chosen.validation_cer,
        base_validation_cer=base_cer,
        seconds=round(time.monotonic() - started, 1),
        cpu_seconds=round(_children_cpu() - cpu_started, 1),
        training_lines=len(train_files),
        validation_lines=len(eval_files),
        skipped_lines=len(usable) - len(encodable),
        skipped_characters=skipped,
        log_path=log,
        history=tuple(history),
        learning_rate=config.learning_rate,
    )


@dataclass(frozen=True)
class _Chunk:
    """The model after a chunk of training, and how it did on the held-out lines."""

    iteration: int
    validation_cer: float
    training_cer: float | None
    checkpoint: Path | None


def _choose(chunks: Sequence[_Chunk], tolerance: float) -> _Chunk:
    """The latest model within `tolerance` of the lowest validation error.

    The held-out lines are a few dozen at most, so their error moves in steps of one
    character; between models that close, the one trained longer on the document's lines
    read its later pages better (measured on the benchmark: bench/finetune.py).
    """
    lowest = min(chunk.validation_cer for chunk in chunks)
    close = [chunk for chunk in chunks if chunk.validation_cer <= lowest + tolerance + 1e-12]
    return max(close, key=lambda chunk: chunk.iteration)


def _stalled(chunks: Sequence[_Chunk], tolerance: float, patience: int) -> bool:
    """Whether the last `patience` chunks were all worse than the best by more than noise."""
    lowest = min(chunk.validation_cer for chunk in chunks)
    recent = chunks[-patience:]
    return len(chunks) > patience and all(
        chunk.validation_cer > lowest + tolerance + 1e-12 for chunk in recent
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
