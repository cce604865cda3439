"""Tesseract's LSTM training tools, driven from Python: samples in, a `.traineddata` out.

The procedure is tesstrain's for fine-tuning (github.com/tesseract-ocr/tesstrain):

1. the base model's network and character set come out of its `.traineddata`
   (`combine_tessdata -e` / `-u`);
2. each line image gets a one-line box file (`WordStr`, the whole image is the line) and is
   turned into an `.lstmf` sample by `tesseract IMAGE BASE --psm 13 lstm.train`;
3. `lstmtraining --continue_from base.lstm --traineddata base.traineddata` continues the
   network's training on them, with the learning rate reset to a low one;
4. `lstmtraining --stop_training` writes the chosen checkpoint as a `.traineddata` that
   Tesseract loads like any other model.

Every subprocess runs with `OMP_THREAD_LIMIT=1`: lstmtraining trains on one line at a time,
and with two OpenMP threads on a busy two-core machine it spent 6x the CPU time for the same
50 iterations (20 s instead of 3.5 s; the threads spin while waiting for each other). Cores
are used instead by making samples side by side. The orchestration (chunks, validation,
early stopping) is in `models.ocr.training`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from rapidfuzz.distance import Levenshtein

from models.ocr.transcription import regularise

#: The `lstm.train` config Tesseract ships (tessdata/configs/lstm.train), written next to the
#: samples: the shipped model folder has no configs/ and the system's may be elsewhere.
LSTM_TRAIN_CONFIG = """\
file_type .bl
textord_fast_pitch_test T
tessedit_zero_rejection T
tessedit_minimal_rejection F
tessedit_write_rep_codes F
edges_children_fix F
edges_childarea 0.65
edges_boxarea 0.9
tessedit_train_line_recognizer T
textord_no_rejects T
tessedit_init_config_only T
"""

_TRUTH = "Truth:"
_OCR = "OCR  :"
_TRAIN_PROGRESS = re.compile(r"At iteration (\d+)/(\d+)/(\d+).*?BCER train=([0-9.]+)%")

#: Polls a cancel check this often while a subprocess runs (seconds).
_POLL_S = 0.5


class TrainingFailed(RuntimeError):
    """A training tool is missing, failed or produced nothing usable."""


class TrainingCancelled(RuntimeError):
    """The caller's cancel check said stop; no model was written."""


@dataclass(frozen=True)
class Tools:
    """The Tesseract programs a training needs, and how many samples are made at once."""

    tesseract: str = "tesseract"
    lstmtraining: str = "lstmtraining"
    lstmeval: str = "lstmeval"
    combine_tessdata: str = "combine_tessdata"
    #: Samples made side by side (each Tesseract process single-threaded).
    parallel: int = 1

    def check(self) -> None:
        """TrainingFailed naming the first program that is not installed."""
        for program in (self.tesseract, self.lstmtraining, self.lstmeval, self.combine_tessdata):
            if shutil.which(program) is None:
                raise TrainingFailed(
                    f"{program!r} is not installed; on Debian: apt-get install tesseract-ocr "
                    "(it ships lstmtraining, lstmeval and combine_tessdata)"
                )

    @staticmethod
    def environment() -> dict[str, str]:
        """The subprocess environment: one OpenMP thread (see the module docstring)."""
        return {**os.environ, "OMP_THREAD_LIMIT": "1"}


@dataclass(frozen=True)
class BaseModel:
    """The model training starts from, unpacked into a working folder."""

    name: str
    traineddata: Path
    lstm: Path
    characters: frozenset[str]


def run_tool(
    arguments: Sequence[str],
    tools: Tools,
    log: Path,
    cancelled: Callable[[], bool] | None = None,
    timeout_s: float | None = None,
) -> str:
    """Run one training program, its output appended to the log; returns that output.

    While it runs, `cancelled` is polled and the program killed when it says so
    (TrainingCancelled); a non-zero exit is TrainingFailed with the output's last line.
    """
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(arguments) + "\n")
        handle.flush()
        offset = handle.tell()
        process = subprocess.Popen(
            list(arguments),
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=tools.environment(),
        )
        try:
            while process.poll() is None:
                if cancelled is not None and cancelled():
                    raise TrainingCancelled("training cancelled")
                if timeout_s is not None and time.monotonic() - started > timeout_s:
                    raise TrainingFailed(f"{arguments[0]} took longer than {timeout_s:.0f} s")
                try:
                    process.wait(timeout=_POLL_S)
                except subprocess.TimeoutExpired:
                    continue
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    with log.open("r", encoding="utf-8", errors="replace") as handle:
        handle.seek(offset)
        output = handle.read()
    if process.returncode != 0:
        lines = [line for line in output.splitlines() if line.strip()]
        raise TrainingFailed(
            f"{Path(arguments[0]).name} failed (exit {process.returncode}): "
            f"{lines[-1] if lines else 'no output'} (log: {log})"
        )
    return output


def unpack_base(traineddata: Path, folder: Path, tools: Tools, log: Path) -> BaseModel:
    """The base model's network (`.lstm`) and the characters it can write."""
    folder.mkdir(parents=True, exist_ok=True)
    name = traineddata.name.removesuffix(".traineddata")
    prefix = folder / f"{name}."
    run_tool([tools.combine_tessdata, "-u", str(traineddata), str(prefix)], tools, log)
    lstm = folder / f"{name}.lstm"
    unicharset = folder / f"{name}.lstm-unicharset"
    if not lstm.is_file() or not unicharset.is_file():
        raise TrainingFailed(f"{traineddata} has no LSTM network to continue from")
    return BaseModel(name, traineddata, lstm, read_unicharset(unicharset))


def read_unicharset(path: Path) -> frozenset[str]:
    """The characters of a unicharset file (entries of several code points count each)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    characters: set[str] = set()
    for line in lines:
        entry = line.split(" ", 1)[0]
        if entry and entry not in ("NULL", "Joined", "|Broken|0|1"):
            characters.update(unicodedata.normalize("NFC", entry))
            characters.update(unicodedata.normalize("NFD", entry))
    return frozenset(characters)


def unencodable(text: str, characters: frozenset[str]) -> str:
    """The characters of `text` the model cannot write (spaces excepted), in order, once."""
    missing = dict.fromkeys(
        c for c in unicodedata.normalize("NFC", text) if not c.isspace() and c not in characters
    )
    return "".join(missing)


def write_box(image: Path, text: str) -> Path:
    """A `WordStr` box file for a line image: the whole image is the one line of `text`."""
    with Image.open(image) as opened:
        width, height = opened.size
    box = image.with_suffix(".box")
    box.write_text(
        f"WordStr 0 0 {width} {height} 0 #{text}\n\t {width} {height} {width + 1} {height + 1} 0\n",
        encoding="utf-8",
    )
    return box


def make_lstmf(
    images: Sequence[tuple[Path, str]],
    base: BaseModel,
    tools: Tools,
    log: Path,
    cancelled: Callable[[], bool] | None = None,
) -> list[Path]:
    """An `.lstmf` sample beside each line image (threads side by side, one thread each)."""
    config = images[0][0].parent / "lstm.train" if images else None
    if config is None:
        return []
    config.write_text(LSTM_TRAIN_CONFIG, encoding="utf-8")

    def make(item: tuple[Path, str]) -> Path:
        image, text = item
        write_box(image, text)
        out_base = image.with_suffix("")
        run_tool(
            [
                tools.tesseract,
                str(image),
                str(out_base),
                "--tessdata-dir",
                str(base.traineddata.parent),
                "-l",
                base.name,
                "--psm",
                "13",
                str(config),
            ],
            tools,
            log,
            cancelled,
            timeout_s=120,
        )
        return out_base.with_suffix(".lstmf")

    with ThreadPoolExecutor(max_workers=max(1, tools.parallel)) as pool:
        made = list(pool.map(make, images))
    return [path for path in made if path.is_file() and path.stat().st_size > 0]


def evaluate(
    model: Path,
    base: BaseModel,
    listfile: Path,
    tools: Tools,
    log: Path,
    cancelled: Callable[[], bool] | None = None,
) -> float:
    """The character error rate (a fraction) of a network or checkpoint on listed samples,
    its readings regularised first (ſ → s, oͤ → ö: `regularise`), as the product's text is.

    lstmeval's own figure compares the diplomatic reading with the line's text, so the base
    model would be charged for every long s a transcription writes as s, and a tuned model
    would be credited for merely learning that spelling. lstmeval prints every line's truth
    and reading at `--verbosity 2`; the rate is recomputed from those.
    """
    output = run_tool(
        [
            tools.lstmeval,
            "--model",
            str(model),
            "--traineddata",
            str(base.traineddata),
            "--eval_listfile",
            str(listfile),
            "--verbosity",
            "2",
        ],
        tools,
        log,
        cancelled,
    )
    pairs = read_eval_pairs(output)
    if not pairs:
        raise TrainingFailed(f"lstmeval read no line (log: {log})")
    return character_error_rate(pairs)


def read_eval_pairs(output: str) -> list[tuple[str, str]]:
    """(truth, reading) of each line lstmeval printed."""
    pairs = []
    truth: str | None = None
    for line in output.splitlines():
        if line.startswith(_TRUTH):
            truth = line[len(_TRUTH) :]
        elif line.startswith(_OCR) and truth is not None:
            pairs.append((truth, line[len(_OCR) :]))
            truth = None
    return pairs


def character_error_rate(pairs: Sequence[tuple[str, str]]) -> float:
    """Summed edit distance over summed truth length, both regularised, spaces folded (the
    targets keep the model's letter forms: models/ocr/truthforms.py)."""
    distance = length = 0
    for truth, reading in pairs:
        reference = " ".join(regularise(truth).split())
        hypothesis = " ".join(regularise(reading).split())
        distance += Levenshtein.distance(reference, hypothesis)
        length += len(reference)
    return distance / max(1, length)


def train_until(
    iterations: int,
    base: BaseModel,
    train_list: Path,
    output_base: Path,
    learning_rate: float,
    tools: Tools,
    log: Path,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[int, float | None]:
    """Continue training until `iterations` in all (lstmtraining resumes from the checkpoint
    beside `output_base` when there is one); returns the iteration reached and the last
    training error (fraction) it reported."""
    output = run_tool(
        [
            tools.lstmtraining,
            "--continue_from",
            str(base.lstm),
            "--traineddata",
            str(base.traineddata),
            "--model_output",
            str(output_base),
            "--train_listfile",
            str(train_list),
            "--learning_rate",
            str(learning_rate),
            "--reset_learning_rate",
            "--max_iterations",
            str(iterations),
            # Stop only on the iteration count: the samples are few, so the training error
            # reaches any target long before the model stops improving on unseen lines.
            "--target_error_rate",
            "0",
            "--debug_interval",
            "0",
        ],
        tools,
        log,
        cancelled,
    )
    found = _TRAIN_PROGRESS.findall(output)
    if not found:
        return iterations, None
    last = found[-1]
    return int(last[1]), float(last[3]) / 100


def write_traineddata(
    checkpoint: Path, base: BaseModel, target: Path, tools: Tools, log: Path
) -> Path:
    """The checkpoint as a `.traineddata` (the base's dictionaries and settings kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    run_tool(
        [
            tools.lstmtraining,
            "--stop_training",
            "--continue_from",
            str(checkpoint),
            "--traineddata",
            str(base.traineddata),
            "--model_output",
            str(target),
        ],
        tools,
        log,
    )
    if not target.is_file() or target.stat().st_size == 0:
        raise TrainingFailed(f"lstmtraining wrote no model to {target} (log: {log})")
    return target
