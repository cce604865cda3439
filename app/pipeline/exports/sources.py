"""Which run's records a project-level export takes for each of the project's documents.

By default each document comes from the latest finished run (done or partial) that extracted
records from it (an extraction result on one of its pages succeeded): the newest pipeline a
researcher ran over it. With an explicit list of runs, each document comes from the first run
of the list that covers it and extracts, so the order of the list says which run wins; the
project's documents that no listed run covers are left out. One document never appears twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from app.db.tables import (
    Page,
    Project,
    Run,
    RunStatus,
    StageResult,
    StageStatus,
    run_documents,
)
from app.errors import InvalidRequest, NotFound
from app.pipeline.exports.records import RecordExport, RecordSource
from app.pipeline.versions import Version

#: Runs whose records a default project export takes.
FINISHED = (RunStatus.DONE, RunStatus.PARTIAL)


def project_export(
    session: Session, project: Project, version: Version, run_ids: Sequence[int] | None = None
) -> RecordExport:
    """The project's records, one run per document, documents in upload order; the columns are
    the project's fields, then those only some of the chosen runs extracted."""
    if run_ids:
        chosen = _listed(session, project, run_ids)
    else:
        chosen = _latest(session, project)
    runs = {
        run.id: run for run in session.scalars(select(Run).where(Run.id.in_(set(chosen.values()))))
    }
    sources = tuple(
        RecordSource(run_id, tuple(document_id for document_id, _ in block))
        for run_id, block in groupby(sorted(chosen.items()), key=lambda item: item[1])
    )
    fields = list(project.schema_fields)
    for run_id in dict.fromkeys(chosen.values()):
        fields += [f for f in runs[run_id].config.schema_fields if f not in fields]
    return RecordExport(sources, tuple(fields), version)


def _latest(session: Session, project: Project) -> dict[int, int]:
    """Document id → the latest finished run that extracted records from it."""
    extracted = exists().where(
        StageResult.run_id == Run.id,
        StageResult.stage == "extract",
        StageResult.status == StageStatus.DONE,
        StageResult.page_id == Page.id,
        Page.document_id == run_documents.c.document_id,
    )
    rows = session.execute(
        select(run_documents.c.document_id, Run.id)
        .join(Run, Run.id == run_documents.c.run_id)
        .where(Run.project_id == project.id, Run.status.in_(FINISHED), extracted)
        .order_by(run_documents.c.document_id, Run.id)
    )
    # Ordered by run: the last (highest) run id of each document wins.
    return {document_id: run_id for document_id, run_id in rows}


def _listed(session: Session, project: Project, run_ids: Sequence[int]) -> dict[int, int]:
    """Document id → the first listed run that covers it."""
    runs = {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(set(run_ids))))}
    for run_id in run_ids:
        run = runs.get(run_id)
        if run is None or run.project_id != project.id:
            raise NotFound(f"run {run_id} not found in project {project.id}")
        if not run.config.extracts:
            raise InvalidRequest(f"run {run_id} does not extract records")
    covered = session.execute(
        select(run_documents.c.run_id, run_documents.c.document_id).where(
            run_documents.c.run_id.in_(set(run_ids))
        )
    )
    by_run: dict[int, list[int]] = {}
    for run_id, document_id in covered:
        by_run.setdefault(run_id, []).append(document_id)
    chosen: dict[int, int] = {}
    for run_id in dict.fromkeys(run_ids):
        for document_id in by_run.get(run_id, []):
            chosen.setdefault(document_id, run_id)
    return chosen
