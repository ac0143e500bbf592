"""Real installations in subprocesses (a SQLite file or a throw-away PostgreSQL database) for the
command and cross-engine tests: `manage.py` exactly as an operator runs it."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings

from tests.helpers import clean_environment, run_manage

POSTGRES_URL = os.environ.get("PKI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
ROOT_PASSWORD = "installation root password 0123"


@dataclass
class Installation:
    env: dict[str, str]
    data_dir: Path

    def manage(self, *args: str, input_text: str | None = None, timeout: int = 240):
        return run_manage(*args, env=self.env, input_text=input_text, timeout=timeout)

    def ok(self, *args: str) -> str:
        result = self.manage(*args)
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout

    def populate(self) -> None:
        """An organization, a root and an intermediate CA, made by the operator commands."""
        self.ok("create_organization", "--name", "Source Corp", "--slug", "source")
        self.ok("init_root_ca", "--organization", "source", "--name", "Source Root", "--key-type", "ec-p256",
                "--password-env", "ROOT_PASSWORD")
        self.ok("create_intermediate_ca", "--root", "source-root", "--name", "Source Issuing",
                "--key-type", "ec-p256", "--password-env", "ROOT_PASSWORD")

    def backup(self, output: Path) -> dict:
        return json.loads(self.ok("backup_database", "--output", str(output), "--json"))


def installation(tmp_path: Path, database_url: str) -> Installation:
    data_dir = tmp_path / "installation-data"
    env = clean_environment(
        DATABASE_URL=database_url,
        PKI_DATA_DIR=str(data_dir),
        # The same encryption key as the test process: the backup must restore here.
        PKI_ENCRYPTION_KEY=settings.PKI_ENCRYPTION_KEY,
        PKI_ENCRYPTION_SALT=settings.PKI_ENCRYPTION_SALT,
        PKI_ROOT_KDF_LOG2_N="12",
        ROOT_PASSWORD=ROOT_PASSWORD,
    )
    env["DJANGO_SETTINGS_MODULE"] = "pki_project.settings"
    instance = Installation(env, data_dir)
    instance.ok("migrate", "--noinput")
    return instance


def sqlite_installation(tmp_path: Path) -> Installation:
    return installation(tmp_path, f"sqlite:///{tmp_path / 'installation.db'}")


def postgres_answers() -> bool:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except Exception:
        return False
    return True


@contextlib.contextmanager
def postgres_installation(tmp_path: Path) -> Iterator[Installation]:
    """A fresh PostgreSQL database on the test server, dropped afterwards; skips when none answers."""
    if not postgres_answers():
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_URL} (PKI_TEST_POSTGRES_URL): cross-engine test skipped")
    import psycopg

    name = f"pki_backup_source_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield installation(tmp_path, POSTGRES_URL.rsplit("/", 1)[0] + "/" + name)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
