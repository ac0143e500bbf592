"""EST re-enrollment (RFC 7030 4.2.2) authenticated by the client certificate the trusted mTLS proxy vouched for.

No authenticator is configured: EST asks `organizations.client_certificates`, so the same proxy
checks (address, secret, this PKI's valid certificate) hold for EST as for the mTLS sign-in.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from django.test import Client

from audit.models import AuditEvent
from certificates.models import Certificate
from certificates.services.revocation import revoke_certificate
from tests.certificates.csrs import ec_key, make_csr
from tests.enrollment.test_est import body_of, certificates_in, est
from tests.mtls.conftest import PROXY, proxy_headers

pytestmark = pytest.mark.django_db


def _reenroll(world, certificate, name: str, *, source: str = PROXY, **header_options):
    return Client().post(est(world.issuing, "simplereenroll"), body_of(make_csr(name, key=ec_key())),
                         content_type="application/pkcs10", REMOTE_ADDR=source,
                         headers=proxy_headers(certificate, **header_options))


def test_the_proxys_certificate_renews_itself(world, settings):
    settings.PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR = ""
    current = world.issue(profile="server-client", name="device-7")
    renewed = _reenroll(world, current, "device-7.example.com")
    assert renewed.status_code == 200, renewed.content
    [leaf] = certificates_in(renewed)
    row = Certificate.objects.get(fingerprint_sha256=leaf.fingerprint(hashes.SHA256()).hex())
    assert row.predecessor_id == current.pk
    assert AuditEvent.objects.filter(action="certificate.renew", target_serial=row.serial).count() == 1


@pytest.mark.parametrize("forgery", ["untrusted_address", "no_secret", "wrong_secret"])
def test_forged_proxy_headers_renew_nothing(world, settings, forgery):
    settings.PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR = ""
    current = world.issue(profile="server-client", name="device-8")
    before = Certificate.objects.count()
    options = {"untrusted_address": {"source": "192.0.2.9"}, "no_secret": {"secret": None},
               "wrong_secret": {"secret": "x" * 44}}[forgery]
    refused = _reenroll(world, current, "device-8.example.com", **options)
    assert refused.status_code == 401  # no certificate vouched for: the Basic challenge, as without one
    assert refused["WWW-Authenticate"].startswith("Basic")
    assert Certificate.objects.count() == before
    assert AuditEvent.objects.filter(action="auth.login", outcome="failure", details__via="est").exists()


def test_a_revoked_certificate_renews_nothing(world, settings):
    settings.PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR = ""
    current = world.issue(profile="server-client", name="device-9")
    revoke_certificate(current, reason="keyCompromise", actor=world.operator)
    before = Certificate.objects.count()
    assert _reenroll(world, current, "device-9.example.com").status_code == 401
    assert Certificate.objects.count() == before
