"""GET, POST /api/v1/cas/, GET /api/v1/cas/{id}/ and POST /api/v1/cas/{id}/crl/: roles, tenancy, errors."""

from __future__ import annotations

import pytest
from cryptography import x509

from audit.models import AuditEvent
from certificates.models import CertificateAuthority, CertificateRevocationList
from tests.api.conftest import ROOT_PASSWORD, post_json, snapshot
from tests.certificates.softhsm import softhsm  # noqa: F401

pytestmark = pytest.mark.django_db

CA_FIELDS = {"id", "slug", "name", "kind", "organization", "parent", "certificate", "serial", "fingerprint_sha256",
             "key_type", "not_before", "not_after", "status", "path_length", "permitted_names", "excluded_names",
             "purposes", "policy_oids", "crl_number", "certificate_pem", "created_at", "key_backend", "token_label"}


def test_list_is_scoped_and_paginated(clients, hierarchy, other_hierarchy):
    for caller in ("user", "manager", "admin"):
        body = clients[caller].get("/api/v1/cas/").json()
        assert {"count", "next", "previous", "results"} <= set(body)
        assert {row["id"] for row in body["results"]} == {ca.pk for ca in hierarchy}, caller
        assert set(body["results"][0]) == CA_FIELDS
    everything = clients["global_admin"].get("/api/v1/cas/").json()
    assert {row["id"] for row in everything["results"]} == {ca.pk for ca in (*hierarchy, *other_hierarchy)}


def test_list_filters(clients, hierarchy, other_hierarchy, organization):
    admin = clients["global_admin"]
    roots = admin.get("/api/v1/cas/?kind=root").json()["results"]
    assert {row["kind"] for row in roots} == {"root"}
    assert len(roots) == 2
    mine = admin.get(f"/api/v1/cas/?organization={organization.slug}").json()["results"]
    assert {row["id"] for row in mine} == {ca.pk for ca in hierarchy}
    children = admin.get(f"/api/v1/cas/?parent={hierarchy[0].slug}").json()["results"]
    assert [row["id"] for row in children] == [hierarchy[1].pk]
    assert admin.get("/api/v1/cas/?status=valid").json()["count"] == 4
    assert admin.get("/api/v1/cas/?status=bogus").status_code == 400


def test_detail_and_other_organization_404(clients, hierarchy, other_hierarchy):
    root, inter = hierarchy
    body = clients["user"].get(f"/api/v1/cas/{inter.pk}/").json()
    assert body["parent"] == root.pk
    assert body["kind"] == "intermediate"
    assert body["status"] == "valid"
    assert x509.load_pem_x509_certificate(body["certificate_pem"].encode()).serial_number == int(body["serial"], 16)
    for caller in ("user", "manager", "admin"):
        response = clients[caller].get(f"/api/v1/cas/{other_hierarchy[1].pk}/")
        assert response.status_code == 404
        assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_admin_creates_root_in_own_organization(clients, organization):
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "root", "name": "API Root CA", "key_type": "ec-p256", "days": 3650, "root_password": ROOT_PASSWORD})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["organization"] == organization.pk
    assert body["kind"] == "root"
    assert body["parent"] is None
    assert body["slug"] == "api-root-ca"
    assert body["key_type"] == "ec-p256"
    assert "root_password" not in body
    assert ROOT_PASSWORD not in response.content.decode()
    assert AuditEvent.objects.filter(action="ca.create", target_id=str(body["id"])).count() == 1


def test_global_admin_names_the_organization(clients, organization, other_organization):
    body = {"kind": "root", "name": "Global Root", "root_password": ROOT_PASSWORD}
    response = post_json(clients["global_admin"], "/api/v1/cas/", body)
    assert response.status_code == 400
    assert "organization" in response.json()["error"]["fields"]
    response = post_json(clients["global_admin"], "/api/v1/cas/", {**body, "organization": other_organization.pk})
    assert response.status_code == 201
    assert response.json()["organization"] == other_organization.pk


def test_admin_cannot_create_in_another_organization(clients, other_organization, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "root", "name": "Intruder Root", "organization": other_organization.pk,
        "root_password": ROOT_PASSWORD})
    assert response.status_code == 404
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("caller", ["user", "manager"])
def test_only_admins_create_cas(clients, caller, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients[caller], "/api/v1/cas/", {"kind": "root", "name": "X", "root_password": "p" * 20})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert snapshot(data_dir) == before


def test_create_intermediate_below_root(clients, root_ca):
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "intermediate", "parent": root_ca.slug, "name": "Web Issuing CA", "root_password": ROOT_PASSWORD,
        "permitted_names": ["example.com"], "path_length": 0})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["parent"] == root_ca.pk
    assert body["permitted_names"] == ["example.com"]
    assert body["path_length"] == 0
    assert body["purposes"] == ["serverAuth", "clientAuth", "emailProtection"]  # the default below a root


def test_intermediate_purposes_limit_what_it_issues(clients, root_ca, data_dir):
    """`purposes` becomes the CA's EKU; a profile outside it is a 422 that changes nothing."""
    from tests.api.conftest import make_csr

    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "intermediate", "parent": root_ca.slug, "name": "TLS Only CA", "root_password": ROOT_PASSWORD,
        "purposes": ["clientAuth", "serverAuth"]})
    assert response.status_code == 201, response.content
    ca = response.json()
    assert ca["purposes"] == ["serverAuth", "clientAuth"]
    assert clients["user"].get(f"/api/v1/cas/{ca['id']}/").json()["purposes"] == ["serverAuth", "clientAuth"]
    before = snapshot(data_dir)
    csr = make_csr("bob@example.com", sans=["EMAIL:bob@example.com"]).decode()
    refused = post_json(clients["manager"], "/api/v1/certificates/", {"ca": ca["slug"], "profile": "email", "csr": csr})
    assert refused.status_code == 422, refused.content
    error = refused.json()["error"]
    assert error["code"] == "issuer_purpose"
    assert "create a new intermediate CA with the purpose emailProtection" in error["message"]
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(("purposes", "field"), [
    (["codeSigning"], "purposes"), ([], "purposes"), ("serverAuth", "purposes"),
    (["serverAuth"] * 4, "purposes"),
])
def test_bad_purposes_are_400(clients, root_ca, data_dir, purposes, field):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "intermediate", "parent": root_ca.slug, "name": "Odd CA", "root_password": ROOT_PASSWORD,
        "purposes": purposes})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"]
    assert snapshot(data_dir) == before


def test_a_root_takes_no_purposes(clients, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "root", "name": "Purposeful Root", "root_password": ROOT_PASSWORD, "purposes": ["serverAuth"]})
    assert response.status_code == 400
    assert snapshot(data_dir) == before


def test_wrong_root_password_changes_nothing(clients, root_ca, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "intermediate", "parent": root_ca.pk, "name": "Nope CA", "root_password": "wrong " * 4})
    assert response.status_code == 403
    assert response.json()["error"] == {"code": "unlock_failed", "message": "The CA key could not be unlocked."}
    assert snapshot(data_dir) == before
    assert AuditEvent.objects.filter(action="ca.unlock", outcome="failure").count() == 1


def test_root_password_required_below_root(clients, root_ca):
    response = post_json(clients["admin"], "/api/v1/cas/", {"kind": "intermediate", "parent": root_ca.pk,
                                                             "name": "No Password CA"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "root_password_required"


def test_parent_of_another_organization_is_not_found(clients, other_hierarchy, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/cas/", {
        "kind": "intermediate", "parent": other_hierarchy[0].pk, "name": "Sneaky CA", "root_password": ROOT_PASSWORD})
    assert response.status_code == 404
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "intermediate", "name": "No parent"}, "parent"),
    ({"kind": "root", "name": "Root with parent", "parent": "1"}, "parent"),
    ({"kind": "sideways", "name": "X"}, "kind"),
    ({"kind": "root", "name": "X" * 65}, "name"),
    ({"kind": "root", "name": "X", "key_type": "dsa-1024"}, "key_type"),
    ({"kind": "root", "name": "X", "days": 10**30}, "days"),
    ({"kind": "root", "name": "X", "days": "ten"}, "days"),
    ({"kind": "root", "name": "X", "path_length": -1}, "path_length"),
])
def test_shape_errors_name_the_field(clients, body, field, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["global_admin"], "/api/v1/cas/", body)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert snapshot(data_dir) == before


def test_crl_of_intermediate_by_manager(clients, intermediate_ca):
    response = post_json(clients["manager"], f"/api/v1/cas/{intermediate_ca.pk}/crl/")
    assert response.status_code == 201, response.content
    body = response.json()
    crl = x509.load_pem_x509_crl(body["crl_pem"].encode())
    assert body["ca"] == intermediate_ca.pk
    assert body["number"] >= 1
    assert crl.issuer == x509.load_der_x509_certificate(bytes(intermediate_ca.certificate.der)).subject
    assert body["crl_url"].endswith(f"/pki/crl/{intermediate_ca.slug}.crl")
    # A fresh delta CRL against the new base comes with it (RFC 5280 5.2.4: an older delta names an older base).
    from certificates.services.crls import latest_delta_crl

    delta = latest_delta_crl(intermediate_ca)
    assert delta is not None
    assert delta.delta_base_number == body["number"]


def test_crl_of_root_needs_admin_and_password(clients, root_ca, data_dir):
    before = CertificateRevocationList.objects.filter(ca=root_ca).count()
    response = post_json(clients["manager"], f"/api/v1/cas/{root_ca.pk}/crl/", {"root_password": ROOT_PASSWORD})
    assert response.status_code == 403
    response = post_json(clients["admin"], f"/api/v1/cas/{root_ca.pk}/crl/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "root_password_required"
    response = post_json(clients["admin"], f"/api/v1/cas/{root_ca.pk}/crl/", {"root_password": "bad password!!"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "unlock_failed"
    assert CertificateRevocationList.objects.filter(ca=root_ca).count() == before
    response = post_json(clients["admin"], f"/api/v1/cas/{root_ca.pk}/crl/", {"root_password": ROOT_PASSWORD})
    assert response.status_code == 201
    assert CertificateRevocationList.objects.filter(ca=root_ca).count() == before + 1


def test_crl_roles_and_tenancy(clients, intermediate_ca):
    assert post_json(clients["user"], f"/api/v1/cas/{intermediate_ca.pk}/crl/").status_code == 403
    assert post_json(clients["other_manager"], f"/api/v1/cas/{intermediate_ca.pk}/crl/").status_code == 404
    assert post_json(clients["other_admin"], f"/api/v1/cas/{intermediate_ca.pk}/crl/").status_code == 404
    assert post_json(clients["anonymous"], f"/api/v1/cas/{intermediate_ca.pk}/crl/").status_code == 401


def test_ca_count_unchanged_by_refusals(clients, hierarchy):
    assert CertificateAuthority.objects.count() == 2


def test_organization_by_slug(clients, other_organization):
    response = post_json(clients["global_admin"], "/api/v1/cas/", {
        "kind": "root", "name": "Slug Root", "organization": other_organization.slug, "root_password": ROOT_PASSWORD})
    assert response.status_code == 201
    assert response.json()["organization"] == other_organization.pk
    response = post_json(clients["global_admin"], "/api/v1/cas/", {
        "kind": "root", "name": "Nowhere Root", "organization": "no-such-org", "root_password": ROOT_PASSWORD})
    assert response.status_code == 404


@pytest.mark.usefixtures("softhsm")
def test_admin_creates_a_token_held_root_and_signs_its_crl_with_the_pin(clients, settings):
    from tests.certificates.softhsm import ROOT_PIN, ROOT_TOKEN

    admin = clients["admin"]
    response = post_json(admin, "/api/v1/cas/", {"kind": "root", "name": "Token Root", "key_type": "ec-p256",
                                                 "key_backend": "pkcs11", "token_label": ROOT_TOKEN,
                                                 "root_password": ROOT_PIN})
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["key_backend"], body["token_label"]) == ("pkcs11", ROOT_TOKEN)
    assert ROOT_PIN not in response.content.decode()
    before = CertificateRevocationList.objects.count()
    refused = post_json(admin, f"/api/v1/cas/{body['id']}/crl/", {"root_password": ROOT_PIN + "x"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "unlock_failed"
    assert CertificateRevocationList.objects.count() == before
    signed = post_json(admin, f"/api/v1/cas/{body['id']}/crl/", {"root_password": ROOT_PIN})
    assert signed.status_code in (200, 201), signed.content
    assert CertificateRevocationList.objects.count() == before + 1


@pytest.mark.usefixtures("softhsm")
@pytest.mark.parametrize(("extra", "code"), [({"key_backend": "hsm9000"}, "invalid"),
                                             ({"key_backend": "pkcs11"}, "token_label_required"),
                                             ({"key_backend": "pkcs11", "token_label": "no-such-token"},
                                              "unlock_failed")])
def test_a_bad_token_request_is_refused_and_changes_nothing(clients, settings, extra, code):
    before = snapshot(settings.PKI_DATA_DIR)
    response = post_json(clients["admin"], "/api/v1/cas/", {"kind": "root", "name": "Bad Token Root",
                                                            "root_password": "1234", **extra})
    assert 400 <= response.status_code < 500, response.content
    assert response.json()["error"]["code"] == code
    assert snapshot(settings.PKI_DATA_DIR) == before
