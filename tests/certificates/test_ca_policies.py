"""A CA's own certificate policies: asserted instead of anyPolicy, inherited by its leaves, never exceeded.

RFC 5280 6.1.3 (d): a relying party keeps a certificate's policy only where every CA above it
asserts that policy or anyPolicy, so a CA with specific policies must not issue others.
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from certificates.errors import InvalidInput, PolicyViolation
from certificates.models import Certificate, CertificateAuthority, CertificateProfile
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.profiles import ca_policy_oids
from certificates.services.records import load_x509
from tests.certificates.conftest import ROOT_PASSWORD
from tests.certificates.csrs import make_csr
from tests.judges import openssl_verify, pkilint_findings
from tests.profile_judging import TEST_POLICY_OID, policy_oids_of

OTHER_TEST_OID = "1.3.6.1.5.5.7.13.2"  # RFC 7229 id-TEST-certPolicyTwo
ANY_POLICY = "2.5.29.32.0"

pytestmark = pytest.mark.django_db


@pytest.fixture
def deep_root(organization, operator) -> CertificateAuthority:
    """A root that allows two levels of intermediates, so a policy CA can have a sub-CA."""
    return create_root_ca(organization=organization, common_name="Deep Root CA", root_password=ROOT_PASSWORD,
                          key_type="ec-p256", days=3650, path_length=2, actor=operator)


@pytest.fixture
def policy_ca(deep_root, operator) -> CertificateAuthority:
    return create_intermediate_ca(parent=deep_root, common_name="Policy CA", root_password=ROOT_PASSWORD,
                                  path_length=1, policy_oids=[TEST_POLICY_OID], actor=operator)


def _server(name: str = "www.example.com", profile: str = "server") -> IssuanceRequest:
    return IssuanceRequest(profile=profile, csr=make_csr(name))


def _counts() -> tuple[int, int]:
    return Certificate.objects.count(), CertificateAuthority.objects.count()


def test_a_default_intermediate_asserts_any_policy(intermediate_ca):
    assert policy_oids_of(load_x509(intermediate_ca.certificate)) == [ANY_POLICY]
    assert ca_policy_oids(intermediate_ca) == ()


def test_the_ca_asserts_its_policies_and_its_leaves_inherit_them(deep_root, policy_ca, operator, tmp_path: Path):
    assert policy_oids_of(load_x509(policy_ca.certificate)) == [TEST_POLICY_OID]
    event = AuditEvent.objects.get(action="ca.create", target_id=str(policy_ca.pk))
    assert event.details["policy_oids"] == [TEST_POLICY_OID]
    leaf = load_x509(issue_certificate(policy_ca, _server(), actor=operator))
    assert policy_oids_of(leaf) == [TEST_POLICY_OID]
    # OpenSSL's policy processing with the policy required: the path is valid for it, not for another.
    root, intermediate = load_x509(deep_root.certificate), load_x509(policy_ca.certificate)
    accepted = openssl_verify(tmp_path, root, leaf, [intermediate], ["-policy", TEST_POLICY_OID, "-explicit_policy"])
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    refused = openssl_verify(tmp_path, root, leaf, [intermediate], ["-policy", OTHER_TEST_OID, "-explicit_policy"])
    assert refused.returncode != 0
    assert pkilint_findings("lint_pkix_cert", leaf.public_bytes(Encoding.PEM)) == []


def test_a_profile_with_another_policy_is_refused_and_nothing_changes(policy_ca, operator):
    CertificateProfile.objects.filter(name="server").update(policy_oids=[OTHER_TEST_OID])
    before = _counts()
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(policy_ca, _server(), actor=operator)
    assert refused.value.code == "policy_not_covered"
    assert OTHER_TEST_OID in refused.value.message
    assert _counts() == before


def test_a_profile_naming_the_cas_policy_is_issued(policy_ca, operator):
    CertificateProfile.objects.filter(name="server").update(policy_oids=[TEST_POLICY_OID])
    assert policy_oids_of(load_x509(issue_certificate(policy_ca, _server(), actor=operator))) == [TEST_POLICY_OID]


def test_a_cabf_profile_is_refused_below_a_ca_with_private_policies(policy_ca, operator):
    CertificateProfile.objects.filter(name="server").update(cabf_policy=True)
    with pytest.raises(PolicyViolation) as refused:
        issue_certificate(policy_ca, _server(), actor=operator)
    assert refused.value.code == "policy_not_covered"


def test_the_installation_policy_yields_to_the_cas(policy_ca, intermediate_ca, operator, settings):
    settings.PKI_POLICY_OID = [OTHER_TEST_OID]
    assert policy_oids_of(load_x509(issue_certificate(policy_ca, _server(), actor=operator))) == [TEST_POLICY_OID]
    assert policy_oids_of(load_x509(issue_certificate(intermediate_ca, _server("b.example.com"), actor=operator))
                          ) == [OTHER_TEST_OID]


def test_a_sub_ca_asserts_only_what_its_parent_does(policy_ca, operator):
    before = _counts()
    with pytest.raises(PolicyViolation) as refused:
        create_intermediate_ca(parent=policy_ca, common_name="Other Policy CA", policy_oids=[OTHER_TEST_OID],
                               actor=operator)
    assert refused.value.code == "policy_not_covered"
    assert _counts() == before
    child = create_intermediate_ca(parent=policy_ca, common_name="Same Policy CA", policy_oids=[TEST_POLICY_OID],
                                   actor=operator)
    assert ca_policy_oids(child) == (TEST_POLICY_OID,)


@pytest.mark.parametrize("oids", [[ANY_POLICY], ["2.23.140.1.2.1"], ["not-an-oid"], "1.3.6.1.5.5.7.13.1", [7]])
def test_bad_policy_oids_are_refused(root_ca, operator, oids):
    before = _counts()
    with pytest.raises(InvalidInput) as refused:
        create_intermediate_ca(parent=root_ca, common_name="Bad Policy CA", root_password=ROOT_PASSWORD,
                               policy_oids=oids, actor=operator)
    assert refused.value.code == "policy_oid_invalid"
    assert _counts() == before


def test_the_api_creates_and_shows_a_ca_with_policies(make_principal_client, organization, root_ca):
    client = make_principal_client("admin", organization)
    body = {"kind": "intermediate", "name": "API Policy CA", "parent": root_ca.slug, "root_password": ROOT_PASSWORD,
            "policy_oids": [TEST_POLICY_OID]}
    response = client.post("/api/v1/cas/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["policy_oids"] == [TEST_POLICY_OID]
    before = _counts()
    bad = client.post("/api/v1/cas/", {**body, "name": "Bad", "policy_oids": [ANY_POLICY]},
                      content_type="application/json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "policy_oid_invalid"
    root = client.post("/api/v1/cas/", {"kind": "root", "name": "R", "root_password": ROOT_PASSWORD * 2,
                                        "policy_oids": [TEST_POLICY_OID]}, content_type="application/json")
    assert root.status_code == 400
    assert _counts() == before


def test_the_command_takes_policy_oids(root_ca, tmp_path: Path):
    password_file = tmp_path / "root.txt"
    password_file.write_text(ROOT_PASSWORD)
    out = StringIO()
    call_command("create_intermediate_ca", "--root", root_ca.slug, "--name", "CLI Policy CA", "--policy-oids",
                 f"{TEST_POLICY_OID}", "--password-file", str(password_file), "--json", stdout=out)
    assert json.loads(out.getvalue())["policy_oids"] == [TEST_POLICY_OID]
    with pytest.raises(CommandError, match="anyPolicy"):
        call_command("create_intermediate_ca", "--root", root_ca.slug, "--name", "CLI Bad CA", "--policy-oids",
                     ANY_POLICY, "--password-file", str(password_file), stdout=StringIO())
