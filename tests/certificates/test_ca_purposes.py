"""A CA's purposes (its EKU) are chosen at creation and limit what it issues, in every channel.

Verifiers intersect the EKUs along a path (OpenSSL, GnuTLS, NSS, Go): an intermediate with only
serverAuth and clientAuth does not vouch for an S/MIME leaf. These tests hold the service and the
command to that, with `openssl verify -purpose` as the judge; tests/conformance runs them all.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from certificates.errors import InvalidInput, PolicyViolation
from certificates.models import Certificate, CertificateAuthority
from certificates.services.authorities import ca_purposes, create_intermediate_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate, renew_certificate
from certificates.services.records import load_x509
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.judges import openssl_verify

pytestmark = pytest.mark.django_db

EMAIL = IssuanceRequest(profile="email", csr=make_csr("alice@example.com", sans=["EMAIL:alice@example.com"]))


def _eku(ca: CertificateAuthority) -> list:
    return list(load_x509(ca.certificate).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _state() -> tuple[int, int, int]:
    return Certificate.objects.count(), CertificateAuthority.objects.count(), AuditEvent.objects.count()


@pytest.fixture
def tls_ca(root_ca, operator) -> CertificateAuthority:
    """An intermediate as every one was before CAs had purposes: serverAuth and clientAuth only."""
    return create_intermediate_ca(parent=root_ca, common_name="TLS Issuing CA", root_password=ROOT_PASSWORD,
                                  path_length=None, purposes=["serverAuth", "clientAuth"], actor=operator)


def test_default_intermediate_vouches_for_every_builtin_profile(root_ca, intermediate_ca, operator, tmp_path):
    assert _eku(intermediate_ca) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH,
                                     ExtendedKeyUsageOID.EMAIL_PROTECTION]
    assert ca_purposes(intermediate_ca) == ["serverAuth", "clientAuth", "emailProtection"]
    leaf = issue_certificate(intermediate_ca, EMAIL, actor=operator)
    result = openssl_verify(tmp_path, load_x509(root_ca.certificate), load_x509(leaf),
                            [load_x509(intermediate_ca.certificate)], ["-purpose", "smimesign"])
    assert result.returncode == 0, result.stdout + result.stderr
    event = AuditEvent.objects.filter(action="ca.create", target_id=str(intermediate_ca.pk)).get()
    assert event.details["purposes"] == ["serverAuth", "clientAuth", "emailProtection"]


def test_a_tls_only_ca_refuses_the_email_profile_and_changes_nothing(tls_ca, operator):
    assert ca_purposes(tls_ca) == ["serverAuth", "clientAuth"]
    before = _state()
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(tls_ca, EMAIL, actor=operator)
    assert refused.value.code == "issuer_purpose"
    assert refused.value.status == 422
    assert "cannot issue 'email' certificates" in refused.value.message
    assert "create a new intermediate CA with the purpose emailProtection" in refused.value.message
    assert _state() == before
    # The TLS profiles still come from it.
    for profile, name in (("server", "www.example.com"), ("client", "robot.example.com"),
                          ("server-client", "host.example.com")):
        issued = issue_certificate(tls_ca, IssuanceRequest(profile=profile, csr=make_csr(name)), actor=operator)
        assert issued.profile == profile


def test_an_email_only_ca_issues_and_renews_email_and_refuses_tls(root_ca, operator):
    email_ca = create_intermediate_ca(parent=root_ca, common_name="Mail CA", root_password=ROOT_PASSWORD,
                                      purposes=["emailProtection"], actor=operator)
    leaf = issue_certificate(email_ca, EMAIL, actor=operator)
    assert renew_certificate(leaf, actor=operator).predecessor == leaf
    server = IssuanceRequest(profile="server", csr=make_csr("www.example.com"))
    with pytest.raises(PolicyViolation, match="the profile needs serverAuth"):
        issue_certificate(email_ca, server, actor=operator)


def test_a_child_ca_inherits_its_parents_purposes_and_cannot_widen_them(organization, operator):
    from certificates.services.authorities import create_root_ca

    root = create_root_ca(organization=organization, common_name="Deep Root", root_password=ROOT_PASSWORD,
                          path_length=None, actor=operator)
    tls_ca = create_intermediate_ca(parent=root, common_name="TLS Policy CA", root_password=ROOT_PASSWORD,
                                    path_length=1, purposes=["serverAuth", "clientAuth"], actor=operator)
    child = create_intermediate_ca(parent=tls_ca, common_name="TLS Child CA", actor=operator)
    assert ca_purposes(child) == ["serverAuth", "clientAuth"]
    before = _state()
    with pytest.raises(PolicyViolation) as refused:
        create_intermediate_ca(parent=tls_ca, common_name="Mail Child CA", purposes=["emailProtection"],
                               actor=operator)
    assert refused.value.code == "issuer_purpose"
    assert "emailProtection" in refused.value.message
    assert _state() == before
    narrower = create_intermediate_ca(parent=tls_ca, common_name="Server Child CA", purposes="serverAuth",
                                      actor=operator)
    assert _eku(narrower) == [ExtendedKeyUsageOID.SERVER_AUTH]


@pytest.mark.parametrize("purposes", [[], ["codeSigning"], ["serverAuth", "anyExtendedKeyUsage"], "", [7]])
def test_unknown_or_empty_purposes_are_refused_before_the_root_key_is_opened(root_ca, operator, purposes):
    before = _state()
    with pytest.raises(InvalidInput) as refused:
        create_intermediate_ca(parent=root_ca, common_name="Odd CA", root_password="wrong password entirely",
                               purposes=purposes, actor=operator)
    assert refused.value.code == "invalid_purposes"
    assert _state() == before  # not even a failed unlock: the password was never tried


def _call(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_commands_take_purposes_and_refuse_an_uncovered_profile(root_ca, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("TEST_ROOT_PASSWORD", ROOT_PASSWORD)
    created = json.loads(_call("create_intermediate_ca", "--root", root_ca.slug, "--name", "CLI TLS CA",
                               "--purposes", "serverAuth,clientAuth", "--password-env", "TEST_ROOT_PASSWORD",
                               "--json"))
    assert created["purposes"] == ["serverAuth", "clientAuth"]
    assert ca_purposes(CertificateAuthority.objects.get(pk=created["id"])) == ["serverAuth", "clientAuth"]
    csr = tmp_path / "mail.pem"
    csr.write_bytes(EMAIL.csr)
    before = _state()
    with pytest.raises(CommandError, match=r"cannot issue 'email' certificates.*create a new intermediate CA"):
        _call("issue_certificate", "--ca", created["slug"], "--profile", "email", "--csr", str(csr))
    assert _state() == before
    with pytest.raises(CommandError, match="Unknown CA purpose 'timeStamping'"):
        _call("create_intermediate_ca", "--root", root_ca.slug, "--name", "CLI Odd CA", "--purposes",
              "serverAuth,timeStamping", "--password-env", "TEST_ROOT_PASSWORD")
    assert _state() == before
    text = _call("create_intermediate_ca", "--root", root_ca.slug, "--name", "CLI All CA", "--password-env",
                 "TEST_ROOT_PASSWORD")
    assert "for serverAuth, clientAuth, emailProtection." in text


def test_the_demo_intermediate_issues_all_four_profiles(settings):
    from certificates.demo import DEMO_INTERMEDIATE_SLUG, bootstrap_demo

    lines: list[str] = []
    bootstrap_demo(lines.append)
    ca = CertificateAuthority.objects.get(slug=DEMO_INTERMEDIATE_SLUG)
    assert ca_purposes(ca) == ["serverAuth", "clientAuth", "emailProtection"]
    from pki_project.actor import Actor

    operator = Actor.operator("tests")
    for profile, csr in (("server", make_csr("www.example.com")), ("client", make_csr("robot.example.com")),
                         ("server-client", make_csr("host.example.com")), ("email", EMAIL.csr)):
        assert issue_certificate(ca, IssuanceRequest(profile=profile, csr=csr), actor=operator).profile == profile
    again: list[str] = []
    bootstrap_demo(again.append)
    assert not any("does not vouch" in line for line in again)


def test_a_demo_made_before_purposes_is_told_how_to_get_an_email_ca(organization, operator):
    from certificates.demo import DEMO_INTERMEDIATE_SLUG, DEMO_ROOT_SLUG, ensure_demo_cas
    from certificates.services.authorities import create_root_ca

    root = create_root_ca(organization=organization, common_name="Demo Root CA", root_password=ROOT_PASSWORD,
                          slug=DEMO_ROOT_SLUG, path_length=1, actor=operator)
    create_intermediate_ca(parent=root, common_name="Demo Issuing CA", root_password=ROOT_PASSWORD,
                           slug=DEMO_INTERMEDIATE_SLUG, purposes=["serverAuth", "clientAuth"], actor=operator)
    before = _state()
    lines: list[str] = []
    ensure_demo_cas(organization, lines.append)
    assert any("does not vouch for emailProtection" in line and "create_intermediate_ca --root demo-root-ca" in line
               for line in lines), lines
    assert _state() == before
