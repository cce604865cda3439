"""A run's transcriptions for export: a document's text with its page breaks kept, and each
page's lines with their boxes, for PAGE XML and ALTO.

Pages are separated by a form feed (`\\f`), the character Tesseract and pdftotext end their
pages with and the one the import engine (models/importers) splits a text file on: a text
exported here can be given back as `--import-from` or as ground truth page for page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Document, Line, Page, Run, StageResult
from app.pipeline.evaluation import page_texts
from app.pipeline.exports.records import Box, box_of
from app.pipeline.versions import Version

PAGE_BREAK = "\f"


@dataclass(frozen=True)
class ExportLine:
    """One line of a page's text, with what the engine knew of it."""

    text: str
    #: [x0, y0, x1, y1] in page-image pixels; None where the engine gave no geometry (an mLLM).
    bbox: Box | None = None
    #: The engine's mean confidence, 0–100 (Tesseract's scale); None where it gave none.
    confidence: float | None = None
    #: `body` or `header` (a running title, a page number).
    kind: str = "body"


@dataclass(frozen=True)
class PageContent:
    """What the PAGE XML or ALTO file of one page holds."""

    number: int
    #: The page image's name in an export (the image itself is `GET /pages/{id}/image`).
    image_filename: str
    width: int
    height: int
    lines: tuple[ExportLine, ...]
    #: Where the text comes from, for the file's metadata: run, stage, version.
    comment: str


def join_pages(pages: Sequence[str]) -> str:
    """A document's text: every page ends with a line break, a form feed separates pages.

    A blank last page is closed by one more form feed: the importer takes a trailing form feed
    for the end of the file, so without it the blank page would not be read back as a page.
    """
    text = PAGE_BREAK.join(page + "\n" for page in pages)
    if len(pages) > 1 and not pages[-1].strip():
        text += PAGE_BREAK
    return text


def document_stem(document: Document) -> str:
    """The document's file name without its extension: what its exports are named after."""
    return PurePath(document.filename).stem or f"document-{document.id}"


def page_image_name(document: Document, number: int) -> str:
    """The file name a page's image has in the PAGE XML and ALTO exports."""
    return f"{document_stem(document)}-{number:04d}.png"


def document_texts(
    session: Session, run: Run, document: Document, stage: str, version: Version
) -> list[str]:
    """Each page's text in page order; empty where the stage did not produce one."""
    texts = page_texts(session, run, stage, document_id=document.id, version=version)
    return [texts.get(page.id) or "" for page in document.pages]


def document_text(
    session: Session, run: Run, document: Document, stage: str, version: Version
) -> str:
    """The document's text as the TXT export writes it (pages separated by form feeds)."""
    return join_pages(document_texts(session, run, document, stage, version))


def document_pages(
    session: Session,
    run: Run,
    document: Document,
    stage: str,
    version: Version,
    pages: Sequence[Page] | None = None,
) -> list[PageContent]:
    """The document's pages (or the given ones of it) with their lines, for PAGE XML and ALTO.

    The lines are the page's text cut at its line breaks, so that a PAGE XML or ALTO file reads
    back to exactly the text of the TXT export; each takes the box, confidence and kind of the
    stored line at its position, where there is one.
    """
    chosen = list(pages if pages is not None else document.pages)
    texts = page_texts(session, run, stage, document_id=document.id, version=version)
    stored = _stored_lines(session, run.id, stage, [page.id for page in chosen])
    out = []
    for page in chosen:
        text = texts.get(page.id) or ""
        lines = tuple(
            ExportLine(content, *_geometry(stored.get((page.id, position))))
            for position, content in enumerate(text.split("\n"))
        )
        out.append(
            PageContent(
                number=page.number,
                image_filename=page_image_name(document, page.number),
                width=page.width,
                height=page.height,
                lines=lines,
                comment=f"histocr run {run.id}, stage {stage}, version {version}, "
                f"{document.filename} page {page.number}",
            )
        )
    return out


def _geometry(line: ExportLine | None) -> tuple[Box | None, float | None, str]:
    if line is None:
        return None, None, "body"
    return line.bbox, line.confidence, line.kind


def _stored_lines(
    session: Session, run_id: int, stage: str, page_ids: list[int]
) -> dict[tuple[int, int], ExportLine]:
    """(page id, position) → the stored line's geometry (its text is the page text's)."""
    if not page_ids:
        return {}
    rows = session.execute(
        select(
            Line.page_id,
            Line.position,
            Line.x0,
            Line.y0,
            Line.x1,
            Line.y1,
            Line.confidence,
            Line.kind,
        )
        .join(StageResult, StageResult.id == Line.stage_result_id)
        .where(Line.run_id == run_id, StageResult.stage == stage, Line.page_id.in_(page_ids))
    )
    out = {}
    for page_id, position, x0, y0, x1, y1, confidence, kind in rows:
        box = box_of(x0, y0, x1, y1)
        out[(page_id, position)] = ExportLine("", box, confidence, kind or "body")
    return out
