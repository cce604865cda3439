"""Estimating a run's tokens before it starts: pages × what earlier pages took."""

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.tables import Document, StageResult, StageStatus
from app.pipeline.run_config import RunConfig
from models.registry import engine_spec


def estimate_tokens(
    *, session: Session, config: RunConfig, documents: list[Document]
) -> dict[str, Any]:
    """Per stage: the measured average tokens per page of the same engine, model and prompt."""
    pages = sum(d.page_count or 0 for d in documents)
    stages = []
    for stage in config.stages:
        model = stage.parameters.get("model")
        query = select(
            func.count(StageResult.id),
            func.avg(StageResult.tokens_in),
            func.avg(StageResult.tokens_out),
        ).where(
            StageResult.stage == stage.stage,
            StageResult.engine == stage.engine,
            StageResult.status == StageStatus.DONE,
            StageResult.tokens_in.is_not(None),
            StageResult.prompt_version == stage.prompt_version,
        )
        if model:
            query = query.where(StageResult.parameters["model"].as_string() == model)
        measured, avg_in, avg_out = session.execute(query).one()
        stages.append(
            {
                "stage": stage.stage,
                "engine": stage.engine,
                "model": model,
                "prompt_version": stage.prompt_version,
                "measured_pages": measured,
                "tokens_in_per_page": round(float(avg_in), 1) if measured else None,
                "tokens_out_per_page": round(float(avg_out), 1) if measured else None,
                "tokens_in": round(float(avg_in) * pages) if measured else None,
                "tokens_out": round(float(avg_out) * pages) if measured else None,
            }
        )
    known = [s for s in stages if s["tokens_in"] is not None]
    return {
        "pages": pages,
        "stages": stages,
        "tokens_in": sum(s["tokens_in"] for s in known) if known else None,
        "tokens_out": sum(s["tokens_out"] for s in known) if known else None,
        # Complete when every stage that spends tokens (a prompted engine) has measurements.
        "complete": all(
            s["measured_pages"] for s in stages if engine_spec(str(s["engine"])).prompted
        ),
    }
