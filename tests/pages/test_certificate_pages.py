"""Issuance page and a certificate's page: each role, another organization, bad input, CSRF."""

from __future__ import annotations

import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from certificates.models import Certificate, CertificateRevocationList
from tests.certificates.csrs import make_csr
from tests.pages.conftest import ROOT_PASSWORD

pytestmark = pytest.mark.django_db


def _issue(client: Client, ca, **fields):
    data = {"ca": ca.pk, "profile": "server", "key_source": "csr", "csr": "", "common_name": "", "sans": "",
            "key_type": "ec-p256", "days": ""}
    data.update(fields)
    return client.post("/certificates/issue", data)


# --- Issuance ------------------------------------------------------------------------------


def test_issue_form_has_labels_and_csrf(clients, hierarchy):
    page = clients["manager"].get("/certificates/issue").content.decode()
    for label in ("Issuing CA", "Profile", "CSR (PEM)", "Common name", "Subject alternative names"):
        assert label in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert hierarchy.intermediate.name in page
    assert f'value="{hierarchy.root.pk}"' not in page  # roots do not issue end-entity certificates


def test_issue_from_a_pasted_csr(clients, hierarchy):
    response = _issue(clients["manager"], hierarchy.intermediate, csr=make_csr("api.example.com").decode())
    assert response.status_code == 302
    certificate = Certificate.objects.get(common_name="api.example.com")
    assert response["Location"] == f"/certificates/{certificate.pk}"
    assert certificate.key_source == "csr"
    assert not certificate.pkcs12_path
    page = clients["manager"].get(response["Location"]).content.decode()
    assert "Certificate for “api.example.com” issued" in page


def test_issue_from_an_uploaded_der_csr(clients, hierarchy):
    der = x509.load_pem_x509_csr(make_csr("upload.example.com")).public_bytes(Encoding.DER)
    response = _issue(clients["admin"], hierarchy.intermediate,
                      csr_file=SimpleUploadedFile("request.der", der, "application/pkcs10"))
    assert response.status_code == 302
    assert Certificate.objects.filter(common_name="upload.example.com").exists()


def test_issue_with_a_server_key_then_reveal_and_download_the_pkcs12(clients, hierarchy):
    client = clients["manager"]
    response = _issue(client, hierarchy.intermediate, key_source="server", common_name="vpn.example.com",
                      sans="DNS:vpn.example.com\nIP:192.0.2.7", key_type="ec-p256")
    assert response.status_code == 302, response.content
    certificate = Certificate.objects.get(common_name="vpn.example.com")
    assert certificate.pkcs12_path
    assert certificate.sans == ["DNS:vpn.example.com", "IP:192.0.2.7"]
    page = client.get(f"/certificates/{certificate.pk}").content.decode()
    assert "Reveal the PKCS#12 password" in page
    assert "Key and certificate (PKCS#12)" in page

    revealed = client.post(f"/certificates/{certificate.pk}/pkcs12-password")
    assert revealed.status_code == 200
    password = re.search(r'<code id="pkcs12-password" class="secret">([^<]+)</code>', revealed.content.decode())
    assert password, "the password is shown"
    bundle = client.get(f"/certificates/{certificate.pk}/download?format=p12")
    assert bundle["Content-Type"] == "application/x-pkcs12"
    key, cert, _chain = pkcs12.load_key_and_certificates(bundle.content, password.group(1).encode())
    assert key is not None
    assert cert.serial_number == int(certificate.serial, 16)
    assert AuditEvent.objects.filter(action="certificate.pkcs12_password_reveal",
                                     target_id=str(certificate.pk)).count() == 1


@pytest.mark.parametrize(("fields", "message"), [
    ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----"},
     "not a valid PEM or DER certificate signing request"),
    ({"csr": ""}, "Paste a CSR or upload a CSR file"),
    ({"key_source": "server", "common_name": ""}, "Give a common name and/or subject alternative names."),
    ({"key_source": "server", "common_name": "x.example.com", "sans": "FTP:nope"}, "SAN"),
    ({"key_source": "server", "common_name": "x.example.com", "days": "5000"}, "Ensure this value"),
    ({"profile": "nonsense", "key_source": "server", "common_name": "x.example.com"}, "Select a valid choice"),
])
def test_bad_issuance_input_is_explained_and_issues_nothing(clients, hierarchy, fields, message):
    before = Certificate.objects.count()
    response = _issue(clients["manager"], hierarchy.intermediate, **fields)
    assert response.status_code == 400
    assert message.lower() in response.content.decode().lower()
    assert Certificate.objects.count() == before


def test_issuing_from_another_organizations_ca_is_refused(clients, hierarchy, other_hierarchy):
    before = Certificate.objects.count()
    response = _issue(clients["manager"], other_hierarchy.intermediate, key_source="server",
                      common_name="x.example.com")
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert Certificate.objects.count() == before


def test_users_cannot_issue(clients, hierarchy):
    before = Certificate.objects.count()
    assert clients["user"].get("/certificates/issue").status_code == 403
    response = _issue(clients["user"], hierarchy.intermediate, key_source="server", common_name="x.example.com")
    assert response.status_code == 403
    assert Certificate.objects.count() == before


# --- A certificate's page -------------------------------------------------------------------


def test_certificate_page_explains_the_certificate(clients, hierarchy, leaf):
    page = clients["user"].get(f"/certificates/{leaf.pk}").content.decode()
    assert "This is an end-entity certificate" in page
    assert "DNS:www.example.com" in page
    assert leaf.serial in page
    assert hierarchy.intermediate.name in page
    assert hierarchy.root.name in page
    assert "TLS server" in page  # the extended key usage in plain words
    for fmt in ("pem", "der", "chain", "fullchain"):
        assert f"download?format={fmt}" in page


def test_a_user_sees_no_revoke_reveal_or_renew(clients, leaf):
    page = clients["user"].get(f"/certificates/{leaf.pk}").content.decode()
    assert "Revoke this certificate" not in page
    assert "Reveal the PKCS#12 password" not in page
    assert "Renew" not in page
    manager_page = clients["manager"].get(f"/certificates/{leaf.pk}").content.decode()
    assert "Revoke this certificate" in manager_page
    assert "Reveal the PKCS#12 password" in manager_page


def test_the_server_refuses_a_user_regardless(clients, leaf):
    client = clients["user"]
    assert client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "keyCompromise"}).status_code == 403
    assert client.post(f"/certificates/{leaf.pk}/pkcs12-password").status_code == 403
    assert client.post(f"/certificates/{leaf.pk}/renew").status_code == 403
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    assert not Certificate.objects.filter(predecessor=leaf).exists()
    assert not AuditEvent.objects.filter(action="certificate.pkcs12_password_reveal").exists()


def test_another_organizations_certificate_answers_404(clients, leaf):
    client = clients["other_manager"]
    assert client.get(f"/certificates/{leaf.pk}").status_code == 404
    assert client.get(f"/certificates/{leaf.pk}/download?format=pem").status_code == 404
    assert client.post(f"/certificates/{leaf.pk}/pkcs12-password").status_code == 404
    assert client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "keyCompromise"}).status_code == 404
    assert client.post(f"/certificates/{leaf.pk}/renew").status_code == 404
    leaf.refresh_from_db()
    assert leaf.revoked_at is None


def test_downloads(clients, leaf):
    client = clients["user"]
    pem = client.get(f"/certificates/{leaf.pk}/download?format=pem")
    assert pem.status_code == 200
    assert pem.content.startswith(b"-----BEGIN CERTIFICATE-----")
    assert pem["Content-Disposition"] == 'attachment; filename="www.example.com.pem"'
    chain = client.get(f"/certificates/{leaf.pk}/download?format=fullchain")
    assert chain.content.count(b"BEGIN CERTIFICATE") == 3
    bad = client.get(f"/certificates/{leaf.pk}/download?format=exe", follow=True)
    assert "Unknown format &#x27;exe&#x27;" in bad.content.decode()
    assert AuditEvent.objects.filter(action="certificate.download", target_id=str(leaf.pk)).count() == 2


def test_revealing_a_password_that_does_not_exist_is_explained(clients, hierarchy):
    response = _issue(clients["manager"], hierarchy.intermediate, csr=make_csr("csr.example.com").decode())
    certificate = Certificate.objects.get(common_name="csr.example.com")
    page = clients["manager"].post(f"/certificates/{certificate.pk}/pkcs12-password", follow=True)
    assert response.status_code == 302
    assert "no PKCS#12 password" in page.content.decode()


def test_revoke_from_the_certificate_page(clients, hierarchy, leaf, django_capture_on_commit_callbacks):
    client = clients["manager"]
    crls_before = CertificateRevocationList.objects.filter(ca=hierarchy.intermediate).count()
    with django_capture_on_commit_callbacks(execute=True):  # the CRL is re-signed once the revocation commits
        response = client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "keyCompromise"}, follow=True)
    page = response.content.decode()
    assert f"Certificate {leaf.serial} revoked (keyCompromise)" in page
    leaf.refresh_from_db()
    assert leaf.revocation_reason == "keyCompromise"
    assert CertificateRevocationList.objects.filter(ca=hierarchy.intermediate).count() > crls_before
    again = client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "unspecified"})
    assert again.status_code == 409
    assert "already revoked" in again.content.decode()


@pytest.mark.parametrize(("data", "message"), [
    ({"reason": "notAReason"}, "Select a valid choice"),
    ({"reason": "keyCompromise", "invalidity_date": "yesterday-ish"}, "Enter a valid date/time"),
    ({"reason": "keyCompromise", "invalidity_date": "2999-01-01 00:00"}, "cannot be in the future"),
])
def test_bad_revocation_input_changes_nothing(clients, leaf, data, message):
    response = clients["manager"].post(f"/certificates/{leaf.pk}/revoke", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    leaf.refresh_from_db()
    assert leaf.revoked_at is None


def test_revoking_a_ca_needs_the_root_password_and_never_echoes_it(clients, hierarchy, leaf):
    client = clients["admin"]
    intermediate = hierarchy.intermediate.certificate
    page = client.get(f"/certificates/{intermediate.pk}").content.decode()
    assert "Root password" in page
    wrong = client.post(f"/certificates/{intermediate.pk}/revoke",
                        {"reason": "cessationOfOperation", "root_password": "wrong password 123456",
                         "revoke_children": "on"})
    assert wrong.status_code == 403
    assert "The CA key could not be unlocked." in wrong.content.decode()
    assert "wrong password 123456" not in wrong.content.decode()
    intermediate.refresh_from_db()
    assert intermediate.revoked_at is None
    right = client.post(f"/certificates/{intermediate.pk}/revoke",
                        {"reason": "cessationOfOperation", "root_password": ROOT_PASSWORD, "revoke_children": "on"},
                        follow=True)
    assert "and 1 certificate(s) below it revoked" in right.content.decode()
    leaf.refresh_from_db()
    assert leaf.revoked_at is not None


def test_renew_from_the_certificate_page(clients, leaf):
    response = clients["manager"].post(f"/certificates/{leaf.pk}/renew", follow=True)
    successor = Certificate.objects.get(predecessor=leaf)
    assert f"Renewed: the new certificate has serial {successor.serial}." in response.content.decode()
    page = clients["manager"].get(f"/certificates/{leaf.pk}").content.decode()
    assert "Renewed by" in page


def test_forms_need_the_csrf_token_with_the_session_cookie(make_principal_client, organization, leaf):
    client = make_principal_client("manager", organization, via="cookie", enforce_csrf_checks=True)
    page = client.get(f"/certificates/{leaf.pk}").content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 3  # sign out, reveal, renew, revoke
    response = client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "keyCompromise"})
    assert response.status_code == 403
    leaf.refresh_from_db()
    assert leaf.revoked_at is None
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(f"/certificates/{leaf.pk}/revoke", {"reason": "keyCompromise",
                                                               "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    leaf.refresh_from_db()
    assert leaf.revoked_at is not None


# --- The service layer's rules, met by the pages ------------------------------------------


def test_a_user_gets_no_pkcs12_from_the_page(clients, leaf):
    url = f"/certificates/{leaf.pk}/download?format=p12"
    page = clients["user"].get(f"/certificates/{leaf.pk}").content.decode()
    assert "download?format=p12" not in page  # no link
    response = clients["user"].get(url)  # and no file for a hand-made request either
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    text = response.content.decode()
    assert "Nothing was downloaded: Only a manager or an admin may download the PKCS#12" in text
    assert b"BEGIN" not in response.content
    assert not AuditEvent.objects.filter(action="certificate.download").exists()
    api = clients["user"].get(f"/api/v1/certificates/{leaf.pk}/download/?format=p12")
    assert (api.status_code, api.json()["error"]["code"]) == (403, "permission_denied")  # the API, unchanged
    assert clients["manager"].get(url)["Content-Type"] == "application/x-pkcs12"


def test_a_manager_gets_no_revoke_form_on_a_ca_certificate(clients, hierarchy):
    page = clients["manager"].get(f"/certificates/{hierarchy.intermediate.certificate.pk}").content.decode()
    assert "Revoke this certificate" not in page
    assert "Revoke this certificate" in clients["admin"].get(
        f"/certificates/{hierarchy.intermediate.certificate.pk}").content.decode()


@pytest.mark.parametrize("which", ["intermediate", "root", "responder"])
def test_a_manager_revokes_no_ca_and_no_responder_from_the_page(clients, hierarchy, leaf, which):
    from certificates.services.ocsp import issue_responder_certificate

    certificate = {"intermediate": hierarchy.intermediate.certificate, "root": hierarchy.root.certificate,
                   "responder": issue_responder_certificate(hierarchy.intermediate)}[which]
    head = AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    response = clients["manager"].post(f"/certificates/{certificate.pk}/revoke", {
        "reason": "keyCompromise", "root_password": ROOT_PASSWORD, "revoke_children": "on"})
    assert response.status_code == 403
    assert "The certificate was not revoked: Only an admin may revoke" in response.content.decode()
    assert ROOT_PASSWORD not in response.content.decode()
    assert not Certificate.objects.filter(revoked_at__isnull=False).exists()
    # Only the refusal itself is on the record (access.deny): not even a ca.unlock attempt.
    assert list(AuditEvent.objects.filter(seq__gt=head).values_list("action", flat=True)) == ["access.deny"]


def _as_member(request, role: str, organization):
    """A request as the session middleware leaves it for a member (the view is called directly below)."""
    from django.contrib.messages.storage.cookie import CookieStorage

    from organizations.principal import Principal
    from organizations.roles import Role

    request.principal = Principal(user_id=0, username=f"direct-{role}", role=Role(role),
                                  organization_id=organization.pk)
    request._messages = CookieStorage(request)
    return request


@pytest.mark.parametrize(("view", "message"), [
    ("certificate_reveal_password", "The password was not revealed: Only a manager or an admin may reveal"),
    ("certificate_renew", "The certificate was not renewed: Only a manager or an admin may renew"),
])
def test_the_views_answer_a_refusal_with_403_and_the_rule(rf, organization, leaf, view, message):
    """rbac.json stops a user before these views; were it edited to let one through, the rule still holds."""
    from certificates import views

    request = _as_member(rf.post(f"/certificates/{leaf.pk}/x"), "user", organization)
    response = getattr(views, view)(request, leaf.pk)
    assert response.status_code == 403
    assert message in response.content.decode()
    assert 'id="pkcs12-password"' not in response.content.decode()
    assert not Certificate.objects.filter(predecessor=leaf).exists()
    assert not AuditEvent.objects.filter(action="certificate.pkcs12_password_reveal").exists()


def test_the_issue_view_answers_a_refusal_with_403(rf, organization, hierarchy):
    from certificates import views

    request = _as_member(rf.post("/certificates/issue", {
        "ca": hierarchy.intermediate.pk, "profile": "server", "key_source": "server", "csr": "",
        "common_name": "x.example.com", "sans": "", "key_type": "ec-p256", "days": ""}), "user", organization)
    before = Certificate.objects.count()
    response = views.issue(request)
    assert response.status_code == 403
    assert "Only a manager or an admin may issue certificates." in response.content.decode()
    assert Certificate.objects.count() == before
