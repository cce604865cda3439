"""`histocr train-crf PROJECT`: the CRF extractor trained on a project's verified records.

Prints the model's name alone on stdout (what a run gives as the `crf` engine's `model`
parameter, and what the UI's model list shows); the counts go to stderr.
"""

from pathlib import Path

import click

from app.config import get_settings
from app.db.session import session_scope
from app.db.tables import Project
from app.pipeline.crf_training import MIN_RECORDS, train_project_model
from models.crf_engine import CrfSettings


@click.command("train-crf")
@click.argument("project_id", type=int)
@click.option(
    "--min-records",
    default=MIN_RECORDS,
    show_default=True,
    help="Train only with at least this many verified records.",
)
def train_crf(project_id: int, min_records: int) -> None:
    """Train the CRF extractor on PROJECT's verified pages (run on the server's machine)."""
    settings = get_settings()
    from app.cli.serve import upgrade_database

    upgrade_database(settings)
    own = settings.engine_settings("crf")
    model_dir = Path(own.model_dir if isinstance(own, CrfSettings) else CrfSettings().model_dir)
    with session_scope(settings.resolved_database_url) as session:
        if session.get(Project, project_id) is None:
            raise click.ClickException(f"project {project_id} not found")
        trained = train_project_model(session, project_id, model_dir, min_records=min_records)
    if trained is None:
        raise click.ClickException(
            f"project {project_id} has fewer than {min_records} verified records: verify more "
            "pages of an extracting run (or lower --min-records)"
        )
    state = "unchanged since the last training" if trained.reused else "trained"
    click.echo(
        f"{state}: {trained.records} records of {trained.pages} verified pages → {trained.path}",
        err=True,
    )
    click.echo(trained.name)
