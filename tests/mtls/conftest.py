"""Fixtures for client-certificate sign-in in-process: a CA per organization, bound client certificates,
and a client that sends the proxy's headers from a trusted (or any) address."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.test import Client

from certificates.models import Certificate, CertificateAuthority
from certificates.services.issuance import IssuanceRequest, issue_certificate
from organizations.client_certificates import bind_client_certificate
from pki_project.actor import Actor
from pki_project.config import mtls_proxy_config
from tests.api.conftest import _hierarchy
from tests.certificates.csrs import make_csr
from tests.factories import OrganizationFactory, UserFactory

PROXY = "127.0.0.2"
SECRET = "in-process-proxy-secret-0123456789abcdefghij"


@pytest.fixture(autouse=True)
def mtls_settings(settings):
    settings.PKI_MTLS = mtls_proxy_config({"PKI_MTLS_PROXY_SECRET": SECRET, "PKI_MTLS_TRUSTED_PROXIES": PROXY})
    return settings


@dataclass
class World:
    organization: object
    other_organization: object
    root: CertificateAuthority
    issuing: CertificateAuthority
    other_issuing: CertificateAuthority
    operator: Actor

    def issue(self, profile: str = "client", ca: CertificateAuthority | None = None, name: str = "robot",
              **extra) -> Certificate:
        sans = [] if profile == "client" else [f"DNS:{name}.example.com"]
        return issue_certificate(ca or self.issuing, IssuanceRequest(
            profile=profile, csr=make_csr(name if profile == "client" else f"{name}.example.com", sans=sans),
            **extra), actor=self.operator)

    def member(self, role: str = "user", organization=None):
        return UserFactory(role=role, organization=organization or self.organization)

    def bound(self, user=None, **issue) -> tuple[Certificate, object]:
        user = user or self.member()
        certificate = self.issue(**issue)
        bind_client_certificate(user, certificate, actor=self.operator)
        return certificate, user


@pytest.fixture
def world(db) -> World:
    operator = Actor.operator("tests")
    organization, other = OrganizationFactory(), OrganizationFactory()
    root, issuing = _hierarchy(organization, operator, "Main")
    _other_root, other_issuing = _hierarchy(other, operator, "Other")
    return World(organization, other, root, issuing, other_issuing, operator)


def proxy_headers(certificate: Certificate | x509.Certificate | None, *, verify: str = "SUCCESS",
                  secret: str | None = SECRET) -> dict[str, str]:
    """What nginx sends: the escaped PEM, its verdict and the shared secret."""
    headers = {"X-PKI-Client-Verify": verify}
    if certificate is not None:
        parsed = (certificate if isinstance(certificate, x509.Certificate)
                  else x509.load_der_x509_certificate(bytes(certificate.der)))
        headers["X-PKI-Client-Cert"] = quote(parsed.public_bytes(Encoding.PEM).decode(), safe="")
    if secret is not None:
        headers["X-PKI-Proxy-Secret"] = secret
    return headers


def mtls_post(certificate, *, source: str = PROXY, client: Client | None = None, **header_options):
    client = client or Client()
    return client.post("/auth/mtls", b"", content_type="application/json", REMOTE_ADDR=source,
                       headers=proxy_headers(certificate, **header_options))
