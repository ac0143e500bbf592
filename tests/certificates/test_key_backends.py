"""The key lifecycle on both key backends: the file vault and a PKCS#11 token (SoftHSM2).

Parametrised by `key_backend` (`vault`, `pkcs11`), each test runs the same operations on both:
a root and an intermediate are made in the backend, the intermediate issues leaves (from a CSR
and with a server-generated key), certificates are revoked, full and delta CRLs are signed, OCSP
answers are signed by the CA itself and by a delegated responder, and the root's pre-signed
answers come from its CRL signing. What they emit is judged by `openssl verify` (chains and
CRLs), `openssl ocsp` and pkilint. Token-only tests show the key cannot leave the token and
that the PIN is handled like the root password.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from io import StringIO
from pathlib import Path

import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from django.core import serializers
from django.core.management import call_command

from audit.models import AuditEvent
from certificates.errors import UnlockRefused
from certificates.models import CertificateAuthority, PresignedOCSPResponse
from certificates.services import ocsp as ocsp_service
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.crls import latest_crl, latest_delta_crl
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.publication import generate_crl
from certificates.services.records import load_x509
from certificates.services.revocation import revoke_certificate
from certificates.signers import custody_note, signer_for
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.certificates.softhsm import ISSUING_PIN, ISSUING_TOKEN, ROOT_PIN, ROOT_TOKEN, softhsm  # noqa: F401
from tests.judges import openssl_verify, pem, pkilint_findings, write_pems

SHA1 = hashes.SHA1()  # noqa: S303 - the RFC 6960 CertID hash openssl sends by default, not a signature


@pytest.fixture(params=["vault", "pkcs11"])
def key_backend(request) -> str:
    if request.param == "pkcs11":
        request.getfixturevalue("softhsm")
    return request.param


def _root_secret(backend: str) -> str:
    """What opens the root: its root password, or for a token-held root the token's user PIN."""
    return ROOT_PIN if backend == "pkcs11" else ROOT_PASSWORD


@pytest.fixture
def hierarchy(key_backend, organization, operator):
    token = key_backend == "pkcs11"
    root = create_root_ca(organization=organization, common_name=f"Root on {key_backend}",
                          root_password=_root_secret(key_backend), key_type="ec-p384", path_length=1,
                          actor=operator, key_backend=key_backend, token_label=ROOT_TOKEN if token else None)
    issuing = create_intermediate_ca(parent=root, common_name=f"Issuing on {key_backend}",
                                     root_password=_root_secret(key_backend), key_type="ec-p256", actor=operator,
                                     key_backend=key_backend, token_label=ISSUING_TOKEN if token else None)
    return root, issuing


def _ocsp_request(certificate: x509.Certificate, issuer: x509.Certificate) -> bytes:
    from cryptography.x509 import ocsp

    return ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, SHA1).build().public_bytes(Encoding.DER)


def _openssl_ocsp(directory: Path, name: str, answer: bytes, issuer: x509.Certificate, certificate: x509.Certificate,
                  trusted: list[x509.Certificate]) -> str:
    """`openssl ocsp -respin`: the signature, the responder's authority and the status, as openssl sees them."""
    (directory / f"{name}.der").write_bytes(answer)
    result = subprocess.run(
        ["openssl", "ocsp", "-respin", str(directory / f"{name}.der"),
         "-CAfile", str(write_pems(directory / f"{name}-trust.pem", trusted)),
         "-issuer", str(write_pems(directory / f"{name}-issuer.pem", [issuer])),
         "-cert", str(write_pems(directory / f"{name}-cert.pem", [certificate]))],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Response verify OK" in result.stderr
    return result.stdout


@pytest.mark.django_db
def test_the_ca_rows_say_where_the_keys_are(hierarchy, key_backend):
    root, issuing = hierarchy
    for ca, token in ((root, ROOT_TOKEN), (issuing, ISSUING_TOKEN)):
        assert ca.key_backend == key_backend
        if key_backend == "pkcs11":
            assert (ca.token_label, ca.key_label, len(ca.key_id)) == (token, f"pki-{ca.slug}", 32)
            assert ca.root_key_params == {}
            assert ca.key_directory == ""  # nothing of a token key is in the data directory
            assert custody_note(ca) == (f"the key of CA {ca.slug} is on token {token} (key label pki-{ca.slug}, "
                                        f"id {ca.key_id}) and is not in this backup")
        else:
            assert (ca.token_label, ca.key_id, custody_note(ca)) == ("", "", None)
    assert bool(root.root_key_params) is (key_backend == "vault")
    event = AuditEvent.objects.filter(action="ca.create", target_id=str(root.pk)).get()
    assert event.details["key_backend"] == key_backend


@pytest.mark.django_db
def test_issued_leaves_verify_and_pass_pkilint(hierarchy, operator, tmp_path):
    root, issuing = hierarchy
    root_x509, issuing_x509 = load_x509(root.certificate), load_x509(issuing.certificate)
    from_csr = issue_certificate(issuing, IssuanceRequest(profile="server", csr=make_csr("www.example.com")),
                                 actor=operator)
    server_key = issue_certificate(issuing, IssuanceRequest(profile="server", common_name="api.example.com"),
                                   actor=operator)
    for row in (from_csr, server_key):
        leaf = load_x509(row)
        result = openssl_verify(tmp_path, root_x509, leaf, [issuing_x509], ["-purpose", "sslserver"])
        assert result.returncode == 0, result.stdout + result.stderr
        assert pkilint_findings("lint_pkix_cert", pem(leaf)) == []
    for ca_x509 in (root_x509, issuing_x509):
        assert pkilint_findings("lint_pkix_cert", pem(ca_x509)) == []
    assert server_key.pkcs12_path  # the subscriber's generated key went into its encrypted PKCS#12


@pytest.mark.django_db
def test_revocation_crls_and_delta_crls_verify(hierarchy, operator, tmp_path, django_capture_on_commit_callbacks,
                                               key_backend):
    root, issuing = hierarchy
    root_x509, issuing_x509 = load_x509(root.certificate), load_x509(issuing.certificate)
    row = issue_certificate(issuing, IssuanceRequest(profile="server", csr=make_csr("gone.example.com")),
                            actor=operator)
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(row, reason="keyCompromise", actor=operator)
    full, delta = latest_crl(issuing), latest_delta_crl(issuing)
    assert delta is not None
    assert delta.delta_base_number == full.number
    delta_crl = x509.load_der_x509_crl(bytes(delta.der))
    assert delta_crl.get_revoked_certificate_by_serial_number(int(row.serial, 16)) is not None
    root_crl = generate_crl(root, actor=operator, root_password=_root_secret(key_backend))

    def verify_with(*crls) -> subprocess.CompletedProcess[str]:
        path = tmp_path / "crls.pem"
        path.write_bytes(b"".join(x509.load_der_x509_crl(bytes(c.der)).public_bytes(Encoding.PEM) for c in crls))
        return openssl_verify(tmp_path, root_x509, load_x509(row), [issuing_x509],
                              ["-crl_check_all", "-CRLfile", str(path)])

    before = verify_with(full, root_crl)  # the base predates the revocation (only the delta lists it)
    assert before.returncode == 0, before.stdout + before.stderr
    new_base = generate_crl(issuing, actor=operator)
    after = verify_with(new_base, root_crl)
    assert after.returncode != 0
    assert "certificate revoked" in after.stdout + after.stderr
    for crl, kind in ((full, "CRL"), (delta, "CRL"), (new_base, "CRL"), (root_crl, "ARL")):
        assert x509.load_der_x509_crl(bytes(crl.der)).is_signature_valid(
            (root_x509 if kind == "ARL" else issuing_x509).public_key())
        assert pkilint_findings("lint_crl", bytes(crl.der), "-t", kind, "-p", "BR") == []


@pytest.mark.django_db
@pytest.mark.parametrize("delegated", [True, False], ids=["delegated-responder", "ca-signs"])
def test_ocsp_answers_verify_with_openssl_and_pkilint(hierarchy, operator, tmp_path, settings, delegated,
                                                      django_capture_on_commit_callbacks):
    settings.PKI_OCSP_DELEGATED = delegated
    ocsp_service.forget_responders()
    root, issuing = hierarchy
    root_x509, issuing_x509 = load_x509(root.certificate), load_x509(issuing.certificate)
    row = issue_certificate(issuing, IssuanceRequest(profile="server", csr=make_csr("ocsp.example.com")),
                            actor=operator)
    leaf = load_x509(row)
    good = ocsp_service.answer_ocsp_request(issuing.slug, _ocsp_request(leaf, issuing_x509)).der
    assert ": good" in _openssl_ocsp(tmp_path, "good", good, issuing_x509, leaf, [root_x509, issuing_x509])
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(row, reason="superseded", actor=operator)
    revoked = ocsp_service.answer_ocsp_request(issuing.slug, _ocsp_request(leaf, issuing_x509)).der
    assert ": revoked" in _openssl_ocsp(tmp_path, "revoked", revoked, issuing_x509, leaf, [root_x509, issuing_x509])
    presigned = ocsp_service.answer_ocsp_request(root.slug, _ocsp_request(issuing_x509, root_x509)).der
    assert ": good" in _openssl_ocsp(tmp_path, "root", presigned, root_x509, issuing_x509, [root_x509])
    for answer in (good, revoked, presigned):
        assert pkilint_findings("lint_ocsp_response", answer) == []
    ocsp_service.forget_responders()


@pytest.mark.django_db
def test_revoking_the_intermediate_re_signs_the_roots_crl_and_answers(hierarchy, operator, key_backend,
                                                                      django_capture_on_commit_callbacks):
    root, issuing = hierarchy
    before = latest_crl(root).number
    with django_capture_on_commit_callbacks(execute=True):
        revoke_certificate(issuing.certificate, reason="cessationOfOperation", actor=operator,
                           root_password=_root_secret(key_backend))
    crl = latest_crl(root)
    assert crl.number > before
    listed = x509.load_der_x509_crl(bytes(crl.der))
    assert listed.is_signature_valid(load_x509(root.certificate).public_key())
    assert listed.get_revoked_certificate_by_serial_number(int(issuing.certificate.serial, 16)) is not None
    answer = PresignedOCSPResponse.objects.filter(ca=root, serial=issuing.certificate.serial).first()
    assert answer is not None
    assert answer.status == "revoked"


@pytest.mark.django_db
def test_a_wrong_root_secret_opens_nothing_and_leaves_a_failure_event(hierarchy, operator, key_backend, caplog):
    caplog.set_level(logging.DEBUG)
    root, _ = hierarchy
    wrong = _root_secret(key_backend) + "-wrong"
    with pytest.raises(UnlockRefused) as refused, signer_for(root, root_password=wrong, actor=operator):
        pass
    assert AuditEvent.objects.filter(action="ca.unlock", outcome="failure", target_id=str(root.pk)).count() == 1
    dump = serializers.serialize("json", [*CertificateAuthority.objects.all(), *AuditEvent.objects.all()])
    for secret in (wrong, ROOT_PIN, ISSUING_PIN):
        for haystack in (caplog.text, dump, str(refused.value), repr(refused.value)):
            assert secret not in haystack


@pytest.mark.django_db
def test_the_token_key_is_not_extractable(softhsm, organization, operator):  # noqa: F811
    root = create_root_ca(organization=organization, common_name="Token Root", root_password=ROOT_PIN,
                          key_type="rsa-3072", actor=operator, key_backend="pkcs11", token_label=ROOT_TOKEN)
    token = pkcs11.lib("/usr/lib/softhsm/libsofthsm2.so").get_token(token_label=ROOT_TOKEN)
    with token.open(user_pin=ROOT_PIN) as session:
        private = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=bytes.fromhex(root.key_id))
        assert private[pkcs11.Attribute.EXTRACTABLE] is False
        assert private[pkcs11.Attribute.SENSITIVE] is True
        assert private[pkcs11.Attribute.NEVER_EXTRACTABLE] is True
        assert private[pkcs11.Attribute.LOCAL] is True  # generated on the token, never imported
        with pytest.raises(pkcs11.AttributeSensitive):  # C_GetAttributeValue(CKA_VALUE) is refused
            private[pkcs11.Attribute.PRIVATE_EXPONENT]
        with pytest.raises(pkcs11.PKCS11Error):  # and the token will not wrap it out either
            private[pkcs11.Attribute.VALUE]
    with signer_for(root, root_password=ROOT_PIN, actor=operator) as signer:
        assert not hasattr(signer, "private_bytes")
        assert signer.public_key() == load_x509(root.certificate).public_key()  # RSA on the token signed it
    assert load_x509(root.certificate).verify_directly_issued_by(load_x509(root.certificate)) is None


@pytest.mark.django_db
def test_a_token_refuses_an_ed25519_key_and_a_root_shares_no_token_with_intermediates(softhsm, organization,  # noqa: F811
                                                                                   operator):
    from certificates.errors import InvalidInput, PolicyViolation

    with pytest.raises(InvalidInput) as refused:
        create_root_ca(organization=organization, common_name="Edwards Root", root_password=ROOT_PIN,
                       key_type="ed25519", actor=operator, key_backend="pkcs11", token_label=ROOT_TOKEN)
    assert refused.value.code == "unsupported_key_type"
    root = create_root_ca(organization=organization, common_name="Token Root", root_password=ROOT_PIN,
                          actor=operator, key_backend="pkcs11", token_label=ROOT_TOKEN)
    with pytest.raises(PolicyViolation) as shared:
        create_intermediate_ca(parent=root, common_name="Same token", root_password=ROOT_PIN, actor=operator,
                               key_backend="pkcs11", token_label=ROOT_TOKEN)
    assert shared.value.code == "token_shared"
    assert CertificateAuthority.objects.count() == 1


@pytest.mark.django_db
def test_init_root_ca_makes_the_key_on_the_token_from_a_pin_file(softhsm, organization, tmp_path):  # noqa: F811
    pin_file = tmp_path / "root.pin"
    pin_file.write_text(ROOT_PIN + "\n")
    out = StringIO()
    call_command("init_root_ca", "--organization", organization.slug, "--name", "CLI Token Root",
                 "--key-backend", "pkcs11", "--token-label", ROOT_TOKEN, "--pin-file", str(pin_file), "--json",
                 stdout=out)
    created = json.loads(out.getvalue())
    root = CertificateAuthority.objects.get(pk=created["id"])
    assert (root.key_backend, root.token_label) == ("pkcs11", ROOT_TOKEN)
    assert latest_crl(root) is not None  # signed on the token while the PIN was given
    out = StringIO()
    call_command("create_intermediate_ca", "--root", root.slug, "--name", "CLI Token Issuing",
                 "--key-backend", "pkcs11", "--token-label", ISSUING_TOKEN, "--pin-file", str(pin_file), "--json",
                 stdout=out)
    issuing = CertificateAuthority.objects.get(pk=json.loads(out.getvalue())["id"])
    assert issuing.token_label == ISSUING_TOKEN
    assert latest_crl(issuing) is not None


@pytest.mark.django_db
def test_the_backup_says_which_keys_it_does_not_carry(hierarchy, key_backend):
    from backups.creation import write_backup

    root, issuing = hierarchy
    with tempfile.TemporaryFile() as output:
        report = write_backup(output)
    if key_backend == "pkcs11":
        assert report.keys_not_in_backup == sorted([custody_note(root), custody_note(issuing)])
        assert f"on token {ROOT_TOKEN} " in report.keys_not_in_backup[0] + report.keys_not_in_backup[1]
    else:
        assert report.keys_not_in_backup == []


@pytest.mark.django_db
def test_a_token_key_whose_ca_is_not_recorded_is_removed_from_the_token(softhsm, organization, operator,  # noqa: F811
                                                                         monkeypatch):
    from django.db import IntegrityError

    import certificates.services.authorities as authorities

    def refused(*args, **kwargs):
        raise IntegrityError("the database refused the row")

    monkeypatch.setattr(authorities, "create_certificate_row", refused)
    with pytest.raises(IntegrityError):
        create_root_ca(organization=organization, common_name="Never Recorded", root_password=ROOT_PIN,
                       actor=operator, key_backend="pkcs11", token_label=ROOT_TOKEN)
    assert not CertificateAuthority.objects.exists()
    token = pkcs11.lib("/usr/lib/softhsm/libsofthsm2.so").get_token(token_label=ROOT_TOKEN)
    with token.open(user_pin=ROOT_PIN) as session:
        assert list(session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY})) == []
        assert list(session.get_objects({pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PUBLIC_KEY})) == []
