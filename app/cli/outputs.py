"""What `histocr process` leaves in --out: the exports it was asked for and its summary."""

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import Page, Run, StageResult, StageStatus
from app.pipeline.exports.bundle import FORMATS, FolderTarget, Format, write_exports
from app.pipeline.exports.csvx import DIALECTS, DialectName, csv_dialect

__all__ = ["DEFAULT_FORMATS", "DialectName", "Format", "output_options", "write_outputs"]

#: What is written when --formats is not given: what `histocr process` always wrote.
DEFAULT_FORMATS: tuple[Format, ...] = ("txt", "csv")

F = TypeVar("F", bound=Callable[..., Any])


def parse_formats(value: str) -> tuple[Format, ...]:
    """`txt,page` as the formats it names, each known."""
    chosen = list(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [name for name in chosen if name not in FORMATS]
    if unknown or not chosen:
        raise click.BadParameter(
            f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(FORMATS)}"
        )
    return tuple(name for name in FORMATS if name in chosen)


def output_options(command: F) -> F:
    """The --formats and --csv-dialect options."""
    command = click.option(
        "--csv-dialect",
        type=click.Choice(list(DIALECTS)),
        default="unix",
        show_default=True,
        help="records.csv for: unix (comma), excel (comma, BOM, CRLF), excel-de (semicolon, "
        "BOM, CRLF: what German Excel opens in columns).",
    )(command)
    return click.option(
        "--formats",
        default=",".join(DEFAULT_FORMATS),
        show_default=True,
        callback=lambda _ctx, _param, value: parse_formats(value),
        help="What to write, comma-separated: txt (a file a document, pages separated by form "
        "feeds), csv and jsonl (the records), page (PAGE XML) and alto (ALTO 4.2), a file a "
        "page in page/<name>/ and alto/<name>/.",
    )(command)


def write_outputs(
    session: Session,
    run: Run,
    out_dir: Path,
    formats: tuple[Format, ...],
    dialect: DialectName,
) -> dict[str, Any]:
    """Write the run's exports into `out_dir`; the summary `--json` prints and metrics.json
    holds (the figures against ground truth included)."""
    from app.pipeline.evaluation import compute_run_metrics

    out_dir.mkdir(parents=True, exist_ok=True)
    written = write_exports(
        session,
        run,
        FolderTarget(out_dir),
        formats=formats,
        version="latest",
        dialect=csv_dialect(dialect),
    )
    outputs = [str(out_dir / d["text"]) for d in written["documents"] if "text" in d]
    outputs += [str(out_dir / kind) for kind in ("page", "alto") if kind in formats]
    found = written["records"] or {}
    outputs += [str(out_dir / found[kind]["file"]) for kind in ("csv", "jsonl") if kind in found]
    metrics = compute_run_metrics(session, run)
    failed = session.execute(
        select(StageResult.stage, Page.number, StageResult.error, Page.document_id)
        .join(Page, Page.id == StageResult.page_id)
        .where(StageResult.run_id == run.id, StageResult.status != StageStatus.DONE)
    ).all()
    errors = [f"{stage} page {number}: {error}" for stage, number, error, _ in failed]
    errors += [f"{d.filename}: {d.error}" for d in run.documents if d.error]
    summary: dict[str, Any] = {
        "status": run.status,
        "pages": sum(len(d.pages) for d in run.documents),
        "records_written": found.get("count"),
        "outputs": outputs,
        "errors": errors,
        "stages": [
            {"stage": s.stage, "engine": s.engine, "parameters": s.parameters}
            for s in run.config.stages
        ],
        # The resolutions the pages were actually rendered at.
        "dpi": sorted({p.dpi for d in run.documents for p in d.pages if p.dpi}),
    }
    final = metrics["text"][metrics["final_stage"]]["run"]
    if final is not None:
        summary.update(
            {key: final[key] for key in ("cer", "cer_normalized", "wer", "wer_normalized")}
        )
    if metrics["records"] is not None:
        summary.update(metrics["records"]["run"])
    summary["metrics"] = metrics
    return summary


def print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    """The summary for a person (without --json)."""
    click.echo(
        f"{summary['pages']} page(s), run {summary['status']}, "
        f"{summary['seconds']} s ({summary['seconds_per_page']} s/page)"
    )
    if "cer" in summary:
        click.echo(
            f"CER {summary['cer']:.2%} (normalized {summary['cer_normalized']:.2%}), "
            f"WER {summary['wer']:.2%} (normalized {summary['wer_normalized']:.2%})"
        )
    if "records" in summary:
        rec = summary["records"]
        click.echo(
            f"records: precision {rec['precision']:.2%}, recall {rec['recall']:.2%}, "
            f"F1 {rec['f1']:.2%}"
        )
    click.echo(f"written to {out_dir}: " + ", ".join(Path(p).name for p in summary["outputs"]))
