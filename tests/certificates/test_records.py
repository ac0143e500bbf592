"""An issued certificate's row says what the signed certificate says.

Issuance fills the row from what it gave the builder (`SignedFrom`) instead of parsing
the certificate back; here every such column is compared with the parse of
the stored DER, for CSRs with odd SANs, keys generated here and renewals.
"""

from __future__ import annotations

import pytest
from cryptography import x509

from certificates.crypto.fingerprints import certificate_fingerprint_sha256
from certificates.crypto.keys import key_type_of
from certificates.crypto.names import common_name_of
from certificates.crypto.serials import serial_to_hex
from certificates.models import Certificate, CertificateAuthority
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.records import subject_alternative_names
from pki_project.actor import Actor
from tests.certificates.csrs import make_csr

pytestmark = pytest.mark.django_db


def _assert_row_matches_its_certificate(row: Certificate) -> None:
    stored = Certificate.objects.get(pk=row.pk)
    certificate = x509.load_der_x509_certificate(bytes(stored.der))
    assert stored.serial == serial_to_hex(certificate.serial_number)
    assert stored.common_name == (common_name_of(certificate.subject) or "")
    assert stored.subject == certificate.subject.rfc4514_string()
    assert stored.sans == subject_alternative_names(certificate)
    assert stored.key_type == key_type_of(certificate.public_key()).value
    assert stored.fingerprint_sha256 == certificate_fingerprint_sha256(certificate)
    assert (stored.not_before, stored.not_after) == (certificate.not_valid_before_utc, certificate.not_valid_after_utc)
    for column in ("serial", "common_name", "subject", "sans", "key_type", "fingerprint_sha256"):
        assert getattr(row, column) == getattr(stored, column), column  # the instance returned is the row stored


@pytest.mark.parametrize(("common_name", "sans", "key_type"), [
    ("www.example.com", ["DNS:www.example.com", "DNS:WWW.Example.com", "DNS:api.example.com", "IP:192.0.2.7",
                         "DNS:api.example.com", "IP:2001:db8::1"], "ec-p256"),
    ("Mixed.Example.COM", ["DNS:Mixed.Example.COM", "DNS:xn--bcher-kva.example"], "rsa-2048"),  # normalised SANs
    ("only-cn.example.com", [], "ed25519"),  # no SAN in the CSR: the common name becomes one
    ("x" * 64, ["DNS:long.example.com"], "ec-p384"),
])
def test_a_certificate_issued_from_a_csr(intermediate_ca: CertificateAuthority, operator: Actor, common_name: str,
                                         sans: list[str] | None, key_type: str) -> None:
    profile = "server" if len(common_name) < 64 else "client"
    request = IssuanceRequest(profile=profile, csr=make_csr(common_name, sans, key_type=key_type))
    _assert_row_matches_its_certificate(issue_certificate(intermediate_ca, request, actor=operator))


def test_a_certificate_with_requested_sans_and_a_key_generated_here(intermediate_ca: CertificateAuthority,
                                                                    operator: Actor) -> None:
    request = IssuanceRequest(profile="server", common_name="gen.example.com", key_type="rsa-2048",
                              sans=["DNS:gen.example.com", "DNS:alt.example.com", "DNS:gen.example.com"])
    _assert_row_matches_its_certificate(issue_certificate(intermediate_ca, request, actor=operator))


def test_a_renewal(intermediate_ca: CertificateAuthority, operator: Actor) -> None:
    first = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("renew.example.com")),
                              actor=operator)
    _assert_row_matches_its_certificate(renew_certificate(first, actor=operator))
