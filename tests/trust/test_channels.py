"""One rule per action in every channel: what the API refuses, the pages and the admin refuse.

Against a live gunicorn (SQLite and PostgreSQL), as insiders with their own keys: a `user`'s browser
session fetching a PKCS#12 from the page, a manager revoking a CA or the OCSP responder certificate
through the page and through the admin action (with the right root password: the role, not the
password, is what is missing), a manager signing the root's CRL from the toolbox and the admin.
Each is refused with 403, the stored state's fingerprint is unchanged, and no event of the refused
operation (nor any root unlock attempt) is written. Each refusal is set beside the same request's
answer from the API, which stays 403 `permission_denied`, and beside the allowed role's success
where that changes nothing stored (a download).
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from tests.trust.live import ISSUING_CA, ROOT_CA, ROOT_PASSWORD, LivePKI, Response

pytestmark = pytest.mark.slow

CERTS = "/admin/certificates/certificate/"
CAS = "/admin/certificates/certificateauthority/"
# Events a refused request must not leave (the central record of a 403 is another part's and may be there).
OPERATION_EVENTS = {"certificate.download", "certificate.revoke", "certificate.renew", "crl.generate", "ca.unlock",
                    "certificate.pkcs12_password_reveal"}


def _api_json(live: LivePKI, path: str, role: str = "admin") -> dict:
    response = live.request("GET", path, key=role)
    assert response.status == 200, (path, response.status, response.body[:300])
    return response.json()


def _only(live: LivePKI, query: str) -> dict:
    rows = _api_json(live, f"/api/v1/certificates/?{query}")["results"]
    assert len(rows) == 1, (query, rows)
    return rows[0]


def _ca(live: LivePKI, slug: str) -> dict:
    rows = [row for row in _api_json(live, "/api/v1/cas/?page_size=200")["results"] if row["slug"] == slug]
    assert len(rows) == 1, slug
    return rows[0]


def _ocsp_responder(live: LivePKI) -> dict:
    """The issuing CA's delegated responder certificate: one OCSP request makes the server issue it."""
    leaf = _api_json(live, f"/api/v1/certificates/{live.certificates['csr-leaf']['id']}/")
    issuer = live.request("GET", f"/pki/ca/{ISSUING_CA}.pem")
    assert issuer.status == 200
    request = ocsp.OCSPRequestBuilder().add_certificate(
        x509.load_pem_x509_certificate(leaf["certificate_pem"].encode()),
        x509.load_pem_x509_certificate(issuer.body), hashes.SHA256()).build()
    answer = live.request("POST", f"/pki/ocsp/{ISSUING_CA}/", body=request.public_bytes(Encoding.DER),
                          headers={"Content-Type": "application/ocsp-request"})
    assert answer.status == 200
    assert ocsp.load_der_ocsp_response(answer.body).response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    return _only(live, f"kind=ocsp_responder&ca={ISSUING_CA}&status=valid")


def _operation_events(live: LivePKI, after_seq: int) -> list[dict]:
    return [event for event in live.audit_events(after_seq) if event["action"] in OPERATION_EVENTS]


def _refused_page(response: Response, *sentences: str) -> None:
    assert response.status == 403, (response.status, response.body[:400])
    assert (response.header("content-type") or "").startswith("text/html")
    text = response.body.decode()
    for sentence in sentences:
        assert sentence in text, (sentence, text[:2000])
    assert ROOT_PASSWORD not in text


def _admin_action(live: LivePKI, role: str, changelist: str, action: str, selected: int, **fields: str) -> Response:
    form = {"action": action, "_selected_action": str(selected), "apply": "1", **fields}
    return live.page_session(role).request("POST", changelist, form=form)


def test_a_user_gets_no_pkcs12_from_the_page_as_the_api_refuses_it(live: LivePKI):
    leaf_id = live.certificates["p12-leaf"]["id"]
    user = live.page_session("user")
    head, before = live.audit_head(), live.fingerprint()

    page = user.request("GET", f"/certificates/{leaf_id}/download?format=p12")
    _refused_page(page, "Nothing was downloaded: Only a manager or an admin may download the PKCS#12")
    assert b"BEGIN" not in page.body
    assert "attachment" not in (page.header("content-disposition") or "")
    api = live.request("GET", f"/api/v1/certificates/{leaf_id}/download/?format=p12", key="user")
    assert (api.status, api.error_code) == (403, "permission_denied")  # the API's answer, unchanged
    assert "download?format=p12" not in user.request("GET", f"/certificates/{leaf_id}").body.decode()

    assert live.fingerprint().differences(before) == []
    assert _operation_events(live, head) == []
    # The control: the same page hands a manager the bundle (a download changes nothing stored).
    bundle = live.page_session("manager").request("GET", f"/certificates/{leaf_id}/download?format=p12")
    assert bundle.status == 200
    assert bundle.header("content-type") == "application/x-pkcs12"
    assert [event["action"] for event in _operation_events(live, head)] == ["certificate.download"]
    assert live.fingerprint().differences(before) == []


def test_a_manager_revokes_no_ca_through_the_page_or_the_admin(live: LivePKI):
    intermediate = _ca(live, ISSUING_CA)["certificate"]
    root = _ca(live, ROOT_CA)["certificate"]
    manager = live.page_session("manager")
    head, before = live.audit_head(), live.fingerprint()
    fields = {"reason": "keyCompromise", "root_password": ROOT_PASSWORD, "revoke_children": "on"}

    for certificate in (intermediate, root):
        _refused_page(manager.request("POST", f"/certificates/{certificate}/revoke", form=fields),
                      "The certificate was not revoked: Only an admin may revoke a CA certificate.")
        _refused_page(_admin_action(live, "manager", CERTS, "revoke_selected", certificate, **fields),
                      "Nothing was revoked.", "Only an admin may revoke a CA certificate.")
        asked = manager.request("POST", CERTS, form={"action": "revoke_selected",
                                                     "_selected_action": str(certificate)})
        _refused_page(asked, "Only an admin may revoke a CA certificate.")  # not even the password form
        api = live.request("POST", f"/api/v1/certificates/{certificate}/revoke/", key="manager",
                           json_body={"reason": "keyCompromise", "root_password": ROOT_PASSWORD,
                                      "revoke_children": True})
        assert (api.status, api.error_code) == (403, "permission_denied")

    assert live.fingerprint().differences(before) == []
    assert _operation_events(live, head) == []  # no revocation, no CRL, and the root password was never tried
    assert _api_json(live, f"/api/v1/certificates/{intermediate}/")["status"] == "valid"


def test_a_manager_revokes_no_ocsp_responder_through_the_page_or_the_admin(live: LivePKI):
    responder = _ocsp_responder(live)["id"]
    manager = live.page_session("manager")
    head, before = live.audit_head(), live.fingerprint()

    _refused_page(manager.request("POST", f"/certificates/{responder}/revoke", form={"reason": "superseded"}),
                  "The certificate was not revoked: Only an admin may revoke an OCSP responder certificate.")
    _refused_page(_admin_action(live, "manager", CERTS, "revoke_selected", responder, reason="superseded"),
                  "Nothing was revoked.", "Only an admin may revoke an OCSP responder certificate.")
    api = live.request("POST", f"/api/v1/certificates/{responder}/revoke/", key="manager",
                       json_body={"reason": "superseded"})
    assert (api.status, api.error_code) == (403, "permission_denied")

    assert live.fingerprint().differences(before) == []
    assert _operation_events(live, head) == []
    assert _api_json(live, f"/api/v1/certificates/{responder}/")["status"] == "valid"


def test_a_manager_signs_no_root_crl_from_the_toolbox_or_the_admin(live: LivePKI):
    root = _ca(live, ROOT_CA)["id"]
    manager = live.page_session("manager")
    toolbox = manager.request("GET", "/toolbox").body.decode()
    assert f'value="{root}"' not in toolbox  # not offered ...
    head, before = live.audit_head(), live.fingerprint()

    signed = manager.request("POST", "/toolbox/crl", form={"ca": str(root), "root_password": ROOT_PASSWORD})
    _refused_page(signed, "No CRL was signed for", "Only an admin may sign a root CA&#x27;s CRL.")  # ... nor done
    _refused_page(_admin_action(live, "manager", CAS, "regenerate_crl", root, root_password=ROOT_PASSWORD),
                  "No CRL was signed.", "Only an admin may sign a root CA&#x27;s CRL.")
    api = live.request("POST", f"/api/v1/cas/{root}/crl/", key="manager", json_body={"root_password": ROOT_PASSWORD})
    assert (api.status, api.error_code) == (403, "permission_denied")

    assert live.fingerprint().differences(before) == []
    assert _operation_events(live, head) == []  # no crl.generate, no ca.unlock


def test_another_organizations_admin_reaches_none_of_it(live: LivePKI):
    """Tenancy first: the same requests from the other organization's admin are 404, and change nothing."""
    leaf_id, intermediate = live.certificates["p12-leaf"]["id"], _ca(live, ISSUING_CA)["certificate"]
    other = live.page_session("other-admin")
    head, before = live.audit_head(), live.fingerprint()

    assert other.request("GET", f"/certificates/{leaf_id}/download?format=p12").status == 404
    assert other.request("POST", f"/certificates/{intermediate}/revoke",
                         form={"reason": "keyCompromise", "root_password": ROOT_PASSWORD}).status == 404
    assert _admin_action(live, "other-admin", CERTS, "revoke_selected", intermediate, reason="keyCompromise",
                         root_password=ROOT_PASSWORD).status == 404
    search = other.request("GET", f"{CERTS}?q={quote(live.certificates['p12-leaf']['serial'])}")
    assert search.status == 200
    assert "0 results" in search.body.decode()  # the serial echoed in the search box, and nothing found

    assert live.fingerprint().differences(before) == []
    assert _operation_events(live, head) == []
