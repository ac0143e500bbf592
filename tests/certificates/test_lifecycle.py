"""Issue, verify, revoke, publish: the whole lifecycle through the service layer, judged by openssl and pkilint."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from audit.actions import AuditAction
from audit.models import AuditEvent
from certificates.crypto.keys import KeyType
from certificates.errors import Conflict, InvalidInput, PolicyViolation
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.artifacts import download_certificate, reveal_pkcs12_password
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.crls import latest_crl, latest_delta_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr, tampered_csr, weak_rsa_csr
from tests.judges import openssl_verify, pkilint_findings

PROFILE_SANS = {
    "server": ["DNS:www.example.com", "DNS:example.com", "IP:192.0.2.10"],
    "client": ["DNS:device-7.example.com"],
    "server-client": ["DNS:mesh.example.com"],
    "email": ["EMAIL:alice@example.com"],
}
PROFILE_CN = {"server": "www.example.com", "client": "device-7", "server-client": "mesh.example.com",
              "email": "alice@example.com"}  # S/MIME strict: the CN repeats the mailbox


@pytest.fixture
def hierarchy_for(organization, operator):
    """A root and intermediate of one key type (cached per test, built by the services)."""

    def build(key_type: str) -> tuple[CertificateAuthority, CertificateAuthority]:
        root = create_root_ca(organization=organization, common_name=f"Root {key_type}",
                              root_password=ROOT_PASSWORD, key_type=key_type, actor=operator)
        inter = create_intermediate_ca(parent=root, common_name=f"Issuing {key_type}", root_password=ROOT_PASSWORD,
                                       key_type=key_type, actor=operator)
        return root, inter

    return build


def crl_file(directory: Path, *crls: CertificateRevocationList) -> Path:
    path = directory / "crls.pem"
    path.write_bytes(b"".join(x509.load_der_x509_crl(bytes(c.der)).public_bytes(Encoding.PEM) for c in crls))
    return path


@pytest.mark.django_db
@pytest.mark.parametrize("key_type", [k.value for k in KeyType])
@pytest.mark.parametrize("profile", list(PROFILE_SANS))
def test_issue_verify_revoke_and_crl_says_revoked(key_type, profile, hierarchy_for, operator, tmp_path,
                                                  django_capture_on_commit_callbacks):
    root, inter = hierarchy_for(key_type)
    csr = make_csr(PROFILE_CN[profile], PROFILE_SANS[profile], key_type=key_type)
    issued = issue_certificate(inter, IssuanceRequest(profile=profile, csr=csr), actor=operator)
    leaf, root_x509, inter_x509 = load_x509(issued), load_x509(root.certificate), load_x509(inter.certificate)
    assert issued.key_type == key_type
    assert issued.profile == profile
    result = openssl_verify(tmp_path, root_x509, leaf, [inter_x509])
    assert result.returncode == 0, result.stdout + result.stderr

    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(issued, reason="keyCompromise", actor=operator)
    root_crl = _root_crl(root, operator)
    # The revocation went out in a delta CRL against the intermediate's base (RFC 5280 5.2.4).
    crls = crl_file(tmp_path, latest_crl(inter), latest_delta_crl(inter), root_crl)
    result = openssl_verify(tmp_path, root_x509, leaf, [inter_x509],
                            ["-crl_check_all", "-use_deltas", "-CRLfile", str(crls)])
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr


def _root_crl(root: CertificateAuthority, operator) -> CertificateRevocationList:
    from certificates.services.publication import generate_crl

    return generate_crl(root, actor=operator, root_password=ROOT_PASSWORD)


@pytest.mark.django_db
def test_issued_server_certificate_and_crl_pass_pkilint(intermediate_ca, operator,
                                                        django_capture_on_commit_callbacks):
    # A built-in asserts no CA/B Forum policy OID until a global admin opts in (then a
    # private policy OID and DV, which the CA/B Forum lint wants).
    from certificates.models import CertificateProfile
    from certificates.services.profiles import update_profile

    update_profile(CertificateProfile.objects.get(name="server"),
                   {"cabf_policy": True, "policy_oids": ["1.3.6.1.5.5.7.13.1"]}, actor=operator)
    issued = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    pem = load_x509(issued).public_bytes(Encoding.PEM)
    assert pkilint_findings("lint_pkix_cert", pem) == []
    findings = pkilint_findings("lint_cabf_serverauth_cert", pem, "-t", "DV-FINAL-CERTIFICATE")
    assert findings == [], "\n".join(findings)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(issued, reason="superseded", actor=operator)
    delta = latest_delta_crl(intermediate_ca)
    assert delta is not None
    assert delta.delta_base_number == latest_crl(intermediate_ca).number
    assert delta.entry_count == 1
    for crl in (latest_crl(intermediate_ca), delta):
        assert pkilint_findings("lint_crl", bytes(crl.der), "-t", "CRL", "-p", "PKIX") == []
        assert pkilint_findings("lint_crl", bytes(crl.der), "-t", "CRL", "-p", "BR") == []


@pytest.mark.django_db
def test_server_generated_key_gives_pkcs12_that_openssl_opens_with_the_revealed_password(
        intermediate_ca, operator, tmp_path):
    issued = issue_certificate(
        intermediate_ca,
        IssuanceRequest(profile="client", common_name="robot-1", sans=["DNS:robot-1.example.com"],
                        key_type="rsa-2048"),
        actor=operator,
    )
    bundle = download_certificate(issued, "p12", actor=operator)
    assert bundle.content_type == "application/x-pkcs12"
    password = reveal_pkcs12_password(issued, actor=operator)
    path = tmp_path / "bundle.p12"
    path.write_bytes(bundle.content)
    opened = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", f"pass:{password}", "-nokeys"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert opened.returncode == 0, opened.stderr
    assert issued.serial.upper().lstrip("0")[:8] in opened.stdout.replace(":", "").upper() or "BEGIN CERTIFICATE" in (
        opened.stdout)
    wrong = subprocess.run(["openssl", "pkcs12", "-in", str(path), "-passin", "pass:not-it", "-nokeys"],
                           capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode != 0
    reveals = AuditEvent.objects.filter(action=AuditAction.PKCS12_PASSWORD_REVEAL, target_id=str(issued.pk))
    assert reveals.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("csr", "code"),
    [
        (tampered_csr(), "csr_bad_signature"),
        (make_csr(ca=True), "ca_requested"),
        (weak_rsa_csr(), "weak_key"),
        (b"garbage bytes that are no CSR", "csr_malformed"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\n" + b"A" * (1024 * 1024) + b"\n-----END CERTIFICATE REQUEST-----\n",
         "csr_too_large"),
        (make_csr("a.example.com", [f"DNS:h{i}.example.com" for i in range(10_000)]), "csr_too_large"),
    ],
    ids=["bad-signature", "ca-true", "rsa-1024", "garbage", "1MB-pem", "10000-sans"],
)
def test_hostile_csrs_are_refused_and_change_nothing(intermediate_ca, operator, csr, code, data_dir):
    files_before = sorted(data_dir.rglob("*"))
    certificates_before = Certificate.objects.count()
    with pytest.raises(InvalidInput) as refused:
        issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=csr), actor=operator)
    assert refused.value.code == code
    assert Certificate.objects.count() == certificates_before
    assert sorted(data_dir.rglob("*")) == files_before
    assert not AuditEvent.objects.filter(action=AuditAction.CERTIFICATE_ISSUE).exists()


@pytest.mark.django_db
def test_wildcard_refused_where_the_profile_forbids_it(intermediate_ca, operator):
    with pytest.raises(InvalidInput) as refused:
        issue_certificate(intermediate_ca, IssuanceRequest(
            profile="client", csr=make_csr("*.example.com", ["DNS:*.example.com"])), actor=operator)
    assert refused.value.code == "san_not_allowed"
    assert not Certificate.objects.filter(kind="end_entity").exists()


@pytest.mark.django_db
def test_name_constraints_of_the_issuer_are_enforced(root_ca, operator):
    constrained = create_intermediate_ca(parent=root_ca, common_name="Example Only", root_password=ROOT_PASSWORD,
                                         permitted_names=["example.com"], actor=operator)
    issue_certificate(constrained, IssuanceRequest(profile="server", csr=make_csr("ok.example.com")), actor=operator)
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(constrained, IssuanceRequest(profile="server", csr=make_csr("evil.example.org")),
                          actor=operator)
    assert refused.value.code == "name_constraints"
    assert Certificate.objects.filter(kind="end_entity").count() == 1


@pytest.mark.django_db
def test_no_issuance_from_a_root_or_a_revoked_ca(root_ca, intermediate_ca, operator,
                                                 django_capture_on_commit_callbacks):
    with pytest.raises(PolicyViolation):
        issue_certificate(root_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(intermediate_ca.certificate, reason="cessationOfOperation", actor=operator,
                           root_password=ROOT_PASSWORD)
    intermediate_ca.certificate.refresh_from_db()
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    assert refused.value.code == "issuer_not_usable"


@pytest.mark.django_db
def test_revoking_a_ca_with_valid_children_needs_an_explicit_choice(intermediate_ca, operator,
                                                                   django_capture_on_commit_callbacks):
    leaf = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    with pytest.raises(Conflict) as refused:
        revoke_certificate(intermediate_ca.certificate, reason="keyCompromise", actor=operator,
                           root_password=ROOT_PASSWORD)
    assert refused.value.code == "ca_has_valid_children"
    leaf.refresh_from_db()
    assert not leaf.is_revoked
    with django_capture_on_commit_callbacks(execute=True):
        revoked = revoke_certificate(intermediate_ca.certificate, reason="keyCompromise", actor=operator,
                                     root_password=ROOT_PASSWORD, revoke_children=True)
    assert {c.pk for c in revoked} == {intermediate_ca.certificate_id, leaf.pk}
    leaf.refresh_from_db()
    assert leaf.revocation_reason == "cessationOfOperation"  # BR 7.2.2: no cACompromise for subscribers


@pytest.mark.django_db
def test_revocation_is_final_and_reasons_are_rfc5280_names(intermediate_ca, operator):
    leaf = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    with pytest.raises(InvalidInput):
        revoke_certificate(leaf, reason="certificateHold", actor=operator)
    revoke_certificate(leaf, reason="affiliationChanged", actor=operator)
    with pytest.raises(Conflict):
        revoke_certificate(leaf, reason="keyCompromise", actor=operator)
    assert AuditEvent.objects.filter(action=AuditAction.CERTIFICATE_REVOKE).count() == 1


@pytest.mark.django_db
def test_renewal_keeps_subject_and_sans_and_links_the_predecessor(intermediate_ca, operator):
    old = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()), actor=operator)
    new = renew_certificate(old, actor=operator, revoke_predecessor=True)
    assert new.predecessor == old
    assert (new.subject, new.sans, new.profile) == (old.subject, old.sans, old.profile)
    assert new.serial != old.serial
    assert load_x509(new).public_key() == load_x509(old).public_key()  # same key for a CSR without a new CSR
    old.refresh_from_db()
    assert old.revocation_reason == "superseded"
    with pytest.raises((Conflict, PolicyViolation)):
        renew_certificate(old, actor=operator)
    server_key = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", common_name="k.example.com"),
                                   actor=operator)
    renewed = renew_certificate(server_key, actor=operator)
    assert load_x509(renewed).public_key() != load_x509(server_key).public_key()  # a new key for server keys
    assert renewed.pkcs12_path
    assert renewed.pkcs12_path != server_key.pkcs12_path


@pytest.mark.django_db
def test_crl_numbers_only_grow(intermediate_ca, operator):
    from django.db import IntegrityError, transaction

    from certificates.services.publication import generate_crl

    numbers = [generate_crl(intermediate_ca, actor=operator).number for _ in range(3)]
    assert numbers == sorted(set(numbers))
    with pytest.raises(IntegrityError), transaction.atomic():
        CertificateAuthority.objects.filter(pk=intermediate_ca.pk).update(crl_number=0)
