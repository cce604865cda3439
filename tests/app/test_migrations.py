"""Alembic migrations build exactly the schema the code expects, on SQLite and PostgreSQL."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from app.cli.serve import MIGRATIONS, upgrade_database
from app.config import Settings
from app.db import recognizers, review, schemas, tables  # noqa: F401  (registers the tables on the metadata)
from app.db.session import Base
from tests.conftest import ROOT

TABLES = set(Base.metadata.tables)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"the migrations have several heads: {heads}"
    return heads[0]


def schema_differences(engine: Engine) -> list:
    """What autogenerate would put in a new migration (nothing, when they agree)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_snapshot(engine: Engine) -> dict[str, list]:
    inspector = inspect(engine)
    return {
        name: sorted(
            (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)
        )
        + sorted(i["name"] for i in inspector.get_indexes(name))
        for name in inspector.get_table_names()
    }


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'fresh' / 'histocr.db'}"


@pytest.fixture
def engine_for() -> Iterator[object]:
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engine = create_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()


def check_upgrade_builds_the_models_schema(url: str, tmp_path: Path, engine_for) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=url)
    upgrade_database(settings)
    engine = engine_for(url)
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []

    # A second upgrade changes nothing and keeps the data.
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (name, description, schema_fields, created_at) "
                "VALUES ('Köln 1822', '', '[\"surname\"]', CURRENT_TIMESTAMP)"
            )
        )
    before = schema_snapshot(engine)
    upgrade_database(settings)
    assert schema_snapshot(engine) == before
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        names = connection.execute(text("SELECT name FROM projects")).scalars().all()
    assert names == ["Köln 1822"]


def test_upgrade_on_fresh_sqlite(sqlite_url, tmp_path, engine_for):
    check_upgrade_builds_the_models_schema(sqlite_url, tmp_path, engine_for)


@pytest.mark.postgres
def test_upgrade_on_fresh_postgresql(postgres_url, tmp_path, engine_for):
    check_upgrade_builds_the_models_schema(postgres_url, tmp_path, engine_for)


def test_downgrade_to_base_and_up_again_on_sqlite(sqlite_url, tmp_path, engine_for):
    settings = Settings(data_dir=tmp_path / "var", database_url=sqlite_url)
    upgrade_database(settings)
    engine = engine_for(sqlite_url)
    migrated = schema_snapshot(engine)

    command.downgrade(alembic_config(sqlite_url), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    assert current_revision(engine) is None

    upgrade_database(settings)
    assert schema_snapshot(engine) == migrated
    assert schema_differences(engine) == []


@pytest.mark.e2e  # a `histocr` subprocess
def test_histocr_migrate_command_creates_the_database(tmp_path, engine_for):
    url = f"sqlite:///{tmp_path / 'cli' / 'histocr.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HISTOCR_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "database is up to date" in result.stdout
    engine = engine_for(url)
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert current_revision(engine) == head_revision()
