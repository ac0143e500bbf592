"""Certificate profiles through the API: list, create, change, delete, tenancy, and issuance
that honours them — a short-lived, a Must-Staple and a custom profile, each judged by OpenSSL and pkilint."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from audit.models import AuditEvent
from certificates.models import Certificate, CertificateProfile
from tests.api.conftest import make_csr, post_json, snapshot
from tests.profile_judging import TEST_POLICY_OID, assert_must_staple, assert_passes_the_judges, policy_oids_of

pytestmark = pytest.mark.django_db

PROFILES_URL = "/api/v1/profiles/"
CERTIFICATES_URL = "/api/v1/certificates/"


def tls_profile(name: str, **extra) -> dict:
    """A custom TLS server profile that opts in to the CA/B Forum policy OID (so the CA/B lint applies)."""
    return {"name": name, "description": "test", "extended_key_usages": ["serverAuth"],
            "key_usage": ["digital_signature"], "rsa_key_usage": ["key_encipherment"], "max_validity_hours": 24 * 90,
            "allowed_san_types": ["dns", "ip"], "allow_wildcard": False, "cabf_policy": True,
            "policy_oids": [TEST_POLICY_OID], **extra}


def create(client, body: dict):
    return post_json(client, PROFILES_URL, body)


def patch(client, profile_id: int, body: dict):
    return client.patch(f"{PROFILES_URL}{profile_id}/", json.dumps(body), content_type="application/json")


def issue(client, ca, profile: str, **extra):
    body = {"ca": ca.slug, "profile": profile, **extra}
    body.setdefault("csr", make_csr("www.example.com").decode())
    return post_json(client, CERTIFICATES_URL, body)


def names(response) -> set[str]:
    body = response.json()
    return {row["name"] for row in body.get("results", body)}


def error_code(response) -> str:
    return response.json()["error"]["code"]


# --- Issuance that honours a profile, judged ---------------------------------------------------------


def test_a_short_lived_certificate_of_one_hour(clients, intermediate_ca, tmp_path: Path):
    created = create(clients["manager"], tls_profile("short-lived", max_validity_hours=24))
    assert created.status_code == 201, created.content
    response = issue(clients["manager"], intermediate_ca, "short-lived", hours=1)
    assert response.status_code == 201, response.content
    row = Certificate.objects.get(pk=response.json()["id"])
    assert row.profile == "short-lived"
    # RFC 5280 4.1.2.5: inclusive, so one hour is notAfter = notBefore + 1 h - 1 s.
    assert row.not_after - row.not_before == timedelta(hours=1) - timedelta(seconds=1)
    leaf = assert_passes_the_judges(row, tmp_path)
    assert policy_oids_of(leaf) == [TEST_POLICY_OID, "2.23.140.1.2.1"]


def test_a_must_staple_certificate(clients, intermediate_ca, tmp_path: Path):
    created = create(clients["admin"], tls_profile("web-staple", must_staple=True))
    assert created.status_code == 201, created.content
    assert created.json()["must_staple"] is True
    response = issue(clients["admin"], intermediate_ca, "web-staple", days=30)
    assert response.status_code == 201, response.content
    leaf = assert_passes_the_judges(Certificate.objects.get(pk=response.json()["id"]), tmp_path)
    assert_must_staple(leaf)


def test_a_custom_profile_with_its_own_rules(clients, intermediate_ca, tmp_path: Path):
    body = tls_profile("partner-mtls", extended_key_usages=["serverAuth", "clientAuth"],
                       allowed_key_types=["ec-p256", "rsa-2048"], allowed_dns_suffixes=["example.com"],
                       required_san_types=["dns"], crl_distribution_point=True, ocsp_url=True)
    created = create(clients["manager"], body)
    assert created.status_code == 201, created.content
    assert created.json()["organization"] == intermediate_ca.organization.slug
    response = issue(clients["manager"], intermediate_ca, "partner-mtls",
                     csr=make_csr("api.example.com", key_type="rsa-2048").decode())
    assert response.status_code == 201, response.content
    assert_passes_the_judges(Certificate.objects.get(pk=response.json()["id"]), tmp_path)
    generated = issue(clients["manager"], intermediate_ca, "partner-mtls", csr="", common_name="svc.example.com",
                      key_type="ec-p256")
    assert generated.status_code == 201, generated.content
    assert_passes_the_judges(Certificate.objects.get(pk=generated.json()["id"]), tmp_path)


def test_the_four_builtins_keep_working_by_name(clients, intermediate_ca):
    csrs = {"server": make_csr("www.example.com"), "server-client": make_csr("app.example.com"),
            "client": make_csr("robot-1", sans=[]),
            "email": make_csr("alice@example.com", sans=["EMAIL:alice@example.com"])}
    for name, csr in csrs.items():
        response = issue(clients["manager"], intermediate_ca, name, csr=csr.decode())
        assert response.status_code == 201, (name, response.content)
        assert Certificate.objects.get(pk=response.json()["id"]).profile == name


# --- Refusals: a clear 4xx, nothing changed ------------------------------------------------------------


@pytest.fixture
def strict_profile(clients) -> CertificateProfile:
    body = tls_profile("strict", allowed_key_types=["ec-p256"], max_validity_hours=48,
                       allowed_dns_suffixes=["example.com"], allowed_ip_networks=["192.0.2.0/24"])
    assert create(clients["admin"], body).status_code == 201
    return CertificateProfile.objects.get(name="strict")


@pytest.mark.parametrize(("extra", "status", "code"), [
    ({"csr": make_csr("www.example.com", key_type="rsa-2048").decode()}, 400, "key_type_not_allowed"),
    ({"csr": "", "common_name": "www.example.com", "key_type": "ed25519"}, 400, "key_type_not_allowed"),
    ({"hours": 49}, 400, "invalid_hours"),
    ({"days": 3}, 400, "invalid_days"),
    ({"days": 1, "hours": 1}, 400, "invalid_validity"),
    ({"csr": make_csr("www.example.org").decode()}, 400, "san_not_allowed"),
    ({"csr": make_csr("www.example.com", sans=["DNS:www.example.com", "IP:198.51.100.1"]).decode()},
     400, "san_not_allowed"),
])
def test_issuance_outside_the_profile_is_refused_and_changes_nothing(clients, intermediate_ca, strict_profile,
                                                                    data_dir, extra, status, code):
    before = snapshot(data_dir)
    response = issue(clients["manager"], intermediate_ca, "strict", **extra)
    assert response.status_code == status, response.content
    assert error_code(response) == code
    assert snapshot(data_dir) == before


def test_unknown_disabled_and_foreign_profiles_are_refused(clients, intermediate_ca, other_hierarchy, data_dir):
    assert create(clients["other_admin"], tls_profile("theirs")).status_code == 201
    assert create(clients["admin"], tls_profile("paused", enabled=False)).status_code == 201
    before = snapshot(data_dir)
    for name, status, code in (("nope", 400, "unknown_profile"), ("theirs", 400, "unknown_profile"),
                               ("paused", 422, "profile_disabled")):
        response = issue(clients["manager"], intermediate_ca, name)
        assert (response.status_code, error_code(response)) == (status, code), name
    assert snapshot(data_dir) == before


def test_a_required_san_type_is_enforced(clients, intermediate_ca, data_dir):
    body = tls_profile("needs-ip", required_san_types=["ip"])
    assert create(clients["admin"], body).status_code == 201
    before = snapshot(data_dir)
    response = issue(clients["manager"], intermediate_ca, "needs-ip")
    assert (response.status_code, error_code(response)) == (400, "san_not_allowed")
    assert snapshot(data_dir) == before
    ok = issue(clients["manager"], intermediate_ca, "needs-ip",
               csr=make_csr("www.example.com", sans=["DNS:www.example.com", "IP:192.0.2.8"]).decode())
    assert ok.status_code == 201, ok.content


@pytest.mark.parametrize(("body", "code"), [
    ({"policy_oids": ["2.23.140.1.2.1"]}, "invalid_profile"),  # CA/B Forum OIDs only through cabf_policy
    ({"policy_oids": ["2.5.29.32.0"]}, "invalid_profile"),  # anyPolicy
    ({"policy_oids": ["2.25.329800735698586629295641978511506172918"]}, "invalid_profile"),  # arc above 32 bits
    ({"policy_oids": ["1.2.3", "1.2.3"]}, "invalid_profile"),  # RFC 5280 4.2.1.4: each policy once
    ({"extended_key_usages": ["anyThing"]}, "invalid_profile"),
    ({"key_usage": ["key_cert_sign"]}, "invalid_profile"),
    ({"allowed_key_types": ["dsa-1024"]}, "invalid_profile"),
    ({"allowed_ip_networks": ["10.0.0.1/8"]}, "invalid_profile"),
    ({"allowed_dns_suffixes": ["not a domain"]}, "invalid_profile"),
    ({"must_staple": True, "ocsp_url": False}, "invalid_profile"),
    ({"required_san_types": ["email"]}, "invalid_profile"),
    ({"name": "Has Spaces"}, "invalid_profile"),
])
def test_an_invalid_profile_is_refused_and_changes_nothing(clients, data_dir, body, code):
    before = (CertificateProfile.objects.count(), snapshot(data_dir))
    response = create(clients["admin"], {**tls_profile("bad"), **body})
    assert (response.status_code, error_code(response)) == (400, code), response.content
    assert (CertificateProfile.objects.count(), snapshot(data_dir)) == before


def test_shape_errors_are_400(clients):
    for body in ({"name": "x"}, {"name": "x", "max_validity_hours": 0}, {"name": "x", "max_validity_hours": "a"},
                 {"name": "x", "max_validity_hours": 5, "policy_oids": "1.2.3"}):
        response = create(clients["admin"], body)
        assert response.status_code == 400, body
    assert not CertificateProfile.objects.filter(name="x").exists()


def test_names_are_unique_and_stay(clients):
    assert create(clients["admin"], tls_profile("unique")).status_code == 201
    duplicate = create(clients["other_admin"], tls_profile("unique"))
    assert (duplicate.status_code, error_code(duplicate)) == (409, "duplicate")
    profile = CertificateProfile.objects.get(name="unique")
    renamed = patch(clients["admin"], profile.pk, {"name": "renamed"})
    assert renamed.status_code == 400
    assert CertificateProfile.objects.get(pk=profile.pk).name == "unique"


# --- Built-ins, tenancy, roles, audit ------------------------------------------------------------------


def test_builtins_are_rows_that_cannot_be_deleted(clients):
    listing = clients["user"].get(PROFILES_URL)
    assert listing.status_code == 200
    assert {"server", "client", "server-client", "email"} <= names(listing)
    server = CertificateProfile.objects.get(name="server")
    assert server.is_builtin
    assert server.organization_id is None
    assert not server.cabf_policy
    response = clients["global_admin"].delete(f"{PROFILES_URL}{server.pk}/")
    assert (response.status_code, error_code(response)) == (422, "builtin_profile")
    assert CertificateProfile.objects.filter(pk=server.pk).exists()


def test_only_a_global_admin_edits_a_builtin(clients):
    server = CertificateProfile.objects.get(name="server")
    for role in ("admin", "manager"):
        response = patch(clients[role], server.pk, {"max_validity_hours": 100})
        assert response.status_code == 403, role
    assert CertificateProfile.objects.get(pk=server.pk).max_validity_hours == 398 * 24
    changed = patch(clients["global_admin"], server.pk, {"max_validity_hours": 100 * 24})
    assert changed.status_code == 200, changed.content
    assert changed.json()["max_validity_hours"] == 100 * 24


def test_an_organization_sees_global_profiles_and_its_own_only(clients, other_organization):
    assert create(clients["manager"], tls_profile("ours")).status_code == 201
    assert create(clients["other_manager"], tls_profile("theirs")).status_code == 201
    ours = CertificateProfile.objects.get(name="ours")
    assert "theirs" not in names(clients["manager"].get(PROFILES_URL))
    assert "ours" in names(clients["user"].get(PROFILES_URL))
    assert {"ours", "theirs"} <= names(clients["global_admin"].get(PROFILES_URL))
    for method in ("get", "delete"):
        assert getattr(clients["other_admin"], method)(f"{PROFILES_URL}{ours.pk}/").status_code == 404
    assert patch(clients["other_admin"], ours.pk, {"description": "hijacked"}).status_code == 404
    assert CertificateProfile.objects.get(pk=ours.pk).description == "test"
    # A member cannot create a profile for another organization, nor a global one.
    foreign = create(clients["manager"], {**tls_profile("sneaky"), "organization": other_organization.slug})
    assert foreign.status_code == 404
    assert not CertificateProfile.objects.filter(name="sneaky").exists()


def test_a_user_may_list_but_not_write(clients):
    before = CertificateProfile.objects.count()
    assert create(clients["user"], tls_profile("mine")).status_code == 403
    server = CertificateProfile.objects.get(name="server")
    assert patch(clients["user"], server.pk, {"description": "x"}).status_code == 403
    assert clients["anonymous"].get(PROFILES_URL).status_code in (401, 403)
    assert CertificateProfile.objects.count() == before


def test_create_change_delete_are_audited(clients, intermediate_ca):
    created = create(clients["manager"], tls_profile("audited"))
    profile_id = created.json()["id"]
    assert patch(clients["manager"], profile_id, {"description": "changed", "max_validity_hours": 48}).status_code \
        == 200
    assert clients["manager"].delete(f"{PROFILES_URL}{profile_id}/").status_code == 204
    events = list(AuditEvent.objects.filter(target_type="certificate_profile", target_id=str(profile_id))
                  .order_by("seq"))
    assert [event.action for event in events] == ["profile.create", "profile.change", "profile.delete"]
    assert events[1].details["fields"] == ["description", "max_validity_hours"]
    assert all(event.organization_id == intermediate_ca.organization_id for event in events)


def test_a_profile_in_use_is_not_deleted(clients, intermediate_ca):
    created = create(clients["manager"], tls_profile("used"))
    assert issue(clients["manager"], intermediate_ca, "used").status_code == 201
    response = clients["manager"].delete(f"{PROFILES_URL}{created.json()['id']}/")
    assert (response.status_code, error_code(response)) == (409, "profile_in_use")
    assert CertificateProfile.objects.filter(name="used").exists()


def test_renewal_keeps_the_profile_and_accepts_hours(clients, intermediate_ca):
    assert create(clients["manager"], tls_profile("renewable", max_validity_hours=12)).status_code == 201
    issued = issue(clients["manager"], intermediate_ca, "renewable", hours=2)
    renewed = post_json(clients["manager"], f"{CERTIFICATES_URL}{issued.json()['id']}/renew/", {"hours": 3})
    assert renewed.status_code == 201, renewed.content
    row = Certificate.objects.get(pk=renewed.json()["id"])
    assert (row.profile, row.not_after - row.not_before) == ("renewable", timedelta(hours=3, seconds=-1))
