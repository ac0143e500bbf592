"""Outages: a read-only or full data directory, an unreachable database.

Storage: the data directory is a real tmpfs (512 KiB) mounted for the test, remounted
read-only or filled up. A write that the disk refuses gives one clear `StorageUnavailable`
(503, code `storage_unavailable`; the command's one-line message) and leaves nothing
half-written: no row, no event, no file. Skipped with a message where this process may
not mount (not root, or no CAP_SYS_ADMIN).

Database: a real gunicorn whose DATABASE_URL points at a closed port answers `/health`,
503 `database unavailable` on `/ready`, and a clear 503 elsewhere, never a traceback;
`check_consistency` exits 2.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from certificates.consistency import check_consistency
from certificates.errors import StorageUnavailable
from certificates.models import Certificate
from certificates.services.authorities import create_intermediate_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from tests.certificates.csrs import make_csr
from tests.helpers import clean_environment, run_manage
from tests.reliability.conftest import ROOT_PASSWORD
from tests.reliability.installations import free_port, gunicorn, request

TMPFS_SIZE = "512k"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture
def tmpfs_data_dir(data_dir: Path) -> Iterator[Path]:
    """The test's PKI_DATA_DIR as a small tmpfs of its own."""
    mounted = _run("mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(data_dir))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    try:
        yield data_dir
    finally:
        _run("umount", "-l", str(data_dir))


def remount(data_dir: Path, mode: str) -> None:
    result = _run("mount", "-o", f"remount,{mode}", str(data_dir))
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def filled(data_dir: Path) -> Iterator[None]:
    """Fill the file system to the last byte; free it afterwards."""
    filler = data_dir / "filler"
    with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
        while True:
            handle.write(b"\0" * 4096)
    try:
        yield
    finally:
        filler.unlink()


def files_under(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file()}


@pytest.fixture
def snapshot(tmpfs_data_dir: Path, intermediate_ca):
    def take() -> tuple[int, int, set[str]]:
        return Certificate.objects.count(), AuditEvent.objects.count(), files_under(tmpfs_data_dir) - {"filler"}

    return take


@pytest.mark.django_db
def test_a_read_only_data_directory_refuses_clearly_and_writes_nothing(
        tmpfs_data_dir: Path, intermediate_ca, operator, snapshot, make_principal_client) -> None:
    before = snapshot()
    remount(tmpfs_data_dir, "ro")
    try:
        with pytest.raises(StorageUnavailable) as refused:
            issue_certificate(intermediate_ca, IssuanceRequest(profile="client", common_name="robot"), actor=operator)
        assert refused.value.status == 503
        assert refused.value.message == "The certificate store is read-only: nothing was stored. Try again later."
        with pytest.raises(CommandError, match="read-only: nothing was stored"):
            call_command("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "client",
                         "--common-name", "robot-2", "--key-type", "ec-p256")
        client = make_principal_client("manager", intermediate_ca.organization)
        response = client.post("/api/v1/certificates/", {"ca": intermediate_ca.slug, "profile": "client",
                                                         "common_name": "robot-3"}, content_type="application/json")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "storage_unavailable"
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert "data directory not writable" in ready.json()["reasons"]
        after_refusals = snapshot()
        assert after_refusals[0] == before[0]
        assert after_refusals[2] == before[2]
        # A CSR needs no artifact: issuance from a CSR still works on a read-only disk.
        issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    finally:
        remount(tmpfs_data_dir, "rw")


@pytest.mark.django_db
def test_a_full_data_directory_refuses_clearly_and_leaves_no_partial_file(
        tmpfs_data_dir: Path, root_ca, intermediate_ca, operator, snapshot) -> None:
    before = snapshot()
    with filled(tmpfs_data_dir):
        with pytest.raises(StorageUnavailable, match="is full: nothing was stored"):
            issue_certificate(intermediate_ca, IssuanceRequest(profile="client", common_name="robot"), actor=operator)
        with pytest.raises(StorageUnavailable, match="is full"):
            create_intermediate_ca(parent=root_ca, common_name="Another Issuing CA", root_password=ROOT_PASSWORD,
                                   key_type="ec-p256", actor=operator)
        assert snapshot() == before  # no row, no event, no file (not even a temporary one)
    issued = issue_certificate(intermediate_ca, IssuanceRequest(profile="client", common_name="robot"),
                               actor=operator)
    assert issued.pkcs12_path
    report = check_consistency(grace_seconds=0)
    assert report.errors == []


# --- an unreachable database -------------------------------------------------------------------


def test_an_unreachable_database_gives_503_on_ready_and_clear_errors_elsewhere(tmp_path: Path) -> None:
    closed = free_port()
    env = clean_environment(DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed}/pki", PKI_COOKIE_SECURE="false",
                            PKI_DATA_DIR=str(tmp_path / "data"), PKI_ENV_FILE=str(tmp_path / "no.env"))
    port = free_port()
    bearer = {"Authorization": "Bearer pki_0123456789ab_" + "A" * 43}
    with gunicorn(env, port):
        assert request(port, "/health")[0] == 200
        status, body = request(port, "/ready")
        assert status == 503
        assert json.loads(body) == {"status": "unavailable", "reasons": ["database unavailable"]}
        for path, headers in (("/api/v1/certificates/", bearer),
                              ("/pki/ca/example.pem", {"Accept": "application/json"})):
            status, body = request(port, path, headers)
            assert status == 503, (path, status, body)
            assert json.loads(body)["error"] == {"code": "database_unavailable",
                                                 "message": "The database is unavailable; try again later."}
        status, body = request(port, "/pki/crl/example.crl")  # a relying party: the generic page
        assert status == 503
        assert "The database is unavailable" in body
        assert "Traceback" not in body
    listed = run_manage("list_certificates", env=env, timeout=120)
    assert listed.returncode == 1
    assert listed.stderr.startswith("Database error: the database could not be used (connection failed")
    assert "Traceback" not in listed.stderr
    checked = run_manage("check_consistency", "--json", env={**env, "DJANGO_SETTINGS_MODULE": "pki_project.settings"},
                         timeout=120)
    assert checked.returncode == 2
    document = json.loads(checked.stdout)
    assert document["could_not_run"] is True
    assert "the database is unavailable" in document["message"]


@pytest.mark.django_db
def test_a_rotation_on_a_full_disk_stops_clearly_and_a_rerun_finishes(
        tmpfs_data_dir: Path, intermediate_ca, operator, monkeypatch) -> None:
    for index in range(3):
        issue_certificate(intermediate_ca, IssuanceRequest(profile="client", common_name=f"robot-{index}"),
                          actor=operator)
    monkeypatch.setenv("PKI_NEW_ENCRYPTION_KEY", "rotated-encryption-key-0123456789abcdefgh")
    monkeypatch.setenv("PKI_NEW_ENCRYPTION_SALT", "rotated-salt-0f1e2d3c4b5a")
    with filled(tmpfs_data_dir), pytest.raises(CommandError, match="is full: the rotation stopped"):
        call_command("rotate_encryption_key")
    call_command("rotate_encryption_key", stdout=StringIO())
    assert not (tmpfs_data_dir / ".rotation.json").exists()
