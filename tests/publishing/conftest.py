"""Fixtures for revocation publishing: the CA hierarchy of tests/certificates, a leaf, OCSP requests."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from certificates.models import Certificate, CertificateAuthority
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.ocsp import forget_responders
from tests.certificates.conftest import intermediate_ca, operator, organization, root_ca  # noqa: F401
from tests.certificates.csrs import make_csr

SHA1 = hashes.SHA1()  # noqa: S303 - the RFC 6960 CertID hash openssl sends by default, not a signature


@pytest.fixture(autouse=True)
def _fresh_responders():
    """Responder records are memoised per process (keyed by data dir and CA); start each test clean."""
    forget_responders()
    yield
    forget_responders()


@pytest.fixture
def leaf(intermediate_ca: CertificateAuthority, operator) -> Certificate:  # noqa: F811
    return issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("leaf.example.com")),
                             actor=operator)


def ocsp_request_der(certificate: x509.Certificate, issuer: x509.Certificate,
                     algorithm: hashes.HashAlgorithm = SHA1, nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, algorithm)
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)
