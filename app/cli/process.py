"""`histocr process`: the whole pipeline on local files, without a server."""

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from app.cli.serve import upgrade_database
from app.config import Settings, get_settings
from app.db.tables import GroundTruthKind, Page, Run, StageResult, StageStatus
from app.errors import HistocrError
from app.pipeline.config import default_stages
from app.pipeline.dispatch import (
    EVALUATE_TASK,
    INGEST_TASK,
    STAGE_TASKS,
    Dispatch,
    InlineDispatcher,
)

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.argument("files", nargs=-1, required=True, type=EXISTING_FILE)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the text, records CSV and metrics.",
)
@click.option(
    "--ocr",
    default=None,
    help="OCR engine (default: tesseract for scans, import for .txt transcriptions).",
)
@click.option("--extract", default="rules", show_default=True, help="Extraction engine, or 'none'.")
@click.option(
    "--ground-truth",
    "gt_texts",
    multiple=True,
    type=EXISTING_FILE,
    help="Reference transcription (.txt), one per FILE in the same order.",
)
@click.option(
    "--ground-truth-csv",
    "gt_csvs",
    multiple=True,
    type=EXISTING_FILE,
    help="Reference records (.csv), one per FILE in the same order.",
)
@click.option("--dpi", type=int, default=None, help="PDF render resolution (HISTOCR_RENDER_DPI).")
@click.option(
    "--jobs", "-j", type=int, default=2, show_default=True, help="Pages processed at once."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures.")
def process(
    files: tuple[Path, ...],
    out_dir: Path,
    ocr: str | None,
    extract: str,
    gt_texts: tuple[Path, ...],
    gt_csvs: tuple[Path, ...],
    dpi: int | None,
    jobs: int,
    as_json: bool,
) -> None:
    """Run OCR (and extraction) on FILES and write the results to --out."""
    for name, given in (("--ground-truth", gt_texts), ("--ground-truth-csv", gt_csvs)):
        if given and len(given) != len(files):
            raise click.UsageError(
                f"give {name} once per file ({len(files)}), not {len(given)} times"
            )
    ocr = ocr or _default_ocr(files)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="histocr-") as work:
        base = get_settings()
        settings = base.model_copy(
            update={
                "data_dir": Path(work),
                "database_url": f"sqlite:///{Path(work) / 'histocr.db'}",
                "storage_dir": Path(work) / "files",
                "render_dpi": dpi or base.render_dpi,
            }
        )
        try:
            summary = _process(settings, files, out_dir, ocr, extract, gt_texts, gt_csvs, jobs)
        except HistocrError as exc:
            raise click.ClickException(exc.message) from exc
    summary["seconds"] = round(time.perf_counter() - started, 2)
    pages = summary.get("pages") or 0
    summary["seconds_per_page"] = round(summary["seconds"] / pages, 2) if pages else None
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        _print_summary(summary, out_dir)
    if summary["status"] != "done":
        click.echo(
            f"error: the run ended {summary['status']}: " + "; ".join(summary["errors"]), err=True
        )
        sys.exit(1)


def _default_ocr(files: tuple[Path, ...]) -> str:
    """Transcriptions (.txt) go straight to the stages after OCR; scans go through Tesseract."""
    texts = [f for f in files if f.suffix.lower() == ".txt"]
    if texts and len(texts) != len(files):
        raise click.UsageError(
            "give either scans or .txt transcriptions, not both (they need different OCR engines)"
        )
    return "import" if texts else "tesseract"


def _process(
    settings: Settings,
    files: tuple[Path, ...],
    out_dir: Path,
    ocr: str,
    extract: str,
    gt_texts: tuple[Path, ...],
    gt_csvs: tuple[Path, ...],
    jobs: int,
) -> dict[str, Any]:
    from app.db.session import session_scope
    from app.media import decode_text
    from app.services.documents import import_local_file
    from app.services.projects import attach_ground_truth, get_or_create_project
    from app.services.runs import create_run

    upgrade_database(settings)
    dispatcher, ctx = _inline_dispatcher(settings, jobs)
    with session_scope(settings.resolved_database_url) as session:
        storage = ctx.storage
        project = get_or_create_project(session=session, name="cli")
        documents = [
            import_local_file(
                session=session, storage=storage, settings=settings, project=project, path=path
            )[0]
            for path in files
        ]
        for document, gt in zip(documents, gt_texts, strict=False):
            attach_ground_truth(
                session=session,
                document=document,
                kind=GroundTruthKind.TEXT,
                content=decode_text(gt.read_bytes(), gt.name),
                filename=gt.name,
            )
        for document, gt in zip(documents, gt_csvs, strict=False):
            attach_ground_truth(
                session=session,
                document=document,
                kind=GroundTruthKind.RECORDS,
                content=decode_text(gt.read_bytes(), gt.name),
                filename=gt.name,
            )
        stages = default_stages(ocr=ocr, extract=None if extract == "none" else extract)
        run, dispatches = create_run(
            session=session,
            settings=settings,
            project=project,
            stages=stages,
            document_ids=[d.id for d in documents],
        )
        run_id = run.id
        ingests = [Dispatch(task=INGEST_TASK, args=(d.id,)) for d in documents]
    dispatcher.send(ingests + dispatches)
    dispatcher.drain()
    with session_scope(settings.resolved_database_url) as session:
        return _write_outputs(session, session.get_one(Run, run_id), out_dir)


def _inline_dispatcher(settings: Settings, jobs: int) -> tuple[InlineDispatcher, Any]:
    """Task handlers that run in this process, sharing one task context."""
    from workers.context import make_context
    from workers.tasks.evaluate import evaluate_run
    from workers.tasks.ingest import ingest_document

    dispatcher = InlineDispatcher({}, concurrency=max(1, jobs))
    ctx = make_context(settings, dispatcher)
    dispatcher.handlers.update(
        {
            INGEST_TASK: lambda doc_id: ingest_document(ctx, doc_id),
            EVALUATE_TASK: lambda run_id: evaluate_run(ctx, run_id),
        }
    )
    for stage, task in STAGE_TASKS.items():
        dispatcher.handlers[task] = lambda ids, stage=stage: _stage_with_progress(ctx, stage, ids)
    return dispatcher, ctx


def _stage_with_progress(ctx: Any, stage: str, ids: list[int]) -> None:
    from workers.tasks.stages import run_stage

    run_stage(ctx, stage, ids)
    click.echo(f"  {stage}: {len(ids)} page(s) finished", err=True)


def _write_outputs(session: Any, run: Run, out_dir: Path) -> dict[str, Any]:
    from app.evaluation import compute_run_metrics
    from app.export import document_transcription, write_records_csv

    out_dir.mkdir(parents=True, exist_ok=True)
    outputs = []
    for document in run.documents:
        stem = Path(document.filename).stem
        target = out_dir / f"{stem}.txt"
        target.write_text(document_transcription(session, run, document) + "\n", encoding="utf-8")
        outputs.append(str(target))
    records = None
    if any(s["stage"] == "extract" for s in run.config["stages"]):
        with (out_dir / "records.csv").open("w", encoding="utf-8", newline="") as handle:
            records = write_records_csv(session, run, handle)
        outputs.append(str(out_dir / "records.csv"))
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
        "records_written": records,
        "outputs": outputs,
        "errors": errors,
        "stages": [
            {"stage": s["stage"], "engine": s["engine"], "parameters": s["parameters"]}
            for s in run.config["stages"]
        ],
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


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
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
