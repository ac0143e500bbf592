"""SIGKILL in the middle of issuance, revocation, CRL signing, key rotation and restore.

A worker loops over the operation and is killed (SIGKILL: no clean-up, no `finally`)
after a random short delay, several times. Afterwards the consistency check finds no
error: no certificate without its artifacts or its audit event, CRL numbers never
repeated, the chain intact. An orphan artifact (sealed, then the process died before
its row committed) is allowed, and reported as a warning.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.rotation import JOURNAL_FILENAME
from certificates.vault.storage import ArtifactStore
from tests.helpers import VALID_SECRETS
from tests.reliability.installations import Installation, _readline, sqlite_installation

ROUNDS = 3
NEW_KEY = {"PKI_NEW_ENCRYPTION_KEY": "rotated-encryption-key-0123456789abcdefgh",
           "PKI_NEW_ENCRYPTION_SALT": "rotated-salt-0f1e2d3c4b5a"}


def kill_while_running(installation: Installation, *args: str, rounds: int = ROUNDS) -> int:
    """Start the looping worker `rounds` times; kill it once it has done some work. Returns operations seen."""
    seen = 0
    for _ in range(rounds):
        process = installation.spawn(*args)
        try:
            _readline(process, timeout=120)  # the loop runs: one operation finished
            seen += 1
            time.sleep(random.uniform(0.0, 0.4))  # then die anywhere in a later one
        finally:
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        assert process.returncode == -signal.SIGKILL
    return seen


def errors_and_warnings(installation: Installation, **env: str) -> tuple[list[dict], set[str]]:
    _status, report = installation.consistency(**env)
    findings = report["findings"]
    errors = [f for f in findings if f["severity"] == "error"]
    return errors, {f["code"] for f in findings if f["severity"] == "warning"}


def test_killed_issuers_leave_no_certificate_without_its_artifacts_or_event(installation: Installation) -> None:
    installation.worker("setup", "--ca", "killed-issuing")
    kill_while_running(installation, "issue", "--ca", "killed-issuing", "--count", "0", "--server-key")
    errors, warnings = errors_and_warnings(installation)
    assert errors == []
    assert warnings <= {"orphan_artifact", "stale_temp_file", "crl_missing"}
    [summary] = installation.worker("summary", "--ca", "killed-issuing")
    assert summary["issue_events"] == len(summary["ids"]) >= ROUNDS
    assert summary["audit_ok"]


def test_killed_revokers_leave_every_revocation_with_its_event_and_cron_catches_up(
        installation: Installation) -> None:
    installation.worker("setup", "--ca", "killed-revoking")
    # Enough targets that the looping revoker is still busy when each of the kills lands,
    # even on an idle machine (it exits once nothing is left to revoke).
    installation.worker("issue", "--ca", "killed-revoking", "--count", "400")
    installation.worker("crl", "--ca", "killed-revoking")
    kill_while_running(installation, "revoke", "--ca", "killed-revoking", "--count", "0")
    errors, warnings = errors_and_warnings(installation)
    assert errors == []
    assert warnings <= {"orphan_artifact", "stale_temp_file", "crl_missing", "crl_outdated"}
    installation.ok("generate_crl", "--ca", "killed-revoking")
    [summary] = installation.worker("summary", "--ca", "killed-revoking")
    assert summary["revoke_events"] == len(summary["revoked"]) >= ROUNDS
    assert set(summary["revoked"]) <= set(summary["published_serials"])  # base + its delta
    assert "crl_outdated" not in errors_and_warnings(installation)[1]


def test_killed_crl_signers_never_repeat_a_number(installation: Installation) -> None:
    installation.worker("setup", "--ca", "killed-crls")
    kill_while_running(installation, "crl", "--ca", "killed-crls", "--count", "0")
    [summary] = installation.worker("summary", "--ca", "killed-crls")
    numbers = summary["crl_numbers"]
    assert len(numbers) == len(set(numbers)) >= ROUNDS
    assert max(numbers) <= summary["crl_counter"]  # a number taken by a killed signer is skipped, never reused
    signed = installation.worker("crl", "--ca", "killed-crls")
    assert signed[0]["number"] > max(numbers)
    assert errors_and_warnings(installation)[0] == []


@pytest.fixture
def sqlite_only(tmp_path: Path) -> Installation:
    instance = sqlite_installation(tmp_path)
    instance.worker("setup", "--ca", "faults-issuing")
    instance.worker("issue", "--ca", "faults-issuing", "--count", "2", "--server-key")
    instance.worker("crl", "--ca", "faults-issuing")
    return instance


def _add_artifacts(data_dir: Path, count: int) -> None:
    """Unreferenced artifacts (reported as orphans) so that a rotation takes long enough to be caught."""
    store = ArtifactStore(data_dir, ArtifactCipher.from_settings_values(VALID_SECRETS["PKI_ENCRYPTION_KEY"],
                                                                        VALID_SECRETS["PKI_ENCRYPTION_SALT"]))
    for index in range(count):
        store.write(f"filler/{index:04d}.pem.enc", b"x" * 512)


def _kill_when(process: subprocess.Popen[str], condition, after: float = 0.0, timeout: float = 120) -> bool:
    """SIGKILL `process` `after` seconds once `condition()` holds; False if it finished first."""
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        if condition():
            time.sleep(after)
            if process.poll() is not None:
                break
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            return True
        time.sleep(0.002)
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)
    return False


def test_a_killed_key_rotation_is_reported_and_a_rerun_finishes(sqlite_only: Installation) -> None:
    installation = sqlite_only
    _add_artifacts(installation.data_dir, 300)
    rotation = subprocess.Popen(
        [*_manage_argv(), "rotate_encryption_key"], env={**installation.env, **NEW_KEY},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_project_dir(),
    )
    assert _kill_when(rotation, lambda: (installation.data_dir / JOURNAL_FILENAME).exists()), \
        "the rotation finished before it could be killed"
    status, report = installation.consistency()
    assert status == 1
    assert "rotation_in_progress" in {f["code"] for f in report["findings"]}

    rerun = installation.manage("rotate_encryption_key", **NEW_KEY)
    assert rerun.returncode == 0, rerun.stderr
    assert not (installation.data_dir / JOURNAL_FILENAME).exists()
    new_key = {"PKI_ENCRYPTION_KEY": NEW_KEY["PKI_NEW_ENCRYPTION_KEY"],
               "PKI_ENCRYPTION_SALT": NEW_KEY["PKI_NEW_ENCRYPTION_SALT"]}
    errors, warnings = errors_and_warnings(installation, **new_key)
    assert errors == []  # every referenced artifact opens under the new key
    assert "orphan_artifact" in warnings  # the filler
    assert warnings <= {"orphan_artifact", "stale_temp_file"}  # a kill mid-write leaves its temp file


def test_a_killed_restore_is_recovered_to_a_consistent_state(installation: Installation, tmp_path: Path) -> None:
    installation.worker("setup", "--ca", "restore-issuing")
    installation.worker("issue", "--ca", "restore-issuing", "--count", "2", "--server-key")
    installation.worker("crl", "--ca", "restore-issuing")
    archive = tmp_path / "backup.zip"
    installation.ok("backup_database", "--output", str(archive))
    installation.worker("issue", "--ca", "restore-issuing", "--count", "2")  # the live state moves on
    parent, name = installation.data_dir.parent, installation.data_dir.name
    killed = 0
    for _ in range(2):
        restore = subprocess.Popen(
            [*_manage_argv(), "restore_database", str(archive), "--yes"], env=installation.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_project_dir(),
        )
        staging = lambda: any(parent.glob(f".{name}.restore-*"))  # noqa: E731
        killed += _kill_when(restore, staging, after=random.uniform(0.0, 0.5))
        recovered = installation.manage("restore_database", "--recover")
        assert recovered.returncode == 0, recovered.stderr
        errors, _warnings = errors_and_warnings(installation)
        assert errors == []
    assert killed, "every restore finished before it could be killed"
    installation.ok("restore_database", str(archive), "--yes")
    assert errors_and_warnings(installation)[0] == []


def _manage_argv() -> list[str]:
    import sys

    return [sys.executable, str(_project_dir() / "manage.py")]


def _project_dir() -> Path:
    from tests.helpers import PROJECT_DIR

    return PROJECT_DIR
