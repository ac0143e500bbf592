"""Certificates through the API: issue, detail, renew, revoke, download, PKCS#12 password; roles and tenancy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from django.utils import timezone

from audit.models import AuditEvent
from certificates.models import Certificate
from tests.api.conftest import ROOT_PASSWORD, make_csr, post_json, snapshot

pytestmark = pytest.mark.django_db

CONTRACT_DETAIL_FIELDS = {"id", "serial", "status", "not_before", "not_after", "fingerprint_sha256",
                          "certificate_pem", "chain_pem"}
MORE_DETAIL_FIELDS = {"ca", "ca_slug", "profile", "sans", "revoked_at", "revocation_reason", "invalidity_date",
                      "predecessor", "successor", "has_pkcs12", "kind", "organization"}


def _issue_body(ca, **overrides) -> dict:
    return {"ca": str(ca.pk), "profile": "server", "csr": make_csr("api.example.com").decode(), **overrides}


# --- Issue -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["manager", "admin", "global_admin"])
def test_issue_from_csr(clients, intermediate_ca, caller):
    response = post_json(clients[caller], "/api/v1/certificates/", _issue_body(intermediate_ca))
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) >= CONTRACT_DETAIL_FIELDS | MORE_DETAIL_FIELDS
    leaf = x509.load_pem_x509_certificate(body["certificate_pem"].encode())
    assert format(leaf.serial_number, "x") == body["serial"].lstrip("0")
    assert body["status"] == "valid"
    assert body["ca"] == intermediate_ca.pk
    assert body["profile"] == "server"
    assert body["sans"] == ["DNS:api.example.com"]
    assert body["has_pkcs12"] is False
    chain = x509.load_pem_x509_certificates(body["chain_pem"].encode())
    assert [c.subject for c in chain] == [leaf.subject, leaf.issuer]
    events = AuditEvent.objects.filter(action="certificate.issue", target_id=str(body["id"]))
    assert events.count() == 1


@pytest.mark.parametrize("body", ["csr", "server_key"])
def test_the_issue_answer_is_the_detail_answer(clients, intermediate_ca, body):
    """The answer is built from the row in hand (no re-read, no successor query): it must equal a later GET."""
    request = _issue_body(intermediate_ca) if body == "csr" else {
        "ca": intermediate_ca.slug, "profile": "server", "common_name": "srv.example.com"}
    issued = post_json(clients["manager"], "/api/v1/certificates/", request)
    assert issued.status_code == 201, issued.content
    detail = clients["manager"].get(f"/api/v1/certificates/{issued.json()['id']}/")
    assert detail.status_code == 200
    assert issued.json() == detail.json()


def test_chain_pem_follows_the_issuer_of_each_certificate(clients, intermediate_ca, other_hierarchy, operator):
    """The chain is remembered per issuer certificate: two hierarchies never share one."""
    from certificates.services.issuance import IssuanceRequest, issue_certificate

    ours = issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr("a.example.com")),
                             actor=operator)
    theirs = issue_certificate(other_hierarchy[1], IssuanceRequest(profile="server", csr=make_csr("b.example.com")),
                               actor=operator)
    callers = [(ours, clients["manager"]), (ours, clients["manager"]), (theirs, clients["global_admin"])]
    for certificate, client in callers:
        chain = x509.load_pem_x509_certificates(
            client.get(f"/api/v1/certificates/{certificate.pk}/").json()["chain_pem"].encode())
        assert chain[1].subject.rfc4514_string() == certificate.issuer.certificate.subject
        chain[0].verify_directly_issued_by(chain[1])


def test_issue_by_slug_with_server_key(clients, intermediate_ca):
    response = post_json(clients["manager"], "/api/v1/certificates/", {
        "ca": intermediate_ca.slug, "profile": "server", "common_name": "srv.example.com",
        "sans": ["DNS:srv.example.com", "IP:192.0.2.7"], "key_type": "ec-p384", "days": 30})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["has_pkcs12"] is True
    assert body["key_type"] == "ec-p384"
    assert body["sans"] == ["DNS:srv.example.com", "IP:192.0.2.7"]


def test_user_may_not_issue(clients, intermediate_ca, data_dir):
    before = snapshot(data_dir)
    assert post_json(clients["user"], "/api/v1/certificates/", _issue_body(intermediate_ca)).status_code == 403
    assert post_json(clients["anonymous"], "/api/v1/certificates/", _issue_body(intermediate_ca)).status_code == 401
    assert snapshot(data_dir) == before


@pytest.mark.parametrize("reference", ["pk", "slug"])
def test_issue_from_another_organizations_ca_is_not_found(clients, other_hierarchy, data_dir, reference):
    ca = other_hierarchy[1]
    before = snapshot(data_dir)
    body = {**_issue_body(ca), "ca": str(getattr(ca, reference))}
    for caller in ("manager", "admin"):
        response = post_json(clients[caller], "/api/v1/certificates/", body)
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "not_found"
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(("overrides", "status", "code"), [
    ({"profile": "server", "days": 5000}, 400, "invalid_days"),
    ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----\n"}, 400, None),
    ({"csr": None, "common_name": "x.example.com", "key_type": "ec-p256", "sans": ["FTP:nope"]}, 400, None),
    ({"csr": None, "common_name": "evil.example.net", "sans": ["DNS:*.*.example.net"]}, 400, None),
])
def test_service_refusals_change_nothing(clients, intermediate_ca, data_dir, overrides, status, code):
    body = {key: value for key, value in _issue_body(intermediate_ca, **overrides).items() if value is not None}
    before = snapshot(data_dir)
    response = post_json(clients["manager"], "/api/v1/certificates/", body)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    if code:
        assert error["code"] == code
    assert snapshot(data_dir) == before


def test_root_cannot_issue(clients, root_ca, data_dir):
    before = snapshot(data_dir)
    response = post_json(clients["admin"], "/api/v1/certificates/", _issue_body(root_ca))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "root_cannot_issue"
    assert snapshot(data_dir) == before


# --- List and detail -------------------------------------------------------------------------------


def test_list_is_scoped(clients, issued, other_issued, intermediate_ca):
    for caller in ("user", "manager", "admin"):
        body = clients[caller].get("/api/v1/certificates/").json()
        ids = {row["id"] for row in body["results"]}
        assert issued.pk in ids, caller
        assert other_issued.pk not in ids, caller
        assert "certificate_pem" not in body["results"][0]
    ids = {row["id"] for row in clients["global_admin"].get("/api/v1/certificates/").json()["results"]}
    assert {issued.pk, other_issued.pk} <= ids


def test_detail_has_the_contract_fields(clients, issued, intermediate_ca):
    body = clients["user"].get(f"/api/v1/certificates/{issued.pk}/").json()
    assert set(body) >= CONTRACT_DETAIL_FIELDS | MORE_DETAIL_FIELDS
    assert body["serial"] == issued.serial
    assert body["fingerprint_sha256"] == issued.fingerprint_sha256
    assert body["ca_slug"] == intermediate_ca.slug
    assert body["predecessor"] is None
    assert body["successor"] is None


OBJECT_ROUTES = [("get", "/api/v1/certificates/{id}/"), ("get", "/api/v1/certificates/{id}/download/?format=pem"),
                 ("post", "/api/v1/certificates/{id}/renew/"), ("post", "/api/v1/certificates/{id}/revoke/"),
                 ("post", "/api/v1/certificates/{id}/pkcs12-password/")]


@pytest.mark.parametrize(("method", "route"), OBJECT_ROUTES)
def test_another_organizations_certificate_is_not_found(clients, other_issued, data_dir, method, route):
    url = route.format(id=other_issued.pk)
    before = snapshot(data_dir)
    for caller in ("user", "manager", "admin"):
        client = clients[caller]
        response = client.get(url) if method == "get" else post_json(client, url, {"reason": "keyCompromise"})
        assert response.status_code in (403, 404), (caller, response.status_code)  # 403: the role's route rule
        if caller != "user" or method == "get":
            assert response.status_code == 404
        assert other_issued.serial not in response.content.decode()
    assert snapshot(data_dir) == before


# --- Renew -----------------------------------------------------------------------------------------


def test_renew_links_predecessor_and_successor(clients, issued):
    response = post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/renew/",
                         {"days": 30, "revoke_predecessor": True})
    assert response.status_code == 201, response.content
    renewed = response.json()
    assert renewed["predecessor"] == issued.pk
    assert renewed["id"] != issued.pk
    old = clients["manager"].get(f"/api/v1/certificates/{issued.pk}/").json()
    assert old["successor"] == renewed["id"]
    assert old["status"] == "revoked"
    assert old["revocation_reason"] == "superseded"
    again = post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/renew/", {})
    assert again.status_code in (409, 422)


def test_renew_with_new_csr(clients, issued):
    response = post_json(clients["admin"], f"/api/v1/certificates/{issued.pk}/renew/",
                         {"csr": make_csr("www.example.com").decode()})
    assert response.status_code == 201
    assert response.json()["fingerprint_sha256"] != issued.fingerprint_sha256


def test_user_may_not_renew(clients, issued, data_dir):
    before = snapshot(data_dir)
    assert post_json(clients["user"], f"/api/v1/certificates/{issued.pk}/renew/", {}).status_code == 403
    assert snapshot(data_dir) == before


# --- Revoke ----------------------------------------------------------------------------------------


def test_revoke_end_entity(clients, issued):
    invalid_since = (timezone.now() - timedelta(hours=2)).replace(microsecond=0)
    response = post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/revoke/",
                         {"reason": "keyCompromise", "invalidity_date": invalid_since.isoformat()})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["revoked"] == [issued.pk]
    assert body["certificate"]["status"] == "revoked"
    assert body["certificate"]["revocation_reason"] == "keyCompromise"
    assert body["certificate"]["invalidity_date"].startswith(invalid_since.strftime("%Y-%m-%dT%H:%M:%S"))
    again = post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/revoke/", {"reason": "superseded"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_revoked"


@pytest.mark.parametrize(("body", "code"), [
    ({"reason": "becauseISaidSo"}, "invalid"),
    ({}, "invalid"),
    ({"reason": "keyCompromise", "invalidity_date": "2999-01-01T00:00:00Z"}, "invalid_invalidity_date"),
    ({"reason": "keyCompromise", "invalidity_date": "yesterday"}, "invalid"),
])
def test_revoke_bad_input_changes_nothing(clients, issued, data_dir, body, code):
    before = snapshot(data_dir)
    response = post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/revoke/", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert snapshot(data_dir) == before


def test_ca_certificate_revocation_is_for_admins_with_the_root_password(clients, hierarchy, issued, data_dir):
    _root, inter = hierarchy
    url = f"/api/v1/certificates/{inter.certificate_id}/revoke/"
    before = snapshot(data_dir)
    assert post_json(clients["manager"], url, {"reason": "cessationOfOperation",
                                               "root_password": ROOT_PASSWORD}).status_code == 403
    response = post_json(clients["admin"], url, {"reason": "cessationOfOperation"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "root_password_required"
    response = post_json(clients["admin"], url, {"reason": "cessationOfOperation", "root_password": ROOT_PASSWORD})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ca_has_valid_children"
    assert {k: v for k, v in snapshot(data_dir).items() if k != "files"} == {
        k: v for k, v in before.items() if k != "files"}
    response = post_json(clients["admin"], url, {"reason": "keyCompromise", "root_password": ROOT_PASSWORD,
                                                  "revoke_children": True})
    assert response.status_code == 200, response.content
    assert set(response.json()["revoked"]) == {inter.certificate_id, issued.pk}
    issued.refresh_from_db()
    assert issued.revocation_reason == "cessationOfOperation"  # BR 7.2.2


# --- Downloads and the PKCS#12 password ------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "content_type", "suffix", "count"), [
    ("pem", "application/x-pem-file", ".pem", 1),
    ("der", "application/pkix-cert", ".der", None),
    ("chain", "application/pem-certificate-chain", ".chain.pem", 2),
    ("fullchain", "application/pem-certificate-chain", ".fullchain.pem", 3),
])
def test_public_formats_for_every_role(clients, issued, fmt, content_type, suffix, count):
    for caller in ("user", "manager", "admin"):
        response = clients[caller].get(f"/api/v1/certificates/{issued.pk}/download/?format={fmt}")
        assert response.status_code == 200, (caller, response.content)
        assert response["Content-Type"] == content_type
        assert response["Content-Disposition"] == f'attachment; filename="www.example.com{suffix}"'
        if count is None:
            assert x509.load_der_x509_certificate(response.content).serial_number == int(issued.serial, 16)
        else:
            assert len(x509.load_pem_x509_certificates(response.content)) == count


def test_download_defaults_to_pem_and_is_audited(clients, issued):
    response = clients["user"].get(f"/api/v1/certificates/{issued.pk}/download/")
    assert response["Content-Type"] == "application/x-pem-file"
    assert AuditEvent.objects.filter(action="certificate.download", target_id=str(issued.pk)).count() == 1


def test_unknown_format_is_a_json_400(clients, issued):
    response = clients["user"].get(f"/api/v1/certificates/{issued.pk}/download/?format=exe",
                                   headers={"Accept": "application/x-pem-file"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_format"


def test_p12_is_for_managers_and_admins(clients, server_key_certificate):
    url = f"/api/v1/certificates/{server_key_certificate.pk}/download/?format=p12"
    response = clients["user"].get(url)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not AuditEvent.objects.filter(action="certificate.download").exists()
    response = clients["manager"].get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pkcs12"
    assert response["Content-Disposition"] == 'attachment; filename="device-1.example.com.p12"'
    password = post_json(clients["manager"], f"/api/v1/certificates/{server_key_certificate.pk}/pkcs12-password/")
    assert password.status_code == 200
    assert password["Cache-Control"] == "no-store"
    key, certificate, _chain = pkcs12.load_key_and_certificates(response.content, password.json()["password"].encode())
    assert key is not None
    assert certificate.serial_number == int(server_key_certificate.serial, 16)


def test_password_reveal_is_audited_and_role_bound(clients, server_key_certificate):
    url = f"/api/v1/certificates/{server_key_certificate.pk}/pkcs12-password/"
    assert post_json(clients["user"], url).status_code == 403
    assert post_json(clients["other_manager"], url).status_code == 404
    assert not AuditEvent.objects.filter(action="certificate.pkcs12_password_reveal").exists()
    response = post_json(clients["admin"], url)
    assert response.status_code == 200
    events = AuditEvent.objects.filter(action="certificate.pkcs12_password_reveal",
                                       target_id=str(server_key_certificate.pk))
    assert events.count() == 1
    assert response.json()["password"] not in str(events.get().details)


def test_csr_certificate_has_no_p12(clients, issued):
    response = clients["manager"].get(f"/api/v1/certificates/{issued.pk}/download/?format=p12")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_pkcs12"
    response = post_json(clients["manager"], f"/api/v1/certificates/{issued.pk}/pkcs12-password/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_pkcs12"


def test_nothing_issued_by_a_list_or_detail(clients, issued):
    count = Certificate.objects.count()
    clients["user"].get("/api/v1/certificates/")
    clients["user"].get(f"/api/v1/certificates/{issued.pk}/")
    assert Certificate.objects.count() == count
