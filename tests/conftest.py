"""Shared fixtures: a fresh temporary PKI_DATA_DIR per test, and the PostgreSQL pass."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


def running_on_postgres() -> bool:
    return os.environ.get("PKI_TEST_DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def uses_database(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(fixtures & DATABASE_FIXTURES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass run only the tests that touch the database; the rest ran on SQLite."""
    if not running_on_postgres():
        return
    selected = [item for item in items if uses_database(item)]
    deselected = [item for item in items if not uses_database(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = selected


def pytest_report_header(config: pytest.Config) -> str:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return f"PKI test database backend: {engine}"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, settings) -> Path:
    """Every test gets its own empty, private data directory."""
    directory = tmp_path / "pki-data"
    directory.mkdir(mode=0o700)
    settings.PKI_DATA_DIR = directory
    return directory
