"""A restore failing, or the process dying, at each step leaves the old state or the new one, never a mix."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from backups.errors import BackupError, InjectedFailure, SimulatedCrash
from backups.locking import restore_lock
from backups.services import RESTORE_STEPS, recover, restore_backup
from certificates.models import CertificateAuthority
from certificates.services.issuance import IssuanceRequest, issue_certificate
from pki_project.actor import Actor
from tests.backups.helpers import directory_fingerprint, live_state, make_backup

STEPS_AFTER_COMMIT = {"cleanup"}
STEPS_INSIDE_TRANSACTION = ("delete_rows", "insert_rows", "check_constraints", "audit_event", "swap_files", "commit")


@pytest.fixture
def scenario(populated_pki: CertificateAuthority, operator: Actor, tmp_path: Path, data_dir: Path):
    """A backup, then changes (rows and artifacts) so the old and the new state differ everywhere."""
    backed_up_files = directory_fingerprint(data_dir)
    archive = make_backup(tmp_path / "backup.zip")
    issue_certificate(populated_pki, IssuanceRequest(profile="server", common_name="later.example.com",
                                                     key_type="ec-p256"), actor=operator)
    return archive, backed_up_files


def assert_new_state(data_dir: Path, backed_up_files: dict[str, str]) -> None:
    from certificates.models import Certificate

    assert directory_fingerprint(data_dir) == backed_up_files
    assert not Certificate.objects.filter(common_name="later.example.com").exists()
    assert live_state(data_dir)[2] == []  # no journal, staging or aside directory left


@pytest.mark.parametrize("step", RESTORE_STEPS)
def test_injected_failure_at_each_step(scenario, data_dir: Path, step: str) -> None:
    archive, backed_up_files = scenario
    before = live_state(data_dir)
    if step in STEPS_AFTER_COMMIT:
        report = restore_backup(archive, Actor.operator("tests"), fail_at=step)
        assert report.warnings  # the restore is done; only its clean-up is left over ...
        assert "--recover" in report.warnings[0]
        assert recover() is not None  # ... and --recover finishes it
        assert_new_state(data_dir, backed_up_files)
        return
    with pytest.raises(InjectedFailure):
        restore_backup(archive, Actor.operator("tests"), fail_at=step)
    assert live_state(data_dir) == before


@pytest.mark.parametrize("step", [*STEPS_INSIDE_TRANSACTION, "cleanup"])
def test_crash_at_each_step_is_recovered(scenario, data_dir: Path, step: str) -> None:
    """The process "dies" (no handler runs); the database rolls back by itself; --recover fixes the files."""
    archive, backed_up_files = scenario
    before = live_state(data_dir)
    with pytest.raises(SimulatedCrash):
        restore_backup(archive, Actor.operator("tests"), crash_at=step)
    outcome = recover()
    if step in STEPS_AFTER_COMMIT:
        assert outcome is not None
        assert "completed" in outcome
        assert_new_state(data_dir, backed_up_files)
    else:
        if step in ("swap_files", "commit"):
            assert outcome is not None
            assert "rolled back" in outcome
        assert live_state(data_dir) == before


def test_interrupted_restore_is_recovered_by_the_next_restore(scenario, data_dir: Path) -> None:
    archive, backed_up_files = scenario
    with pytest.raises(SimulatedCrash):
        restore_backup(archive, Actor.operator("tests"), crash_at="commit")
    report = restore_backup(archive, Actor.operator("tests"))
    assert report.recovered is not None
    assert "rolled back" in report.recovered
    assert_new_state(data_dir, backed_up_files)


def test_a_second_restore_at_the_same_time_is_refused(scenario, data_dir: Path) -> None:
    archive, _ = scenario
    before = live_state(data_dir)
    with restore_lock(data_dir.resolve(), exclusive=True), pytest.raises(BackupError) as caught:
        restore_backup(archive, Actor.operator("tests"))
    assert caught.value.code == "busy"
    assert "Another restore" in caught.value.message
    assert live_state(data_dir) == before


def test_a_restore_from_another_thread_is_refused_while_one_holds_the_lock(data_dir: Path, db) -> None:
    """flock is per open file description: two holders in one process exclude each other too."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with restore_lock(data_dir, exclusive=True):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(10)
        with pytest.raises(BackupError), restore_lock(data_dir, exclusive=False):
            pass
    finally:
        release.set()
        thread.join()
