"""Ingest: render an uploaded PDF or image into stored page images."""

import hashlib
import logging
from pathlib import Path

from sqlalchemy import delete, update

from app.db.session import utcnow
from app.db.tables import Document, DocumentStatus, Page
from app.errors import InvalidUpload
from app.pipeline.dispatch import INGEST_TASK, Dispatch
from app.pipeline.engines import default_parameters, engine_environment
from app.pipeline.outbox import enqueue
from app.pipeline.scheduler import advance, lock_run, materialize, runs_waiting_for
from app.storage import LocalStorage, StoredFile, move_into_store
from models.registry import engine_specs
from workers.celery_app import celery_app
from workers.context import TaskContext, beat_interval_s, celery_context, heartbeat

logger = logging.getLogger(__name__)


def ingest_document(ctx: TaskContext, document_id: int) -> None:
    """Render every page, store it, then start the runs that were waiting for this document."""
    with ctx.session() as session:
        claimed = session.execute(
            update(Document)
            .where(Document.id == document_id, Document.status == DocumentStatus.UPLOADED)
            .values(status=DocumentStatus.INGESTING, updated_at=utcnow(), error=None)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            logger.info("document %s: not waiting for ingest, nothing to do", document_id)
            return
        # A previous attempt may have died half-way: start the pages afresh.
        session.execute(delete(Page).where(Page.document_id == document_id))
        document = session.get_one(Document, document_id)
        source = ctx.storage.path(document.storage_key)
        media_type = document.media_type
    try:
        # A page that renders for longer than the lease must not pass for a dead worker's.
        with heartbeat(lambda: _beat(ctx, document_id), beat_interval_s(ctx.settings)):
            count = _render_and_store(ctx, document_id, source, media_type)
    except InvalidUpload as exc:
        _finish(ctx, document_id, DocumentStatus.FAILED, error=exc.message)
        return
    except Exception as exc:
        logger.exception("document %s: ingest failed", document_id)
        _finish(ctx, document_id, DocumentStatus.FAILED, error=f"ingest failed: {exc}")
        raise
    _finish(ctx, document_id, DocumentStatus.READY, page_count=count)


def _render_and_store(ctx: TaskContext, document_id: int, source: Path, media_type: str) -> int:
    from app.pipeline.media import render_pages

    count = 0
    work_dir = ctx.storage.root / "tmp"  # beside the store, so a page moves in by a rename
    work_dir.mkdir(parents=True, exist_ok=True)
    for rendered in render_pages(
        source,
        media_type,
        dpi=ctx.settings.render_dpi,
        preview_max_side=ctx.settings.preview_max_side,
        max_pixels=ctx.settings.max_image_pixels,
        work_dir=work_dir,
    ):
        reduced = rendered.dpi is not None and rendered.dpi < ctx.settings.render_dpi
        if media_type == "application/pdf" and reduced:
            logger.info(
                "document %s page %s: rendered at %s dpi to stay within %s pixels",
                document_id,
                rendered.number,
                rendered.dpi,
                f"{ctx.settings.max_image_pixels:,}",
            )
        image = _store_file(ctx.storage, rendered.png, ".png") if rendered.png else None
        if image is not None:
            _prepare_for_engines(ctx, ctx.storage.path(image.key))
        preview = (
            ctx.storage.put_bytes(rendered.preview_jpeg, ".jpg") if rendered.preview_jpeg else None
        )
        text = (
            ctx.storage.put_bytes(rendered.text.encode(), ".txt")
            if rendered.text is not None
            else None
        )
        with ctx.session() as session:
            session.add(
                Page(
                    document_id=document_id,
                    number=rendered.number,
                    image_key=image.key if image else None,
                    preview_key=preview.key if preview else None,
                    text_key=text.key if text else None,
                    width=rendered.width,
                    height=rendered.height,
                    dpi=rendered.dpi,
                )
            )
            # Each stored page renews the lease, so a long PDF is not taken for a dead worker.
            session.execute(
                update(Document).where(Document.id == document_id).values(updated_at=utcnow())
            )
        count += 1
    return count


def _store_file(storage: LocalStorage, path: Path, suffix: str) -> StoredFile:
    """Move a rendered file into the store under its hash (read in chunks, not at once)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return move_into_store(storage, path, digest.hexdigest(), suffix)


def _beat(ctx: TaskContext, document_id: int) -> None:
    """Renew the ingest's lease: the recovery takes back documents ingesting without news."""
    with ctx.session() as session:
        session.execute(
            update(Document)
            .where(Document.id == document_id, Document.status == DocumentStatus.INGESTING)
            .values(updated_at=utcnow())
        )


def _prepare_for_engines(ctx: TaskContext, image: Path) -> None:
    """Let each engine prepare a new page ahead of any run (e.g. encode it for an endpoint)."""
    settings = ctx.settings
    for spec in engine_specs().values():
        if spec.on_page_stored is None:
            continue
        try:
            spec.on_page_stored(
                image, default_parameters(spec, settings), engine_environment(spec, settings)
            )
        except Exception:  # a run prepares it again; ingest must not fail over a head start
            logger.exception("the %s engine cannot prepare %s", spec.name, image.name)


def _finish(
    ctx: TaskContext,
    document_id: int,
    status: DocumentStatus,
    *,
    error: str | None = None,
    page_count: int | None = None,
) -> None:
    dispatches: list[Dispatch] = []
    with ctx.session() as session:
        document = session.get(Document, document_id)
        if document is None:
            return
        document.status = status
        document.error = error
        if page_count is not None:
            document.page_count = page_count
        session.flush()
        for waiting in runs_waiting_for(session, document_id):
            run = lock_run(session, waiting.id)  # see lock_run: the settled check needs it
            if run is None:
                continue
            materialize(session, run)
            dispatches.extend(advance(session, run))
        # Sent after the commit; kept for the sweep while the broker cannot be reached.
        enqueue(session, dispatches, sender=ctx.dispatcher)


@celery_app.task(name=INGEST_TASK)
def ingest_task(document_id: int) -> None:
    """Celery entry point for ingest."""
    ingest_document(celery_context(), document_id)
