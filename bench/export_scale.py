"""Exporting a million records: rows per second and peak memory of the CSV and JSON Lines
exports (target: >= 50,000 rows/s, < 300 MB peak RSS, flat in the number of records).

A run of `--records` records is stored the way the workers store one (pages of `--per-page`
entries, an OCR line with a box under each record, the extraction's results), in a throwaway
database: a SQLite file in a temp folder, or (`--database postgres`) a fresh PostgreSQL database
created on HISTOCR_TEST_PG_ADMIN and dropped afterwards. Each export then runs in a child
process of its own, as `GET /api/v1/runs/{id}/records.csv` streams it (app/pipeline/exports/
stream.py: the same generator, its chunks written to /dev/null), so that its peak RSS is the
export's alone.

    python bench/export_scale.py                          # SQLite, 1,000,000 records
    python bench/export_scale.py --database postgres
    python bench/export_scale.py --records 100000         # a quicker look

Prints per format the records, seconds, rows/s, MB written and the child's peak RSS (and its
RSS before the export began), then one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.llm_throughput import PG_ADMIN_URL, postgres_database  # noqa: E402

FORMATS = ("csv", "jsonl")
INSERT_BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--per-page", type=int, default=50)
    parser.add_argument("--measure", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.url, args.run, args.measure)))
        return
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="export-bench-")))
        url = (
            stack.enter_context(postgres_database(PG_ADMIN_URL))
            if args.database == "postgres"
            else f"sqlite:///{folder / 'histocr.db'}"
        )
        started = time.perf_counter()
        run_id = seed(url, folder, args.records, args.per_page)
        print(
            f"stored {args.records:,} records in {time.perf_counter() - started:.0f} s "
            f"({args.database})",
            file=sys.stderr,
        )
        results = {kind: child(url, run_id, kind) for kind in FORMATS}
    for kind, found in results.items():
        print(
            f"{kind:5}  {found['records']:>9,} records  {found['seconds']:6.1f} s  "
            f"{found['rows_per_s']:>9,.0f} rows/s ({found['rows_per_cpu_s']:,.0f} per CPU s, "
            f"{found['rows_per_total_cpu_s']:,.0f} with the server's)  "
            f"{found['mb_written']:7.1f} MB written  "
            f"peak RSS {found['peak_rss_mb']:6.1f} MB "
            f"(before the export {found['rss_before_mb']:.1f} MB)",
            file=sys.stderr,
        )
    print(json.dumps({"database": args.database, "records": args.records, **results}))


def seed(url: str, folder: Path, records: int, per_page: int) -> int:
    """A migrated database with one finished run of `records` records; the run's id."""
    from sqlalchemy import insert
    from sqlalchemy import text as sql

    from app.cli.serve import upgrade_database
    from app.config import Settings
    from app.db.session import session_scope
    from app.db.tables import (
        Document,
        DocumentStatus,
        Line,
        Page,
        Project,
        Record,
        Run,
        RunStatus,
        StageResult,
        StageStatus,
    )
    from app.pipeline.run_config import RunConfig, StageConfig

    upgrade_database(Settings(data_dir=folder, database_url=url))
    fields = ("first and middle names", "surname", "occupation", "address")
    pages = -(-records // per_page)
    with session_scope(url) as session:
        project = Project(name="export bench")
        session.add(project)
        document = Document(
            project=project,
            filename="adressbuch-1822.pdf",
            media_type="application/pdf",
            sha256="0" * 64,
            size_bytes=1,
            storage_key="bench",
            status=DocumentStatus.READY,
            page_count=pages,
        )
        session.add(document)
        session.flush()
        config = RunConfig(
            schema_fields=fields,
            stages=(
                StageConfig(stage="ocr", engine="tesseract"),
                StageConfig(stage="extract", engine="rules", source="ocr", fields=fields),
            ),
        )
        run = Run(project_id=project.id, config=config, status=RunStatus.DONE)
        run.documents = [document]
        session.add(run)
        session.flush()
        run_id, document_id = run.id, document.id
        session.execute(
            insert(Page),
            [
                {"document_id": document_id, "number": n, "width": 2400, "height": 3600}
                for n in range(1, pages + 1)
            ],
        )
    with session_scope(url) as session:
        page_ids = [p.id for p in session.query(Page.id).order_by(Page.number)]
        for stage, position in (("ocr", 0), ("extract", 1)):
            session.execute(
                insert(StageResult),
                [
                    {
                        "run_id": run_id,
                        "page_id": page_id,
                        "stage": stage,
                        "position": position,
                        "status": StageStatus.DONE,
                        "engine": "tesseract" if stage == "ocr" else "rules",
                        "parameters": {},
                    }
                    for page_id in page_ids
                ],
            )
        results = {
            (page_id, stage): result_id
            for result_id, page_id, stage in session.query(
                StageResult.id, StageResult.page_id, StageResult.stage
            )
        }
    for start in range(0, records, INSERT_BATCH):
        lines, rows = [], []
        for n in range(start, min(start + INSERT_BATCH, records)):
            page_id = page_ids[n // per_page]
            position = n % per_page
            text = f"Förster{n}, Christian, Fabrikmeister, Großkölnstraße A {n}."
            lines.append(
                {
                    "run_id": run_id,
                    "page_id": page_id,
                    "stage_result_id": results[(page_id, "ocr")],
                    "position": position,
                    "text": text,
                    "x0": 120,
                    "y0": 200 + 60 * position,
                    "x1": 2280,
                    "y1": 250 + 60 * position,
                    "confidence": 91.5,
                    "kind": "body",
                }
            )
            rows.append(
                {
                    "run_id": run_id,
                    "page_id": page_id,
                    "stage_result_id": results[(page_id, "extract")],
                    "position": position,
                    "line_number": position + 1,
                    "source_line": text,
                    "fields": {
                        "first and middle names": "Christian",
                        "surname": f"Förster{n}",
                        "occupation": "Fabrikmeister" if n % 7 else "=",  # a ditto mark
                        "address": f"Großkölnstraße A {n}.",
                    },
                }
            )
        with session_scope(url) as session:
            session.execute(insert(Line), lines)
            session.execute(insert(Record), rows)
    # Table statistics, as a database in use has them (autovacuum, SQLite's optimize): without
    # them PostgreSQL plans the export for a few thousand records.
    with session_scope(url) as session:
        session.execute(sql("ANALYZE"))
    return run_id


def child(url: str, run_id: int, kind: str) -> dict[str, Any]:
    """Measure one export in a fresh process (its peak RSS is the export's)."""
    command = [sys.executable, __file__, "--measure", kind, "--url", url, "--run", str(run_id)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"the {kind} export failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _rss_mb() -> float:
    """This process's current resident memory (Linux)."""
    fields = Path("/proc/self/statm").read_text().split()
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _server_cpu_s(database: str | None) -> float:
    """CPU seconds of the PostgreSQL backends serving `database` (read from /proc: the bench
    runs beside its server); 0 without one."""
    if database is None:
        return 0.0
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().decode(errors="replace")
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if command.startswith("postgres") and f" {database} " in command:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM, not getrusage's ru_maxrss, which a child
    inherits across fork and exec from its parent (the seeding process, here)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def measure(url: str, run_id: int, kind: str) -> dict[str, Any]:
    """Stream the run's records export to /dev/null, as the route does; the figures."""
    from app.db.session import session_scope
    from app.db.tables import Run
    from app.pipeline.exports.csvx import csv_dialect
    from app.pipeline.exports.records import run_export
    from app.pipeline.exports.stream import stream_records

    with session_scope(url) as session:
        export = run_export(session.get_one(Run, run_id), "latest")
    database = url.rsplit("/", 1)[-1] if url.startswith("postgresql") else None
    server = _server_cpu_s(database)
    before = _rss_mb()
    written = 0
    started, cpu = time.perf_counter(), time.process_time()
    digest = hashlib.blake2b(digest_size=16)  # the same seed gives the same file on both
    with open(os.devnull, "wb") as sink:
        for chunk in stream_records(url, export, kind, csv_dialect("excel-de")):  # type: ignore[arg-type]
            data = chunk.encode("utf-8")
            sink.write(data)
            digest.update(data)
            written += len(data)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    server = _server_cpu_s(database) - server
    lines = _count_records(url, run_id)
    return {
        "records": lines,
        "seconds": round(seconds, 2),
        "rows_per_s": round(lines / seconds),
        # This process's CPU alone: what the export costs on a machine that others share (the
        # database's own work is in it for SQLite, not for PostgreSQL's server).
        "cpu_s": round(cpu, 2),
        "rows_per_cpu_s": round(lines / cpu),
        # PostgreSQL's backend processes for the export's connections (0 for SQLite, whose work
        # is in this process): with both, what the export costs the machine in all.
        "server_cpu_s": round(server, 2),
        "rows_per_total_cpu_s": round(lines / (cpu + server)),
        "mb_written": round(written / 1e6, 1),
        "blake2b": digest.hexdigest(),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_before_mb": round(before, 1),
    }


def _count_records(url: str, run_id: int) -> int:
    from sqlalchemy import func, select

    from app.db.session import session_scope
    from app.db.tables import Record

    with session_scope(url) as session:
        return int(session.scalar(select(func.count(Record.id)).where(Record.run_id == run_id)))


if __name__ == "__main__":
    main()
