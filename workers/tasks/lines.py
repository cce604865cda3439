"""Storing a text stage's lines: with the engine's geometry where it has one, otherwise one
line per line of the text, so that every transcription can be reviewed line by line."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.db.tables import Line, StageResult
from app.pipeline.run_config import TEXT_STAGES
from models.base import TextLine


def store_lines(
    session: Session, result: StageResult, lines: Sequence[TextLine] | None, text: str | None
) -> None:
    """The lines of the page's text (replacing an earlier attempt's). An engine without layout
    (an mLLM) gets one line per text line; where its text has as many lines as the earlier
    text stage's lines on the page (a correction that kept the lines), they inherit its boxes."""
    session.execute(delete(Line).where(Line.stage_result_id == result.id))
    if lines:
        rows = [_row(result, position, line) for position, line in enumerate(lines)]
    elif result.stage in TEXT_STAGES and text is not None:
        rows = _text_rows(session, result, text.split("\n"))
    else:
        return
    session.execute(insert(Line), rows)


def _row(result: StageResult, position: int, line: TextLine) -> dict[str, Any]:
    box = line.bbox or (None, None, None, None)
    return {
        "run_id": result.run_id,
        "page_id": result.page_id,
        "stage_result_id": result.id,
        "position": position,
        "text": line.text,
        "diplomatic": line.diplomatic if line.diplomatic != line.text else None,
        "x0": box[0],
        "y0": box[1],
        "x1": box[2],
        "y1": box[3],
        "confidence": line.confidence,
        "min_confidence": line.min_confidence,
        "kind": line.kind,
    }


def _text_rows(session: Session, result: StageResult, texts: list[str]) -> list[dict[str, Any]]:
    earlier = _earlier_lines(session, result)
    inherit = len(earlier) == len(texts)
    rows = []
    for position, text in enumerate(texts):
        row: dict[str, Any] = {
            "run_id": result.run_id,
            "page_id": result.page_id,
            "stage_result_id": result.id,
            "position": position,
            "text": text,
            "kind": "body",
        }
        if inherit:
            source = earlier[position]
            row |= {"x0": source.x0, "y0": source.y0, "x1": source.x1, "y1": source.y1}
            row["kind"] = source.kind
        rows.append(row)
    return rows


def _earlier_lines(session: Session, result: StageResult) -> Sequence[Line]:
    """The lines of the page's latest earlier text stage in the run that has boxes."""
    earlier = session.scalars(
        select(StageResult.id)
        .where(
            StageResult.run_id == result.run_id,
            StageResult.page_id == result.page_id,
            StageResult.position < result.position,
            StageResult.stage.in_(TEXT_STAGES),
        )
        .order_by(StageResult.position.desc())
    ).all()
    for result_id in earlier:
        lines = session.scalars(
            select(Line).where(Line.stage_result_id == result_id).order_by(Line.position)
        ).all()
        if lines and lines[0].x0 is not None:
            return lines
    return []
