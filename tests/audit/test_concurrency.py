"""One chain under concurrency: parallel writer processes never fork it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path
from urllib.parse import quote

import pytest
from django.core.management import call_command
from django.db import connection

from audit.keys import audit_keys_for
from audit.maintenance import delete_all_events
from audit.models import AuditEvent
from audit.verification import verify_chain
from tests.helpers import PROJECT_DIR, VALID_SECRETS, clean_environment, run_manage

WRITERS = 4
EVENTS_PER_WRITER = 25
WRITER_TIMEOUT_SECONDS = 120


def run_writers(count: int, events: int, env: dict[str, str], barrier: Path) -> None:
    """Start `count` writer processes, release them together once all are connected, wait for them."""
    barrier.mkdir()
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.audit.writer", str(events), str(barrier), f"writer-{index}"],
            cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for index in range(count)
    ]
    try:
        _release_when_ready(writers, barrier)
        for writer in writers:
            _, stderr = writer.communicate(timeout=WRITER_TIMEOUT_SECONDS)
            assert writer.returncode == 0, stderr
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()


def _release_when_ready(writers: list[subprocess.Popen[str]], barrier: Path) -> None:
    deadline = time.monotonic() + WRITER_TIMEOUT_SECONDS
    while len(list(barrier.glob("ready-*"))) < len(writers):
        failed = [writer for writer in writers if writer.poll() not in (None, 0)]
        assert not failed, failed[0].communicate()[1]
        assert time.monotonic() < deadline, "the writer processes did not start"
        time.sleep(0.01)
    (barrier / "go").touch()


def postgres_url(settings_dict: dict) -> str:
    """The URL of the test database pytest-django created (test_postgres, or with an xdist suffix)."""
    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{settings_dict['NAME']}"


@pytest.fixture
def committed_events(transactional_db):
    """Events the writer processes commit outlive the test transaction: empty the table afterwards."""
    yield
    delete_all_events()


@pytest.mark.postgres
@pytest.mark.usefixtures("committed_events")
def test_parallel_writer_processes_leave_one_intact_chain_on_postgresql(tmp_path: Path) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set PKI_TEST_DATABASE_URL")
    env = clean_environment(DJANGO_SETTINGS_MODULE="pki_project.settings",
                            DATABASE_URL=postgres_url(connection.settings_dict),
                            PKI_DATA_DIR=str(tmp_path / "data"), PKI_ENV_FILE=str(tmp_path / "none.env"))

    run_writers(WRITERS, EVENTS_PER_WRITER, env, tmp_path / "barrier")

    assert AuditEvent.objects.count() == WRITERS * EVENTS_PER_WRITER
    writers_keys = audit_keys_for(VALID_SECRETS["PKI_ENCRYPTION_KEY"], VALID_SECRETS["PKI_ENCRYPTION_SALT"])
    result = verify_chain(keys=writers_keys)  # the writers ran with the subprocess secrets
    assert result.ok, result.broken
    assert result.head_seq == WRITERS * EVENTS_PER_WRITER
    labels = set(AuditEvent.objects.values_list("actor_label", flat=True))
    assert labels == {f"writer-{index}" for index in range(WRITERS)}
    assert _interleaved(), "the writers ran one after another: the test did not exercise concurrency"
    exported = StringIO()
    call_command("export_audit_log", stdout=exported)  # outside a transaction: the read-only snapshot path
    assert len(exported.getvalue().splitlines()) == WRITERS * EVENTS_PER_WRITER


def _interleaved() -> bool:
    labels = list(AuditEvent.objects.order_by("seq").values_list("actor_label", flat=True))
    switches = sum(1 for before, after in itertools.pairwise(labels) if before != after)
    return switches > WRITERS


def test_parallel_writer_processes_on_a_sqlite_file(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE and the busy timeout serialize writers on SQLite: no fork, no 'database is locked'."""
    env = clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"))
    migrated = run_manage("migrate", "--noinput", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stderr

    run_writers(2, EVENTS_PER_WRITER, env, tmp_path / "barrier")

    verified = run_manage("verify_audit_log", "--json", env=env)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert (report["ok"], report["count"]) == (True, 2 * EVENTS_PER_WRITER)
