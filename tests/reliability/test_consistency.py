"""`check_consistency`: database against storage, chains, CRL freshness, audit; exit status and JSON."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from certificates.consistency import check_consistency
from certificates.keystore import artifact_store
from certificates.models import Certificate, CertificateAuthority, CertificateKind, KeySource
from certificates.services.authorities import create_intermediate_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.services.records import create_certificate_row, load_x509
from certificates.services.revocation import revoke_certificate
from certificates.vault.paths import TEMP_PREFIX
from certificates.vault.rotation import JOURNAL_FILENAME
from tests.certificates.csrs import make_csr
from tests.reliability.conftest import ROOT_PASSWORD

pytestmark = pytest.mark.django_db


def codes(report) -> set[tuple[str, str]]:
    return {(finding.severity, finding.code) for finding in report.findings}


def run_command(*args: str) -> tuple[int, str]:
    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("check_consistency", *args, stdout=out, stderr=StringIO())
    return int(exited.value.code or 0), out.getvalue()


@pytest.fixture
def populated(intermediate_ca: CertificateAuthority, operator) -> dict[str, Certificate]:
    """A CSR certificate, a server-key certificate (PKCS#12 + password), one revoked, and fresh CRLs."""
    from_csr = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("a.example.com")),
                                 actor=operator)
    server_key = issue_certificate(intermediate_ca, IssuanceRequest(profile="client", common_name="robot-1"),
                                   actor=operator)
    revoked = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("b.example.com")),
                                actor=operator)
    revoke_certificate(revoked, reason="keyCompromise", actor=operator)
    generate_crl(intermediate_ca, actor=operator)
    return {"csr": from_csr, "server_key": server_key, "revoked": revoked}


def test_a_consistent_installation_has_no_finding_and_exits_0(populated) -> None:
    report = check_consistency(grace_seconds=0)
    assert report.findings == []
    assert report.ok
    # root + intermediate keys (2 files each) and the PKCS#12 with its password
    assert report.checked["artifacts_referenced"] == 6
    assert report.checked["artifacts_on_disk"] == 6
    assert report.checked["certificates"] == 5
    status, output = run_command("--json", "--grace-seconds", "0")
    assert status == 0
    document = json.loads(output)
    assert document["ok"] is True
    assert (document["errors"], document["warnings"], document["findings"]) == (0, 0, [])


def test_a_missing_pkcs12_is_an_error_naming_the_certificate(populated) -> None:
    certificate = populated["server_key"]
    artifact_store().delete(certificate.pkcs12_path)
    report = check_consistency(grace_seconds=0)
    assert ("error", "artifact_missing") in codes(report)
    [finding] = report.errors
    assert finding.object == f"certificate:{certificate.pk}"
    status, output = run_command("--json")
    assert status == 1
    [listed] = json.loads(output)["findings"]
    assert set(listed) == {"severity", "code", "message", "object"}
    assert listed["code"] == "artifact_missing"


def test_a_damaged_or_foreign_ca_key_file_is_an_error(populated, intermediate_ca, data_dir: Path) -> None:
    key_file = data_dir / intermediate_ca.key_directory / "key.pem.enc"
    blob = bytearray(key_file.read_bytes())
    blob[-1] ^= 0x01
    key_file.write_bytes(bytes(blob))
    password_file = data_dir / intermediate_ca.key_directory / ".pwd.enc"
    blob = bytearray(password_file.read_bytes())
    blob[5] ^= 0xFF  # the header's key id: sealed by "another" key
    password_file.write_bytes(bytes(blob))
    report = check_consistency(grace_seconds=0)
    assert ("error", "artifact_unreadable") in codes(report)
    assert ("error", "artifact_wrong_key") in codes(report)
    assert {f.object for f in report.errors} == {f"ca:{intermediate_ca.slug}"}


def test_orphans_and_stale_temp_files_are_warnings_after_the_grace_period(populated, data_dir: Path) -> None:
    artifact_store().write("certs/0123456789abcdef/bundle.p12.enc", b"left behind", overwrite=False)
    temp = data_dir / "certs" / f"{TEMP_PREFIX}deadbeef"
    temp.write_bytes(b"half")
    assert check_consistency().findings == []  # young files may belong to an operation in flight
    old = time.time() - 3600
    os.utime(temp, (old, old))
    os.utime(data_dir / "certs/0123456789abcdef/bundle.p12.enc", (old, old))
    report = check_consistency()
    assert codes(report) == {("warning", "orphan_artifact"), ("warning", "stale_temp_file")}
    assert report.ok
    assert run_command()[0] == 0
    assert run_command("--strict")[0] == 1


def test_revocations_after_the_latest_crl_and_an_expired_crl_are_reported(intermediate_ca, operator) -> None:
    past = timezone.now() - timedelta(days=30)
    generate_crl(intermediate_ca, actor=operator, now=past)  # 7-day CRL: long past its nextUpdate
    certificate = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()),
                                    actor=operator)
    revoke_certificate(certificate, reason="superseded", actor=operator)  # the re-sign waits for a commit
    report = check_consistency(grace_seconds=0)
    assert {("error", "crl_expired"), ("warning", "crl_outdated")} <= codes(report)
    generate_crl(intermediate_ca, actor=operator)
    assert check_consistency(grace_seconds=0).findings == []


def test_a_ca_without_crl_is_a_warning(intermediate_ca) -> None:
    intermediate_ca.crls.all().delete()  # its first CRLs are signed when it is created
    report = check_consistency(grace_seconds=0)
    assert codes(report) == {("warning", "crl_missing")}
    assert report.warnings[0].object == f"ca:{intermediate_ca.slug}"


def test_a_certificate_under_the_wrong_issuer_or_with_edited_columns_is_an_error(populated, root_ca, operator):
    other = create_intermediate_ca(parent=root_ca, common_name="Other Issuing CA", root_password=ROOT_PASSWORD,
                                   key_type="ec-p256", actor=operator)
    generate_crl(other, actor=operator)
    moved = populated["csr"]
    Certificate.objects.filter(pk=moved.pk).update(issuer=other)
    Certificate.objects.filter(pk=populated["server_key"].pk).update(fingerprint_sha256="0" * 64)
    report = check_consistency(grace_seconds=0)
    assert ("error", "chain_invalid") in codes(report)
    assert ("error", "certificate_mismatch") in codes(report)


def test_a_certificate_row_without_its_audit_event_is_an_error(intermediate_ca, operator) -> None:
    sibling = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    generate_crl(intermediate_ca, actor=operator)
    x509_certificate = load_x509(sibling)
    Certificate.objects.filter(pk=sibling.pk).delete()  # keep the DER, write the row again with no event
    row = create_certificate_row(x509_certificate, organization=intermediate_ca.organization, issuer=intermediate_ca,
                                 kind=CertificateKind.END_ENTITY, key_source=KeySource.CSR, created_by="ghost")
    report = check_consistency(grace_seconds=0)
    assert [(f.code, f.object) for f in report.errors] == [("audit_event_missing", f"certificate:{row.pk}")]


def test_a_revocation_undone_in_the_database_is_an_error(intermediate_ca, operator) -> None:
    """Someone with SQL clears a revocation: OCSP would say good, but the trail still holds the revocation."""
    leaf = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    revoke_certificate(leaf, reason="keyCompromise", actor=operator)
    generate_crl(intermediate_ca, actor=operator)
    assert check_consistency(grace_seconds=0).errors == []
    Certificate.objects.filter(pk=leaf.pk).update(revoked_at=None, revocation_reason="")

    report = check_consistency(grace_seconds=0)

    assert ("revocation_undone", f"certificate:{leaf.pk}") in [(f.code, f.object) for f in report.errors]


def test_an_unfinished_rotation_is_an_error(populated, data_dir: Path) -> None:
    (data_dir / JOURNAL_FILENAME).write_text("{}")
    assert ("error", "rotation_in_progress") in codes(check_consistency(grace_seconds=0))
