"""The `histocr` command: serve, worker, process, evaluate, migrate, users, tokens."""

import click

from app.cli.accounts import tokens, users
from app.cli.crf import train_crf
from app.cli.evaluate import evaluate
from app.cli.process import process
from app.cli.serve import migrate, serve, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="histocr")
def cli() -> None:
    """histocr: OCR, post-correction and record extraction for scanned historical documents."""


cli.add_command(serve)
cli.add_command(worker)
cli.add_command(migrate)
cli.add_command(process)
cli.add_command(evaluate)
cli.add_command(users)
cli.add_command(tokens)
cli.add_command(train_crf)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
