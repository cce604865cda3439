"""`histocr process`: the whole pipeline on local files, without a server."""

import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from app.cli.adapt import adapt_and_score, adapt_option, check_adapt_options, print_adaptation
from app.cli.engine_options import (
    check_options_apply,
    engine_options,
    engines_for,
    parameters_of,
)
from app.cli.outputs import (
    DEFAULT_FORMATS,
    DialectName,
    Format,
    output_options,
    print_summary,
    write_outputs,
)
from app.cli.serve import upgrade_database
from app.config import Settings, get_settings
from app.db.tables import GroundTruthKind, Run
from app.errors import HistocrError
from app.pipeline.dispatch import (
    EVALUATE_TASK,
    INGEST_TASK,
    STAGE_TASKS,
    Dispatch,
    InlineDispatcher,
)
from app.pipeline.run_config import StageRequest, default_stages
from models.openai_spec import DEFAULT_ENDPOINT

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@dataclass(frozen=True)
class ProcessOptions:
    """What `histocr process` was asked to do."""

    files: tuple[Path, ...]
    out_dir: Path
    ocr: str
    correct: str | None
    extract: str | None
    #: Engine parameters given on the command line, by parameter name.
    engine_parameters: dict[str, Any]
    gt_texts: tuple[Path, ...]
    gt_csvs: tuple[Path, ...]
    imports: tuple[Path, ...]
    jobs: int
    #: What is written into out_dir (app/pipeline/exports/bundle.py), and the CSV's dialect.
    formats: tuple[Format, ...] = DEFAULT_FORMATS
    csv_dialect: DialectName = "unix"
    #: Fine-tune on each document's first pages and score the rest (app/cli/adapt.py).
    adapt_pages: int | None = None

    def stages(self) -> list[StageRequest]:
        """The run's stages, each with the options given for a parameter its engine takes."""
        stages = default_stages(ocr=self.ocr, correct=self.correct, extract=self.extract)
        for stage in stages:
            names = {p.name for p in parameters_of(stage.engine)}
            stage.parameters = {k: v for k, v in self.engine_parameters.items() if k in names}
        return stages


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
    help=f"OCR engine ({engines_for('ocr')}); default: tesseract for scans, import for "
    ".txt files or with --import-from.",
)
@click.option(
    "--correct",
    default=None,
    help=f"Post-correction engine, page image + OCR text ({engines_for('correct')}). "
    "Off by default.",
)
@click.option(
    "--extract",
    default="crf",
    show_default=True,
    help=f"Extraction engine ({engines_for('extract')}) or 'none'.",
)
@click.option(
    "--import-from",
    "imports",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Text made elsewhere for a scan (PAGE XML, ALTO, txt; a file or a folder of "
    "per-page files), one per FILE; implies --ocr import.",
)
@engine_options
@click.option(
    "--base-url",
    metavar="URL",
    default=None,
    help="The default endpoint's URL for this process, instead of HISTOCR_OPENAI_BASE_URL "
    "(its key: HISTOCR_OPENAI_API_KEY). Other configured endpoints: --endpoint NAME.",
)
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
    "--jobs",
    "-j",
    type=int,
    default=2,
    show_default=True,
    help="Tasks run at once (an mLLM task keeps many requests in flight).",
)
@output_options
@adapt_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with the figures.")
def process(dpi: int | None, base_url: str | None, as_json: bool, **given: Any) -> None:
    """Run OCR (and correction, extraction) on FILES and write the results to --out."""
    options = _options(**given)
    _check_base_url(base_url, options)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="histocr-") as work:
        base = get_settings()
        settings = base.model_copy(
            update={
                "data_dir": Path(work),
                "database_url": f"sqlite:///{Path(work) / 'histocr.db'}",
                "storage_dir": Path(work) / "files",
                "render_dpi": dpi or base.render_dpi,
                # The operator's own endpoint: this process's setting, not a run's parameter.
                "openai": base.openai.model_copy(update={"base_url": base_url})
                if base_url
                else base.openai,
            }
        )
        try:
            summary = _process(settings, options)
        except HistocrError as exc:
            raise click.ClickException(exc.message) from exc
    summary["seconds"] = round(time.perf_counter() - started, 2)
    pages = summary.get("pages") or 0
    summary["seconds_per_page"] = round(summary["seconds"] / pages, 2) if pages else None
    out_dir = options.out_dir
    (out_dir / "metrics.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
    else:
        print_summary(summary, out_dir)
        print_adaptation(summary)
    if summary["status"] != "done":
        click.echo(
            f"error: the run ended {summary['status']}: " + "; ".join(summary["errors"]), err=True
        )
        sys.exit(1)


def _options(
    files: tuple[Path, ...],
    ocr: str | None,
    extract: str,
    imports: tuple[Path, ...],
    gt_texts: tuple[Path, ...],
    gt_csvs: tuple[Path, ...],
    **rest: Any,
) -> ProcessOptions:
    """Check the options against each other and fill in the defaults."""
    for name, given in (
        ("--ground-truth", gt_texts),
        ("--ground-truth-csv", gt_csvs),
        ("--import-from", imports),
    ):
        if given and len(given) != len(files):
            raise click.UsageError(
                f"give {name} once per file ({len(files)}), not {len(given)} times"
            )
    if imports and ocr not in (None, "import"):
        raise click.UsageError(f"--import-from goes with --ocr import, not --ocr {ocr}")
    options = {key: rest.pop(key) for key in list(rest) if key.startswith("param_")}
    parameters = {k.removeprefix("param_"): v for k, v in options.items() if v is not None}
    ocr_engine = ocr or ("import" if imports else _default_ocr(files))
    extract_engine = None if extract == "none" else extract
    check_options_apply(parameters, [ocr_engine, rest.get("correct"), extract_engine])
    check_adapt_options(
        rest.get("adapt_pages"),
        files=files,
        ocr=ocr_engine,
        correct=rest.get("correct"),
        gt_texts=gt_texts,
        gt_csvs=gt_csvs,
        parameters=parameters,
    )
    return ProcessOptions(
        files=files,
        ocr=ocr_engine,
        extract=extract_engine,
        engine_parameters=parameters,
        gt_texts=gt_texts,
        gt_csvs=gt_csvs,
        imports=imports,
        **rest,
    )


def _check_base_url(base_url: str | None, options: ProcessOptions) -> None:
    """--base-url moves the default endpoint: it needs the openai engine and that endpoint."""
    if base_url is None:
        return
    engines = [e for e in (options.ocr, options.correct, options.extract) if e]
    if "openai" not in engines:
        raise click.UsageError(
            f"--base-url: no engine of this run takes it (engines: {', '.join(engines)})"
        )
    endpoint = options.engine_parameters.get("endpoint", DEFAULT_ENDPOINT)
    if endpoint != DEFAULT_ENDPOINT:
        raise click.UsageError(
            f"--base-url sets the {DEFAULT_ENDPOINT} endpoint; it does not go with "
            f"--endpoint {endpoint}"
        )
    if urlsplit(base_url).scheme not in ("http", "https"):
        raise click.UsageError("--base-url must start with http:// or https://")


def _default_ocr(files: tuple[Path, ...]) -> str:
    """Transcriptions (.txt) go straight to the stages after OCR; scans go through Tesseract."""
    texts = [f for f in files if f.suffix.lower() == ".txt"]
    if texts and len(texts) != len(files):
        raise click.UsageError(
            "give either scans or .txt transcriptions, not both (they need different OCR engines)"
        )
    return "import" if texts else "tesseract"


def _process(settings: Settings, options: ProcessOptions) -> dict[str, Any]:
    from app.db.session import session_scope
    from app.services.documents import import_local_file
    from app.services.projects import get_or_create_project
    from app.services.runs import create_run

    upgrade_database(settings)
    dispatcher, ctx = _inline_dispatcher(settings, options.jobs)
    with session_scope(settings.resolved_database_url) as session:
        project = get_or_create_project(session=session, name="cli")
        documents = [
            import_local_file(
                session=session, storage=ctx.storage, settings=settings, project=project, path=path
            )[0]
            for path in options.files
        ]
        _attach_inputs(session, ctx.storage, documents, options)
        run, dispatches = create_run(
            session=session,
            settings=settings,
            project=project,
            stages=options.stages(),
            document_ids=[d.id for d in documents],
        )
        run_id = run.id
        ingests = [Dispatch(task=INGEST_TASK, args=(d.id,)) for d in documents]
    dispatcher.send(ingests + dispatches)
    dispatcher.drain()
    with session_scope(settings.resolved_database_url) as session:
        run = session.get_one(Run, run_id)
        summary = write_outputs(session, run, options.out_dir, options.formats, options.csv_dialect)
        if options.adapt_pages and summary["status"] == "done":
            summary = adapt_and_score(
                session,
                ctx.storage,
                run,
                adapt_pages=options.adapt_pages,
                out_dir=options.out_dir,
                jobs=options.jobs,
                summary=summary,
            )
        return summary


def _attach_inputs(
    session: Any, storage: Any, documents: list[Any], options: ProcessOptions
) -> None:
    """Ground truth and imported text, each given once per input file."""
    from app.pipeline.media import decode_text
    from app.services.imports import attach_imported_text
    from app.services.projects import attach_ground_truth

    for kind, paths in (
        (GroundTruthKind.TEXT, options.gt_texts),
        (GroundTruthKind.RECORDS, options.gt_csvs),
    ):
        for document, path in zip(documents, paths, strict=False):
            attach_ground_truth(
                session=session,
                document=document,
                kind=kind,
                content=decode_text(path.read_bytes(), path.name),
                filename=path.name,
            )
    if not options.imports:
        return
    from models.importers import ImportFormatError, import_pages

    for document, path in zip(documents, options.imports, strict=False):
        try:
            pages = import_pages(path, document.page_count or 0)
        except ImportFormatError as exc:
            raise click.ClickException(str(exc)) from exc
        attach_imported_text(session=session, storage=storage, document=document, pages=pages)


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
