"""How wrong a page's text probably is, estimated without ground truth, and the review queue.

A reviewer with 500 pages and no ground truth needs to know which pages to read first. Every
run already says a lot about its own errors; four signals are combined per page:

- ``low_confidence``: 1 − Tesseract's mean word confidence over the page's lines, weighted by
  line length (the ``lines`` table; models/ocr/layout.py makes them);
- ``weak_share``: the share of characters in lines whose weakest word is below ``WEAK_WORD``,
  since one unreadable word hides in a mean;
- ``bits_per_character``: how implausible the text's letter sequences are for a directory of
  the collection (app/pipeline/charmodel.py, a character trigram model);
- ``unparsed_share``: the share of lines the extractor made no record of (only when the run
  extracts; garbled lines rarely parse as entries).

They are combined linearly (``QualityModel``): coefficients fitted by least squares on the 15
benchmark pages (bench/quality_estimate.py, which also reports leave-one-document-out rank
correlations), a missing signal replaced by its benchmark mean. When the run has a correction
stage, the character distance between OCR and correction per OCR character (``disagreement``)
is added with an unfitted weight (the benchmark run has no correction to fit it on): a page the
corrector rewrote heavily was hard to read, and the rewrite itself needs a look.

A page with no text at all (blank, failed, all noise) is estimated at 1.0: every printed
character on it, if any, is missing. Estimates are computed on read, not stored (no migration),
and cached per run until the run's results change (``RunEstimates``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from threading import Lock

import numpy as np
from rapidfuzz.distance import Levenshtein
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.tables import Line, Page, Record, Run, StageResult, StageStatus
from app.metrics.text import normalize_raw
from app.pipeline.charmodel import CharModel, shipped_model

#: A word Tesseract is less than this sure of (0–1) makes its line "weak".
WEAK_WORD = 0.6
FEATURES = ("low_confidence", "weak_share", "bits_per_character", "unparsed_share")


@dataclass(frozen=True)
class LineSignal:
    """What the OCR said about one line."""

    text: str
    confidence: float | None
    min_confidence: float | None


@dataclass(frozen=True)
class PageSignals:
    """The estimate's inputs for one page; None where the run cannot tell."""

    characters: int
    low_confidence: float | None = None
    weak_share: float | None = None
    bits_per_character: float | None = None
    unparsed_share: float | None = None
    disagreement: float | None = None


@dataclass(frozen=True)
class QualityModel:
    """Standardised signals summed with fixed weights, then calibrated to a CER linearly.

    With 15 pages (12 in a leave-one-document-out fold) free per-signal weights overfit (the
    held-out rank correlation fell to 0.2 in bench/quality_estimate.py); equal weights on
    z-scores rank as well as the best single signal and more stably. Only the scale (means,
    standard deviations) and the calibration (intercept, slope) are fitted. ``means`` also stand
    in for a signal the run cannot give (no extraction: no ``unparsed_share``).
    """

    intercept: float
    slope: float
    means: dict[str, float]
    scales: dict[str, float]
    disagreement_weight: float = 0.5

    def score(self, signals: PageSignals) -> float:
        """The uncalibrated combination: the mean z-score of the signals."""
        total = 0.0
        for name in FEATURES:
            observed = getattr(signals, name)
            value = self.means[name] if observed is None else observed
            total += (value - self.means[name]) / self.scales[name]
        return total / len(FEATURES)

    def estimate(self, signals: PageSignals) -> float:
        """Estimated CER of the page's text, clipped to [0, 1]."""
        if signals.characters == 0:
            return 1.0
        value = self.intercept + self.slope * self.score(signals)
        if signals.disagreement is not None:
            value += self.disagreement_weight * signals.disagreement
        return round(min(1.0, max(0.0, value)), 4)


def fit(samples: Sequence[tuple[PageSignals, float]]) -> QualityModel:
    """Scale the signals on the samples, then fit CER = intercept + slope * score."""
    means, scales = {}, {}
    for name in FEATURES:
        values = [v for s, _ in samples if (v := getattr(s, name)) is not None] or [0.0]
        means[name] = round(float(np.mean(values)), 5)
        scales[name] = round(float(np.std(values)) or 1.0, 5)
    unscaled = QualityModel(0.0, 1.0, means, scales)
    scores = np.array([unscaled.score(s) for s, _ in samples])
    slope, intercept = np.polyfit(scores, np.array([cer for _, cer in samples]), 1)
    return QualityModel(round(float(intercept), 5), round(float(max(slope, 0.0)), 5), means, scales)


#: Fitted by `bench/quality_estimate.py --write-model` on the 15 benchmark pages (default
#: offline pipeline, signals from held-out character models); printed by that script.
SHIPPED = QualityModel(
    intercept=0.05721,
    slope=0.0327,
    means={
        "low_confidence": 0.20461,
        "weak_share": 0.62921,
        "bits_per_character": 3.66202,
        "unparsed_share": 0.37065,
    },
    scales={
        "low_confidence": 0.05967,
        "weak_share": 0.20954,
        "bits_per_character": 0.23093,
        "unparsed_share": 0.20111,
    },
)


def page_signals(
    lines: Sequence[LineSignal],
    text: str,
    *,
    records: int | None = None,
    ocr_text: str | None = None,
    model: CharModel | None = None,
) -> PageSignals:
    """The signals of a page: its OCR lines, its latest text, records, and the OCR text when a
    correction produced ``text`` (None otherwise)."""
    clean = normalize_raw(text)
    if not clean:
        return PageSignals(characters=0)
    scored = [line for line in lines if line.text.strip() and line.confidence is not None]
    weights = [len(line.text.strip()) for line in scored]
    low_confidence = weak_share = None
    if scored:
        total = sum(weights)
        mean = sum(w * (line.confidence or 0.0) for w, line in zip(weights, scored, strict=True))
        low_confidence = 1.0 - mean / total
        weak = sum(
            w
            for w, line in zip(weights, scored, strict=True)
            if (line.min_confidence if line.min_confidence is not None else 1.0) < WEAK_WORD
        )
        weak_share = weak / total
    unparsed = None
    printed = [line for line in text.splitlines() if line.strip()]
    if records is not None and printed:
        unparsed = max(0.0, 1.0 - records / len(printed))
    disagreement = None
    if ocr_text is not None:
        reference = normalize_raw(ocr_text)
        disagreement = Levenshtein.distance(reference, clean) / max(1, len(reference))
    return PageSignals(
        characters=len(clean),
        low_confidence=low_confidence,
        weak_share=weak_share,
        bits_per_character=(model or shipped_model()).bits_per_character(text),
        unparsed_share=unparsed,
        disagreement=disagreement,
    )


@dataclass(frozen=True)
class PageEstimate:
    """A page of a run with its estimated CER."""

    page_id: int
    document_id: int
    page_number: int
    estimated_cer: float


_CACHE: OrderedDict[tuple[int, tuple[object, ...]], list[PageEstimate]] = OrderedDict()
_CACHE_RUNS = 64
_LOCK = Lock()


def run_estimates(session: Session, run: Run, model: QualityModel = SHIPPED) -> list[PageEstimate]:
    """Every page of the run with its estimate, in document and page order; cached per run
    until a stage result or record of the run changes."""
    stamp = session.execute(
        select(func.count(StageResult.id), func.max(StageResult.finished_at)).where(
            StageResult.run_id == run.id
        )
    ).one()
    records = session.scalar(select(func.count(Record.id)).where(Record.run_id == run.id))
    # created_at too: SQLite may give a deleted run's id to the next run.
    key = (run.id, (_iso(run.created_at), stamp[0], _iso(stamp[1]), records))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    estimates = _compute(session, run, model)
    with _LOCK:
        _CACHE[key] = estimates
        while len(_CACHE) > _CACHE_RUNS:
            _CACHE.popitem(last=False)
    return estimates


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _compute(
    session: Session, run: Run, model: QualityModel, page_id: int | None = None
) -> list[PageEstimate]:
    """Estimates of the run's pages, or of the one page `page_id` (if it is the run's)."""
    document_ids = [document.id for document in run.documents]
    query = select(Page).where(Page.document_id.in_(document_ids))
    if page_id is not None:
        query = query.where(Page.id == page_id)
    pages = session.scalars(query.order_by(Page.document_id, Page.number)).all()
    page_ids = [page.id for page in pages]
    results: dict[int, dict[str, StageResult]] = {}
    for result in session.scalars(
        select(StageResult)
        .where(
            StageResult.run_id == run.id,
            StageResult.status == StageStatus.DONE,
            StageResult.page_id.in_(page_ids),
        )
        .order_by(StageResult.position)
    ):
        results.setdefault(result.page_id, {})[result.stage] = result
    lines: dict[int, list[LineSignal]] = {}
    for line in session.scalars(
        select(Line)
        .where(Line.run_id == run.id, Line.page_id.in_(page_ids))
        .order_by(Line.stage_result_id, Line.position)
    ):
        lines.setdefault(line.stage_result_id, []).append(
            LineSignal(line.text, line.confidence, line.min_confidence)
        )
    counts = dict(
        session.execute(
            select(Record.page_id, func.count(Record.id))
            .where(Record.run_id == run.id, Record.page_id.in_(page_ids))
            .group_by(Record.page_id)
        ).all()
    )
    extracts = any(stage.stage == "extract" for stage in run.config.stages)
    estimates = []
    for page in pages:
        done = results.get(page.id, {})
        ocr, latest = done.get("ocr"), done.get("correct") or done.get("ocr")
        signals = PageSignals(characters=0)
        if latest is not None and latest.text is not None:
            signals = page_signals(
                lines.get(ocr.id, []) if ocr else [],
                latest.text,
                records=counts.get(page.id, 0) if "extract" in done or extracts else None,
                ocr_text=ocr.text if ocr is not None and latest is not ocr else None,
            )
        estimates.append(
            PageEstimate(page.id, page.document_id, page.number, model.estimate(signals))
        )
    return estimates


def page_estimate(session: Session, run: Run, page_id: int) -> float | None:
    """The estimate of one page of the run, None if the page is not part of the run. Computed
    for that page alone (a page view must not pay for a 500-page run), the same figure as in
    the run's queue."""
    estimates = _compute(session, run, SHIPPED, page_id)
    return estimates[0].estimated_cer if estimates else None
