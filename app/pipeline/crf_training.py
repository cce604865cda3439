"""A project's own CRF model, trained on the records its reviewers verified.

The shipped prior (models/crf_prior.json) knows five directories. A project's directory has
its own layout, and every page a historian verifies is labelled data for it: the page's text
(with the reviewer's line corrections) and its records as reviewed (`latest`). This module
gathers those pages from the project's runs and trains a model on them, with the prior's
lexicon beside the project's words. The model file is named by a digest of what it was
trained on, so training again with no new verified page reuses the file, and a run records
exactly which model ran (``crf-project-3-<digest>``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.review import PageVerification
from app.db.tables import Page, Project, Record, Run, StageResult
from app.pipeline.versions import apply_line_edits, current_records
from models.crf import TrainingDocument, prior_extractor, train_extractor

#: Fewer verified records than this teach a model less than the prior already knows.
MIN_RECORDS = 20


@dataclass(frozen=True)
class VerifiedPage:
    """A verified page's reviewed text and records (field name → value)."""

    page_id: int
    run_id: int
    text: str
    records: tuple[dict[str, str | None], ...]


@dataclass(frozen=True)
class TrainedModel:
    """A model trained on a project's verified pages: its name among a run's choices."""

    name: str
    path: Path
    pages: int
    records: int
    reused: bool


def verified_pages_of(
    session: Session, project_id: int, fields: Sequence[str]
) -> list[VerifiedPage]:
    """Every page of the project verified in one of its extracting runs, as the last run to
    verify it left it (the same page verified in two runs counts once)."""
    rows = session.execute(
        select(PageVerification.page_id, PageVerification.run_id)
        .join(Run, Run.id == PageVerification.run_id)
        .join(Page, Page.id == PageVerification.page_id)
        .where(Run.project_id == project_id)
        .order_by(Page.document_id, Page.number, PageVerification.created_at, PageVerification.id)
    )
    latest: dict[int, int] = {}
    for page_id, run_id in rows:
        latest[page_id] = run_id  # later verifications come later in the order
    pages = []
    for page_id, run_id in latest.items():
        run = session.get_one(Run, run_id)
        if not run.config.extracts:
            continue
        stage = run.config.stage("extract").source or run.config.final_text_stage
        text = session.scalar(
            select(StageResult.text).where(
                StageResult.run_id == run_id,
                StageResult.page_id == page_id,
                StageResult.stage == stage,
            )
        )
        if not text:
            continue
        reviewed = apply_line_edits(session, run_id, stage, {page_id: text})[page_id] or text
        records = tuple(
            {name: _value(record.fields.get(name)) for name in fields}
            for record in current_records(session, run_id, "latest", Record.page_id == page_id)
        )
        pages.append(VerifiedPage(page_id, run_id, reviewed, records))
    return pages


def _value(value: object) -> str | None:
    return None if value is None else str(value)


def train_project_model(
    session: Session,
    project_id: int,
    model_dir: Path,
    *,
    min_records: int = MIN_RECORDS,
) -> TrainedModel | None:
    """Train (or reuse) the project's model; None while it has fewer verified records than
    `min_records`."""
    fields = list(session.get_one(Project, project_id).schema_fields)
    pages = verified_pages_of(session, project_id, fields)
    count = sum(len(page.records) for page in pages)
    if count < min_records or not count:
        return None
    content = json.dumps(
        [fields, [[page.text, list(page.records)] for page in pages]],
        ensure_ascii=False,
        sort_keys=True,
    )
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]
    name = f"project-{project_id}-{digest}"
    path = model_dir / f"{name}.json"
    if path.is_file():
        return TrainedModel(name, path, len(pages), count, reused=True)
    documents = [TrainingDocument.from_text(page.text, page.records, fields) for page in pages]
    extractor = train_extractor(documents, fields, base_lexicon=prior_extractor().lexicon)
    model_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    extractor.save(partial)
    partial.replace(path)  # a worker listing the folder never sees half a file
    return TrainedModel(name, path, len(pages), count, reused=False)
