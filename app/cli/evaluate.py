"""`histocr evaluate`: score transcriptions or records against ground truth."""

import json
from pathlib import Path
from typing import Any

import click

EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{path}: not UTF-8 text ({exc.reason})") from exc


@click.command()
@click.option(
    "--gt",
    "gt_texts",
    multiple=True,
    type=EXISTING_FILE,
    help="Reference transcription; repeat with --hyp for a micro-averaged corpus score.",
)
@click.option(
    "--hyp",
    "hyp_texts",
    multiple=True,
    type=EXISTING_FILE,
    help="Transcription to score, one per --gt, in the same order.",
)
@click.option("--gt-csv", "gt_csvs", multiple=True, type=EXISTING_FILE, help="Reference records.")
@click.option(
    "--hyp-csv",
    "hyp_csvs",
    multiple=True,
    type=EXISTING_FILE,
    help="Records to score, one per --gt-csv.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (rates as fractions).")
def evaluate(
    gt_texts: tuple[Path, ...],
    hyp_texts: tuple[Path, ...],
    gt_csvs: tuple[Path, ...],
    hyp_csvs: tuple[Path, ...],
    as_json: bool,
) -> None:
    """CER/WER (raw and normalized) of texts; precision/recall/F1 and field agreement of records."""
    if len(gt_texts) != len(hyp_texts) or len(gt_csvs) != len(hyp_csvs):
        raise click.UsageError("give --hyp once per --gt and --hyp-csv once per --gt-csv")
    if not gt_texts and not gt_csvs:
        raise click.UsageError("nothing to evaluate: give --gt/--hyp or --gt-csv/--hyp-csv")
    result: dict[str, Any] = {}
    if gt_texts:
        result.update(_score_texts(gt_texts, hyp_texts))
    if gt_csvs:
        result.update(_score_csvs(gt_csvs, hyp_csvs))
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    if gt_texts:
        click.echo(
            f"CER {result['cer']:.2%}  normalized CER {result['cer_normalized']:.2%}  "
            f"WER {result['wer']:.2%}  normalized WER {result['wer_normalized']:.2%}  "
            f"({len(gt_texts)} document(s), {result['characters']} reference characters)"
        )
    if gt_csvs:
        rec = result["records"]
        click.echo(
            f"records: precision {rec['precision']:.2%}  recall {rec['recall']:.2%}  "
            f"F1 {rec['f1']:.2%}"
        )
        for name, scores in result["fields"].items():
            click.echo(f"  {name}: exact {scores['exact']:.2%}  fuzzy {scores['fuzzy']:.2%}")


def _score_texts(gts: tuple[Path, ...], hyps: tuple[Path, ...]) -> dict[str, Any]:
    from app.metrics.text import score_documents

    return score_documents((_read(g), _read(h)) for g, h in zip(gts, hyps, strict=True)).as_dict()


def _score_csvs(gts: tuple[Path, ...], hyps: tuple[Path, ...]) -> dict[str, Any]:
    from app.metrics.records import read_records_csv, score_records

    total = None
    for gt, hyp in zip(gts, hyps, strict=True):
        try:
            fields, reference = read_records_csv(_read(gt))
            _, hypothesis = read_records_csv(_read(hyp), fields)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        scores = score_records(reference, hypothesis, fields)
        total = scores if total is None else total + scores
    assert total is not None
    return total.as_dict()
