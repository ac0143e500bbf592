"""Certificate profiles at the console and in the issuance service.

The command-line half of "a short-lived, a Must-Staple and a custom profile, each judged"; the Fix
items that live in the profile code (CN from the normalised SAN, no invented client SAN, policy
OIDs); and the page and admin honouring the same rows.
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from certificates.models import Certificate, CertificateProfile
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.profiles import update_profile
from certificates.services.records import load_x509
from tests.certificates.csrs import make_csr
from tests.judges import pkilint_findings
from tests.profile_judging import (
    TEST_POLICY_OID,
    assert_must_staple,
    assert_passes_the_judges,
    policy_oids_of,
    serious_findings,
)

pytestmark = pytest.mark.django_db

DV = "2.23.140.1.2.1"
MAILBOX_STRICT = "2.23.140.1.5.1.3"


def run(*args: str) -> dict:
    out = StringIO()
    call_command(*args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def create_tls_profile(name: str, *options: str) -> dict:
    return run("create_profile", "--name", name, "--eku", "serverAuth", "--san-types", "dns,ip",
               "--rsa-key-usage", "key_encipherment", "--cabf-policy", "--policy-oids", TEST_POLICY_OID, *options)


def issue_from_csr(ca, profile: str, tmp_path: Path, *options: str, csr: bytes | None = None) -> Certificate:
    csr_file = tmp_path / "request.pem"
    csr_file.write_bytes(csr or make_csr("www.example.com"))
    issued = run("issue_certificate", "--ca", ca.slug, "--profile", profile, "--csr", str(csr_file), *options)
    return Certificate.objects.get(pk=issued["id"])


# --- The command line: create, issue, judge ---------------------------------------------------------


def test_a_short_lived_certificate_from_the_command_line(intermediate_ca, tmp_path: Path):
    created = create_tls_profile("cli-short", "--max-hours", "8")
    assert CertificateProfile.objects.get(pk=created["id"]).max_validity_hours == 8
    row = issue_from_csr(intermediate_ca, "cli-short", tmp_path, "--hours", "1")
    assert row.not_after - row.not_before == timedelta(hours=1, seconds=-1)
    leaf = assert_passes_the_judges(row, tmp_path)
    assert policy_oids_of(leaf) == [TEST_POLICY_OID, DV]


def test_a_must_staple_certificate_from_the_command_line(intermediate_ca, tmp_path: Path):
    create_tls_profile("cli-staple", "--max-days", "90", "--must-staple")
    row = issue_from_csr(intermediate_ca, "cli-staple", tmp_path, "--days", "30")
    assert_must_staple(assert_passes_the_judges(row, tmp_path))


def test_a_custom_profile_from_the_command_line(intermediate_ca, tmp_path: Path):
    run("create_profile", "--name", "cli-mtls", "--organization", intermediate_ca.organization.slug,
        "--eku", "serverAuth,clientAuth", "--san-types", "dns", "--required-san-types", "dns",
        "--key-types", "ec-p384,rsa-3072", "--rsa-key-usage", "key_encipherment", "--max-days", "90",
        "--dns-suffixes", "example.com", "--cabf-policy", "--policy-oids", TEST_POLICY_OID)
    assert CertificateProfile.objects.get(name="cli-mtls").organization == intermediate_ca.organization
    issued = run("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "cli-mtls",
                 "--common-name", "Svc.Example.COM", "--key-type", "ec-p384", "--days", "30",
                 "--out", str(tmp_path / "out"))
    leaf = assert_passes_the_judges(Certificate.objects.get(pk=issued["id"]), tmp_path)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "svc.example.com"
    row = issue_from_csr(intermediate_ca, "cli-mtls", tmp_path, csr=make_csr("api.example.com", key_type="rsa-3072"))
    assert_passes_the_judges(row, tmp_path)


def test_a_custom_email_profile_from_the_command_line(intermediate_ca, tmp_path: Path):
    """Pkilint's S/MIME lint is clean. (OpenSSL's `-purpose smimesign` needs the CA EKU fix,
    made on another branch: today's intermediates carry serverAuth and clientAuth only.)"""
    run("create_profile", "--name", "cli-mail", "--eku", "emailProtection", "--san-types", "email",
        "--required-san-types", "email", "--rsa-key-usage", "key_encipherment", "--ec-key-usage", "key_agreement",
        "--max-days", "365", "--cabf-policy", "--policy-oids", TEST_POLICY_OID)
    issued = run("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "cli-mail",
                 "--common-name", "Bob@Example.COM", "--san", "EMAIL:Bob@Example.COM", "--key-type", "ec-p256")
    leaf = load_x509(Certificate.objects.get(pk=issued["id"]))
    findings = pkilint_findings("lint_cabf_smime_cert", leaf.public_bytes(Encoding.PEM), "-t", "MAILBOX-STRICT")
    assert serious_findings(findings) == [], "\n".join(findings)
    assert policy_oids_of(leaf) == [TEST_POLICY_OID, MAILBOX_STRICT]
    email = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == email[0]


def test_list_update_and_delete_profiles(intermediate_ca):
    listing = run("list_profiles")
    assert {"server", "client", "server-client", "email"} <= {row["name"] for row in listing["profiles"]}
    created = create_tls_profile("cli-temp", "--max-hours", "24")
    updated = run("update_profile", "cli-temp", "--max-hours", "12", "--no-enabled")
    assert (updated["max_validity_hours"], updated["enabled"]) == (12, False)
    deleted = run("delete_profile", str(created["id"]))
    assert deleted["deleted"] is True
    assert not CertificateProfile.objects.filter(name="cli-temp").exists()
    actions = list(AuditEvent.objects.filter(target_type="certificate_profile", target_id=str(created["id"]))
                   .order_by("seq").values_list("action", flat=True))
    assert actions == ["profile.create", "profile.change", "profile.delete"]


@pytest.mark.parametrize(("args", "message"), [
    (("delete_profile", "server"), "built-in"),
    (("create_profile", "--name", "server", "--eku", "serverAuth", "--san-types", "dns", "--max-hours", "5"),
     "already exists"),
    (("create_profile", "--name", "x1", "--eku", "serverAuth", "--san-types", "dns", "--max-hours", "5",
      "--policy-oids", DV), "cabf_policy"),
    (("create_profile", "--name", "x2", "--eku", "serverAuth", "--san-types", "dns"), "max_validity_hours"),
    (("update_profile", "nope", "--max-hours", "5"), "No profile"),
    (("update_profile", "server"), "Nothing to change"),
])
def test_profile_commands_refuse_clearly_and_change_nothing(args, message):
    before = list(CertificateProfile.objects.order_by("pk").values())
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command(*args, stdout=StringIO(), stderr=StringIO())
    assert list(CertificateProfile.objects.order_by("pk").values()) == before
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(("options", "message"), [
    (("--hours", "9"), "between 1 and 8 hours"),
    (("--days", "1"), "at most 8 hours"),
    (("--key-type", "ed25519"), "does not allow ed25519"),
])
def test_issuance_at_the_console_refuses_what_the_profile_does_not_allow(intermediate_ca, options, message):
    create_tls_profile("cli-tight", "--max-hours", "8", "--key-types", "ec-p256,ec-p384")
    count = Certificate.objects.count()
    with pytest.raises(CommandError, match=message):
        call_command("issue_certificate", "--ca", intermediate_ca.slug, "--profile", "cli-tight",
                     "--common-name", "www.example.com", *options, stdout=StringIO(), stderr=StringIO())
    assert Certificate.objects.count() == count


# --- Fix items that live in the profile code -----------------------------------------------------------


def test_the_common_name_is_the_normalised_san(intermediate_ca, operator):
    """BR 7.1.4.3: a CSR's `WWW.EXAMPLE.COM` with the SAN lower-cased gives CN `www.example.com`."""
    csr = make_csr("WWW.EXAMPLE.COM", sans=["DNS:WWW.EXAMPLE.COM"])
    row = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=csr), actor=operator)
    leaf = load_x509(row)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == ["www.example.com"]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "www.example.com"
    assert row.common_name == "www.example.com"


def test_an_email_common_name_is_the_normalised_mailbox(intermediate_ca, operator):
    csr = make_csr("alice@EXAMPLE.COM", sans=["EMAIL:alice@EXAMPLE.COM"])
    row = issue_certificate(intermediate_ca, IssuanceRequest(profile="email", csr=csr), actor=operator)
    leaf = load_x509(row)
    mailbox = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.RFC822Name)
    assert mailbox == ["alice@example.com"]
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice@example.com"


@pytest.mark.parametrize("source", ["csr", "server"])
def test_the_client_profile_invents_no_dns_san(intermediate_ca, operator, source):
    if source == "csr":
        request = IssuanceRequest(profile="client", csr=make_csr("robot-1", sans=[]))
    else:
        request = IssuanceRequest(profile="client", common_name="robot-1")
    leaf = load_x509(issue_certificate(intermediate_ca, request, actor=operator))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "robot-1"
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_the_server_profile_still_makes_its_cn_the_san(intermediate_ca, operator):
    row = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", common_name="host.example.com"),
                            actor=operator)
    assert row.sans == ["DNS:host.example.com"]


def test_builtins_assert_no_cabf_policy_oid_by_default(intermediate_ca, operator):
    for profile, csr in (("server", make_csr("www.example.com")),
                         ("email", make_csr("a@example.com", sans=["EMAIL:a@example.com"]))):
        leaf = load_x509(issue_certificate(intermediate_ca, IssuanceRequest(profile=profile, csr=csr), actor=operator))
        assert policy_oids_of(leaf) == [], profile  # no private OID configured, and no CA/B Forum one


def test_the_installation_policy_oid_is_asserted(intermediate_ca, operator, settings):
    settings.PKI_POLICY_OID = ["1.3.6.1.4.1.99999.1.2"]
    leaf = load_x509(issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr()),
                                       actor=operator))
    assert policy_oids_of(leaf) == ["1.3.6.1.4.1.99999.1.2"]


@pytest.mark.parametrize(("key_type", "name", "expected"), [
    ("ec-p256", "www.example.com", [TEST_POLICY_OID, DV]),
    ("ed25519", "www.example.com", [TEST_POLICY_OID]),  # TLS BR 6.1.5: no Ed25519, so no DV claim
    ("ec-p256", "db.internal", [TEST_POLICY_OID]),  # an internal name is never DV
    ("ec-p256", "printer", [TEST_POLICY_OID]),  # a single label neither
])
def test_cabf_policy_only_where_the_brs_allow_it(intermediate_ca, operator, key_type, name, expected):
    update_profile(CertificateProfile.objects.get(name="server"),
                   {"cabf_policy": True, "policy_oids": [TEST_POLICY_OID]},
                   actor=operator)
    csr = make_csr(name, key_type=key_type)
    leaf = load_x509(issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=csr), actor=operator))
    assert policy_oids_of(leaf) == expected
    assert len(set(policy_oids_of(leaf))) == len(policy_oids_of(leaf))  # RFC 5280 4.2.1.4: each OID once


def test_profile_switches_for_pointers(intermediate_ca, operator, tmp_path: Path):
    """A short-lived profile may leave out CRL and OCSP pointers (then at most 7 days)."""
    from certificates.services.profiles import create_profile

    create_profile({"name": "no-pointers", "extended_key_usages": ["clientAuth"], "allowed_san_types": ["dns"],
                    "requires_san": False, "common_name_in_san": False, "max_validity_hours": 24,
                    "crl_distribution_point": False, "ocsp_url": False}, actor=operator)
    leaf = load_x509(issue_certificate(intermediate_ca, IssuanceRequest(profile="no-pointers", common_name="job-7",
                                                                        hours=2), actor=operator))
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    access = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [item.access_method._name for item in access] == ["caIssuers"]


# --- The page and the admin honour the same rows -------------------------------------------------------


def test_the_issue_page_offers_and_honours_custom_profiles(make_principal_client, organization, intermediate_ca,
                                                          other_organization, operator):
    from certificates.services.profiles import create_profile

    create_profile({"name": "page-short", "organization": organization.slug, "extended_key_usages": ["serverAuth"],
                    "allowed_san_types": ["dns"], "max_validity_hours": 6}, actor=operator)
    create_profile({"name": "elsewhere", "organization": other_organization.slug,
                    "extended_key_usages": ["serverAuth"], "allowed_san_types": ["dns"], "max_validity_hours": 6},
                   actor=operator)
    client = make_principal_client("manager", organization)
    page = client.get("/certificates/issue").content.decode()
    assert 'value="page-short"' in page
    assert 'value="elsewhere"' not in page
    base = {"ca": intermediate_ca.pk, "profile": "page-short", "key_source": "csr",
            "csr": make_csr("www.example.com").decode()}
    refused = client.post("/certificates/issue", {**base, "hours": "7"})
    assert refused.status_code == 400
    assert Certificate.objects.filter(profile="page-short").count() == 0
    accepted = client.post("/certificates/issue", {**base, "hours": "2"})
    assert accepted.status_code in (302, 303), accepted.content[:500]
    row = Certificate.objects.get(profile="page-short")
    assert row.not_after - row.not_before == timedelta(hours=2, seconds=-1)


def test_the_admin_changes_a_profile_through_the_service(make_principal_client, organization, operator):
    from certificates.services.profiles import create_profile

    profile = create_profile({"name": "admin-edit", "organization": organization.slug,
                              "extended_key_usages": ["clientAuth"], "allowed_san_types": ["dns"],
                              "max_validity_hours": 24}, actor=operator)
    client = make_principal_client("admin", organization)
    url = f"/admin/certificates/certificateprofile/{profile.pk}/change/"
    assert client.get(url).status_code == 200
    builtin = CertificateProfile.objects.get(name="server")
    assert client.get(f"/admin/certificates/certificateprofile/{builtin.pk}/delete/").status_code == 403
    form = {field: json.dumps(getattr(profile, field)) for field in (
        "extended_key_usages", "key_usage", "rsa_key_usage", "ec_key_usage", "allowed_key_types",
        "allowed_san_types", "required_san_types", "allowed_dns_suffixes", "allowed_ip_networks", "policy_oids")}
    form.update({"description": "from the admin", "max_validity_hours": "12", "enabled": "on", "requires_san": "on",
                 "common_name_in_san": "on", "crl_distribution_point": "on", "ocsp_url": "on"})
    response = client.post(url, form)
    assert response.status_code == 302, response.content[:800]
    profile.refresh_from_db()
    assert (profile.description, profile.max_validity_hours) == ("from the admin", 12)
    assert AuditEvent.objects.filter(action="profile.change", target_id=str(profile.pk)).count() == 1


def test_the_consistency_check_knows_the_profiles(intermediate_ca, operator):
    from certificates.consistency import check_consistency
    from certificates.services.profiles import create_profile, ensure_builtin_profiles

    create_profile({"name": "gone-later", "extended_key_usages": ["clientAuth"], "allowed_san_types": ["dns"],
                    "requires_san": False, "common_name_in_san": False, "max_validity_hours": 24}, actor=operator)
    issue_certificate(intermediate_ca, IssuanceRequest(profile="gone-later", common_name="job-1"), actor=operator)
    assert not {f.code for f in check_consistency(audit=False).errors} & {"builtin_profile_missing"}
    CertificateProfile.objects.filter(name__in=["email", "gone-later"]).delete()  # behind the services' back
    report = check_consistency(audit=False)
    assert {(f.code, f.object) for f in report.errors} >= {("builtin_profile_missing", "profile:email")}
    assert ("profile_missing", "profile:gone-later") in {(f.code, f.object) for f in report.warnings}
    ensure_builtin_profiles()  # what every migrate runs
    assert CertificateProfile.objects.get(name="email").is_builtin


def test_the_builtin_rows_are_the_crypto_definitions():
    """The migration's rows mean exactly what certificates/crypto/profiles.py says (no drift)."""
    from certificates.crypto.profiles import PROFILES
    from certificates.services.profiles import as_crypto_profile

    rows = CertificateProfile.objects.filter(is_builtin=True)
    assert {row.name: as_crypto_profile(row) for row in rows} == PROFILES


@pytest.mark.parametrize("value", ["2.23.140.1.2.1", "not-an-oid", "2.25.329800735698586629295641978511506172918"])
def test_an_unusable_pki_policy_oid_stops_start_up(settings, value):
    from django.core.exceptions import ImproperlyConfigured

    from certificates.services.profiles import check_configured_policy_oids

    settings.PKI_POLICY_OID = [value]
    with pytest.raises(ImproperlyConfigured, match="PKI_POLICY_OID"):
        check_configured_policy_oids()
