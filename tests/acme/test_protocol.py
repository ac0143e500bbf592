"""The ACME protocol (RFC 8555) end to end through Django's test client, with real JWS and real keys.

Every refusal is checked for its problem type and for leaving the stored state as it was.
"""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from acme_server.models import Account, AccountStatus, Authorization, Challenge, ExternalAccountKey, Nonce, Order
from audit.models import AuditEvent
from certificates.crypto.fingerprints import certificate_fingerprint_sha256
from certificates.models import Certificate, CertificateProfile
from tests.acme.flow import b64, csr_der, issue, new_order
from tests.acme.jws import jws, public_jwk

pytestmark = pytest.mark.django_db


def state() -> dict:
    """What a refused request must not change (nonces and audit events are volatile by design)."""
    return {
        "accounts": list(Account.objects.values_list("name", "status", "thumbprint", "contacts").order_by("pk")),
        "eab": list(ExternalAccountKey.objects.values_list("key_id", "used_at", "revoked_at").order_by("pk")),
        "orders": list(Order.objects.values_list("name", "status", "certificate_id").order_by("pk")),
        "authz": list(Authorization.objects.values_list("name", "status").order_by("pk")),
        "challenges": list(Challenge.objects.values_list("name", "status").order_by("pk")),
        "certificates": list(Certificate.objects.values_list("pk", "revoked_at").order_by("pk")),
    }


def assert_refused(answer, problem: str, status: int | None = None) -> None:
    assert answer.problem == problem, (answer.status, answer.body)
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.headers.get("replay-nonce"), "every answer carries a fresh nonce"
    if status is not None:
        assert answer.status == status


# --- directory and nonces ------------------------------------------------------------------------


def test_directory_lists_the_resources_and_meta(make_client, issuing_ca):
    client = make_client()
    base = f"http://testserver/acme/{issuing_ca.slug}"
    assert client.directory == {
        "newNonce": f"{base}/new-nonce", "newAccount": f"{base}/new-account", "newOrder": f"{base}/new-order",
        "revokeCert": f"{base}/revoke-cert", "keyChange": f"{base}/key-change",
        "renewalInfo": f"{base}/renewal-info",
        "meta": {"externalAccountRequired": True},
    }


def test_terms_of_service_appear_in_meta(make_client, settings):
    settings.PKI_ACME_TERMS_OF_SERVICE = "https://pki.example.com/terms"
    assert make_client().directory["meta"]["termsOfService"] == "https://pki.example.com/terms"


def test_every_answer_has_nonce_cache_control_and_index_link(transport, issuing_ca):
    for method, path, status in (("HEAD", "new-nonce", 200), ("GET", "new-nonce", 204), ("GET", "directory", 200)):
        answer = transport(method, f"http://testserver/acme/{issuing_ca.slug}/{path}", None, {})
        assert answer.status == status
        assert answer.headers["replay-nonce"]
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["link"] == f'<http://testserver/acme/{issuing_ca.slug}/directory>;rel="index"'


def test_unknown_and_root_directories_are_404_problems(transport, root_ca):
    for slug in ("nope", root_ca.slug):
        answer = transport("GET", f"http://testserver/acme/{slug}/directory", None, {})
        assert answer.status == 404
        assert answer.problem == "malformed"


def test_nonces_are_stored_and_consumed_once(client_with_account):
    nonce = client_with_account.fresh_nonce()
    assert Nonce.objects.filter(value=nonce).exists()
    first = client_with_account.post(client_with_account.kid, None, nonce=nonce)
    assert first.status == 200
    assert not Nonce.objects.filter(value=nonce).exists()
    before = state()
    again = client_with_account.post(client_with_account.kid, {"contact": ["mailto:x@example.com"]}, nonce=nonce)
    assert_refused(again, "badNonce", 400)
    assert state() == before


# --- accounts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_factory", [
    lambda: ec.generate_private_key(ec.SECP256R1()),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    lambda: ed25519.Ed25519PrivateKey.generate(),
], ids=["ES256", "ES384", "RS256", "EdDSA"])
def test_account_keys_of_every_accepted_algorithm(make_client, eab_key, key_factory):
    client = make_client(key_factory())
    answer = client.new_account(eab=eab_key, contact=["mailto:ops@example.com"])
    assert answer.status == 201, answer.body
    account = Account.objects.get()
    assert answer.headers["location"] == f"{client.directory_url.rsplit('/', 1)[0]}/account/{account.name}"
    assert answer.json()["status"] == "valid"
    assert account.contacts == ["mailto:ops@example.com"]
    assert account.external_key.key_id == eab_key[0]
    assert ExternalAccountKey.objects.get().used_at is not None
    event = AuditEvent.objects.get(action="acme.account_create")
    assert event.actor_label == f"acme:{account.name}"
    assert event.organization_id == account.organization_id


def test_existing_key_returns_its_account(client_with_account):
    again = client_with_account.new_account()
    assert again.status == 200
    assert again.headers["location"] == client_with_account.kid
    only = client_with_account.post(client_with_account.directory["newAccount"], {"onlyReturnExisting": True},
                                    use_jwk=True)
    assert only.status == 200
    assert Account.objects.count() == 1


def test_only_return_existing_for_an_unknown_key(make_client):
    client = make_client()
    before = state()
    answer = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, use_jwk=True)
    assert_refused(answer, "accountDoesNotExist", 400)
    assert state() == before


def test_account_without_eab_is_refused_when_required(make_client):
    before = state()
    assert_refused(make_client().new_account(), "externalAccountRequired", 403)
    assert state() == before


def test_account_without_eab_when_not_required(make_client, settings, issuing_ca):
    settings.PKI_ACME_EAB_REQUIRED = False
    assert make_client().new_account().status == 201
    assert Account.objects.get().organization_id == issuing_ca.organization_id


def test_eab_with_a_wrong_hmac_key_is_refused(make_client, eab_key):
    before = state()
    answer = make_client().new_account(eab=(eab_key[0], b64(b"x" * 32)))
    assert_refused(answer, "unauthorized")
    assert state() == before


def test_eab_binds_one_account_only(make_client, eab_key):
    assert make_client().new_account(eab=eab_key).status == 201
    before = state()
    assert_refused(make_client().new_account(eab=eab_key), "unauthorized")
    assert state() == before


def test_revoked_eab_and_foreign_eab_are_refused(make_client, eab_key, foreign_ca):
    from acme_server.services.eab import create_eab_key, revoke_eab_key
    from pki_project.actor import Actor

    revoke_eab_key(ExternalAccountKey.objects.get(key_id=eab_key[0]), actor=Actor.operator("tests"))
    foreign = create_eab_key(foreign_ca.organization, actor=Actor.operator("tests"))
    before = state()
    assert_refused(make_client().new_account(eab=eab_key), "unauthorized")
    assert_refused(make_client().new_account(eab=(foreign.credential.key_id, foreign.hmac_key)), "unauthorized")
    assert state() == before


def test_eab_bound_to_another_ca_is_refused(make_client, acme_org, issuing_ca, root_ca):
    from acme_server.services.eab import create_eab_key
    from certificates.services.authorities import create_intermediate_ca
    from pki_project.actor import Actor
    from tests.acme.conftest import ROOT_PASSWORD

    other = create_intermediate_ca(parent=root_ca, common_name="Second Issuing", root_password=ROOT_PASSWORD,
                                   key_type="ec-p256", days=1000, path_length=0, slug="second-issuing",
                                   actor=Actor.operator("tests"))
    bound = create_eab_key(acme_org, ca=other, actor=Actor.operator("tests"))
    before = state()
    assert_refused(make_client().new_account(eab=(bound.credential.key_id, bound.hmac_key)), "unauthorized")
    assert state() == before
    assert make_client(ca=other).new_account(eab=(bound.credential.key_id, bound.hmac_key)).status == 201


@pytest.mark.parametrize(("contact", "problem"), [
    ("tel:+123456", "unsupportedContact"), ("mailto:a@b.example.com?subject=x", "invalidContact"),
    ("mailto:not-an-address", "invalidContact"),
])
def test_contacts_must_be_plain_mailto(make_client, eab_key, contact, problem):
    before = state()
    assert_refused(make_client().new_account(eab=eab_key, contact=[contact]), problem, 400)
    assert state() == before


def test_terms_must_be_agreed_when_the_server_has_some(make_client, eab_key, settings):
    settings.PKI_ACME_TERMS_OF_SERVICE = "https://pki.example.com/terms"
    before = state()
    assert_refused(make_client().new_account(eab=eab_key, termsOfServiceAgreed=False), "userActionRequired")
    assert state() == before


def test_account_update_and_deactivation(client_with_account):
    updated = client_with_account.post(client_with_account.kid, {"contact": ["mailto:new@example.com"]})
    assert updated.status == 200
    assert updated.json()["contact"] == ["mailto:new@example.com"]
    deactivated = client_with_account.post(client_with_account.kid, {"status": "deactivated"})
    assert deactivated.json()["status"] == "deactivated"
    assert Account.objects.get().status == AccountStatus.DEACTIVATED
    before = state()
    assert_refused(new_order(client_with_account, "www.example.com"), "unauthorized", 403)
    assert state() == before
    assert set(AuditEvent.objects.filter(action__startswith="acme.account").values_list("action", flat=True)) == {
        "acme.account_create", "acme.account_update", "acme.account_deactivate"}


def test_account_of_another_account_is_not_readable(client_with_account, make_client, eab_key, acme_org):
    from acme_server.services.eab import create_eab_key
    from pki_project.actor import Actor

    second = create_eab_key(acme_org, actor=Actor.operator("tests"))
    other = make_client()
    other.new_account(eab=(second.credential.key_id, second.hmac_key))
    before = state()
    assert_refused(other.post(client_with_account.kid, {"status": "deactivated"}), "unauthorized")
    assert state() == before


# --- JWS refusals --------------------------------------------------------------------------------


def _post_raw(client, url, protected, payload, key=None, signature=None):
    body = json.dumps(jws(key or client.key, protected, payload, signature=signature)).encode()
    return client.post(url, None, raw_body=body)


def test_alg_none_and_hmac_are_bad_signature_algorithms(client_with_account):
    before = state()
    for alg in ("none", "HS256", "RS512", None):
        protected = {"alg": alg, "nonce": client_with_account.fresh_nonce(), "url": client_with_account.kid,
                     "kid": client_with_account.kid}
        answer = _post_raw(client_with_account, client_with_account.kid, protected, {}, signature=b"")
        assert_refused(answer, "badSignatureAlgorithm", 400)
        assert "ES256" in answer.json()["algorithms"]
    assert state() == before


def test_alg_that_does_not_fit_the_key(client_with_account):
    protected = {"alg": "ES384", "nonce": client_with_account.fresh_nonce(), "url": client_with_account.kid,
                 "kid": client_with_account.kid}
    assert_refused(_post_raw(client_with_account, client_with_account.kid, protected, {}), "badSignatureAlgorithm")


def test_small_rsa_key_is_a_bad_public_key(make_client, eab_key):
    before = state()
    client = make_client(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    assert_refused(client.new_account(eab=eab_key), "badPublicKey", 400)
    assert state() == before


def test_unknown_nonce_is_bad_nonce(client_with_account):
    before = state()
    answer = client_with_account.post(client_with_account.kid, {"contact": []}, nonce="made-up-nonce")
    assert_refused(answer, "badNonce", 400)
    assert state() == before


def test_expired_nonce_is_bad_nonce(client_with_account):
    from datetime import timedelta

    from django.utils import timezone

    nonce = client_with_account.fresh_nonce()
    Nonce.objects.filter(value=nonce).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_refused(client_with_account.post(client_with_account.kid, None, nonce=nonce), "badNonce")


def test_missing_nonce_is_bad_nonce(client_with_account):
    protected = {"alg": "ES256", "url": client_with_account.kid, "kid": client_with_account.kid}
    assert_refused(_post_raw(client_with_account, client_with_account.kid, protected, None), "badNonce")


def test_url_header_must_be_the_request_url(client_with_account):
    before = state()
    answer = client_with_account.post(client_with_account.kid, {"contact": []},
                                      protected={"url": client_with_account.directory["newOrder"]})
    assert_refused(answer, "unauthorized", 403)
    assert state() == before


def test_forged_signature_is_malformed(client_with_account):
    before = state()
    answer = client_with_account.post(client_with_account.kid, {"status": "deactivated"}, signature=b"\x01" * 64)
    assert_refused(answer, "malformed", 400)
    other_key = ec.generate_private_key(ec.SECP256R1())
    protected = {"alg": "ES256", "nonce": client_with_account.fresh_nonce(), "url": client_with_account.kid,
                 "kid": client_with_account.kid}
    assert_refused(_post_raw(client_with_account, client_with_account.kid, protected, {"status": "deactivated"},
                             key=other_key), "malformed")
    assert state() == before


def test_unknown_account_kid(client_with_account):
    kid = client_with_account.kid.rsplit("/", 1)[0] + "/unknown"
    protected = {"alg": "ES256", "nonce": client_with_account.fresh_nonce(), "url": client_with_account.kid,
                 "kid": kid}
    assert_refused(_post_raw(client_with_account, client_with_account.kid, protected, None),
                   "accountDoesNotExist", 400)


def test_jwk_and_kid_rules(client_with_account):
    before = state()
    both = client_with_account.post(client_with_account.kid, None,
                                    protected={"jwk": public_jwk(client_with_account.key)})
    assert_refused(both, "malformed")
    order_with_jwk = client_with_account.post(client_with_account.directory["newOrder"],
                                              {"identifiers": [{"type": "dns", "value": "a.example.com"}]},
                                              use_jwk=True)
    assert_refused(order_with_jwk, "malformed")
    account_with_kid = client_with_account.post(client_with_account.directory["newAccount"], {}, use_jwk=False)
    assert_refused(account_with_kid, "malformed")
    assert state() == before


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"protected": "!!!", "payload": "", "signature": ""}',
                                  b'{"protected": "e30", "payload": "", "signature": "", "header": {}}',
                                  b'{"signatures": []}', "\udcff".encode("utf-8", "surrogatepass")])
def test_malformed_bodies_are_400_malformed(client_with_account, body):
    before = state()
    answer = client_with_account.post(client_with_account.kid, None, raw_body=body)
    assert_refused(answer, "malformed", 400)
    assert state() == before


def test_wrong_content_type_is_415(client_with_account):
    answer = client_with_account.post(client_with_account.kid, None, content_type="application/json")
    assert answer.status == 415
    assert answer.problem == "malformed"


# --- orders, authorizations, challenges ----------------------------------------------------------


def test_issuance_through_the_shared_service(client_with_account, outcomes, issuing_ca):
    order, order_url, chain = issue(client_with_account, outcomes, "www.example.com", "api.example.com")
    certs = x509.load_pem_x509_certificates(chain)
    assert len(certs) == 2  # the certificate, then the issuing CA (the root is the relying party's)
    sans = certs[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"www.example.com", "api.example.com"}
    row = Certificate.objects.get(fingerprint_sha256=certificate_fingerprint_sha256(certs[0]))
    assert row.issuer_id == issuing_ca.pk
    assert row.profile == "server"
    assert row.acme_order.account.name == client_with_account.kid.rsplit("/", 1)[1]
    assert row.created_by.startswith("acme:")
    issue_event = AuditEvent.objects.get(action="certificate.issue", target_id=str(row.pk))
    assert issue_event.actor_label == row.created_by
    actions = set(AuditEvent.objects.filter(actor_label=row.created_by).values_list("action", flat=True))
    assert {"acme.order_create", "acme.challenge_validate", "acme.order_finalize"} <= actions
    key_authorizations = {call[4] for call in outcomes.calls}
    assert all(ka.endswith("." + Account.objects.get().thumbprint) for ka in key_authorizations)
    assert client_with_account.post(order_url, None).json()["certificate"] == order["certificate"]


def test_ip_identifier(client_with_account, outcomes):
    _order, _url, chain = issue(client_with_account, outcomes, "10.1.2.3", kind="ip")
    cert = x509.load_pem_x509_certificates(chain)[0]
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]


def test_wildcard_is_offered_dns01_only(client_with_account, outcomes):
    answer = new_order(client_with_account, "*.example.com")
    authz = client_with_account.post(answer.json()["authorizations"][0], None).json()
    assert authz["wildcard"] is True
    assert authz["identifier"] == {"type": "dns", "value": "example.com"}
    assert [c["type"] for c in authz["challenges"]] == ["dns-01"]
    issue(client_with_account, outcomes, "*.example.com", challenge_type="dns-01")
    assert outcomes.calls[-1][:3] == ("dns-01", "dns", "example.com")


def test_names_outside_the_name_constraints_are_rejected(client_with_account):
    before = state()
    answer = new_order(client_with_account, "www.example.com", "www.example.org")
    assert_refused(answer, "rejectedIdentifier", 400)
    assert [p["identifier"]["value"] for p in answer.json()["subproblems"]] == ["www.example.org"]
    assert_refused(new_order(client_with_account, "192.168.1.1", kind="ip"), "rejectedIdentifier")
    assert state() == before


def test_names_outside_the_edited_acme_profile_are_rejected_before_any_challenge(client_with_account):
    """The profile row as staff last edited it governs newOrder, not the built-in it started from."""
    CertificateProfile.objects.filter(name="server").update(allowed_dns_suffixes=["internal.example.com"])
    before = state()
    answer = new_order(client_with_account, "a.internal.example.com", "www.example.com")
    assert_refused(answer, "rejectedIdentifier", 400)
    assert [p["identifier"]["value"] for p in answer.json()["subproblems"]] == ["www.example.com"]
    assert "internal.example.com" in answer.json()["subproblems"][0]["detail"]
    assert state() == before
    assert new_order(client_with_account, "a.internal.example.com").status == 201


def test_a_disabled_acme_profile_refuses_new_orders(client_with_account):
    CertificateProfile.objects.filter(name="server").update(enabled=False)
    before = state()
    answer = new_order(client_with_account, "www.example.com")
    assert_refused(answer, "rejectedIdentifier", 400)
    assert "disabled" in answer.json()["detail"]
    assert state() == before


@pytest.mark.parametrize(("identifiers", "problem"), [
    ([{"type": "email", "value": "a@example.com"}], "unsupportedIdentifier"),
    ([{"type": "dns", "value": "bad_name!.example.com"}], "rejectedIdentifier"),
    ([], "malformed"), ("www.example.com", "malformed"), ([{"type": "dns"}], "malformed"),
])
def test_bad_identifiers(client_with_account, identifiers, problem):
    before = state()
    answer = client_with_account.post(client_with_account.directory["newOrder"], {"identifiers": identifiers})
    assert_refused(answer, problem)
    assert state() == before


def test_failed_challenge_invalidates_authorization_and_order(client_with_account, outcomes):
    outcomes.fail(detail="The token was not found")
    answer = new_order(client_with_account, "www.example.com")
    order_url = answer.headers["location"]
    authz_url = answer.json()["authorizations"][0]
    challenge = next(c for c in client_with_account.post(authz_url, None).json()["challenges"]
                     if c["type"] == "http-01")
    with outcomes.capture():
        response = client_with_account.post(challenge["url"], {})
    assert response.json()["status"] == "processing"
    assert response.headers["link"].startswith(f'<{authz_url}>;rel="up"')
    challenge_now = client_with_account.post(challenge["url"], None).json()
    assert challenge_now["status"] == "invalid"
    assert challenge_now["error"]["type"] == "urn:ietf:params:acme:error:incorrectResponse"
    assert client_with_account.post(authz_url, None).json()["status"] == "invalid"
    order = client_with_account.post(order_url, None).json()
    assert order["status"] == "invalid"
    event = AuditEvent.objects.get(action="acme.challenge_validate")
    assert event.outcome == "failure"
    der, _ = csr_der(["www.example.com"])
    assert_refused(client_with_account.post(order["finalize"], {"csr": b64(der)}), "orderNotReady", 403)


def test_finalize_before_ready_and_with_other_names(client_with_account, outcomes):
    answer = new_order(client_with_account, "www.example.com")
    order = answer.json()
    der, _ = csr_der(["www.example.com"])
    before = state()
    assert_refused(client_with_account.post(order["finalize"], {"csr": b64(der)}), "orderNotReady", 403)
    assert state() == before
    from tests.acme.flow import prove_all

    prove_all(client_with_account, order, outcomes)
    before = state()
    for names in (["www.example.com", "extra.example.com"], ["other.example.com"]):
        wrong, _ = csr_der(names)
        assert_refused(client_with_account.post(order["finalize"], {"csr": b64(wrong)}), "badCSR", 400)
    wrong_cn, _ = csr_der(["www.example.com"], common_name="cn.example.com")
    assert_refused(client_with_account.post(order["finalize"], {"csr": b64(wrong_cn)}), "badCSR")
    assert_refused(client_with_account.post(order["finalize"], {"csr": b64(b"garbage")}), "badCSR")
    assert_refused(client_with_account.post(order["finalize"], {"csr": "no padding="}), "malformed")
    assert state() == before


def test_second_finalize_gets_order_not_ready_and_one_certificate(client_with_account, outcomes):
    order, _order_url, _chain = issue(client_with_account, outcomes, "www.example.com")
    der, _ = csr_der(["www.example.com"])
    before = state()
    assert_refused(client_with_account.post(order["finalize"], {"csr": b64(der)}), "orderNotReady")
    assert state() == before
    assert Certificate.objects.filter(acme_order__isnull=False).count() == 1


def test_another_account_cannot_see_my_order(client_with_account, make_client, acme_org, outcomes):
    from acme_server.services.eab import create_eab_key
    from pki_project.actor import Actor

    answer = new_order(client_with_account, "www.example.com")
    second = create_eab_key(acme_org, actor=Actor.operator("tests"))
    other = make_client()
    other.new_account(eab=(second.credential.key_id, second.hmac_key))
    for url in (answer.headers["location"], answer.json()["authorizations"][0]):
        assert other.post(url, None).status == 404


def test_authorization_deactivation(client_with_account):
    answer = new_order(client_with_account, "www.example.com")
    authz_url = answer.json()["authorizations"][0]
    assert client_with_account.post(authz_url, {"status": "deactivated"}).json()["status"] == "deactivated"
    assert client_with_account.post(answer.headers["location"], None).json()["status"] == "invalid"


def test_orders_expire(client_with_account):
    from datetime import timedelta

    from django.utils import timezone

    answer = new_order(client_with_account, "www.example.com")
    Order.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client_with_account.post(answer.headers["location"], None).json()["status"] == "invalid"


def test_account_orders_list(client_with_account):
    answer = new_order(client_with_account, "www.example.com")
    listed = client_with_account.post(client_with_account.kid + "/orders", None).json()
    assert listed == {"orders": [answer.headers["location"]]}


# --- key rollover --------------------------------------------------------------------------------


def _key_change(client, new_key, *, account_url=None, old_key=None):
    url = client.directory["keyChange"]
    inner = jws(new_key, {"alg": "ES256", "jwk": public_jwk(new_key), "url": url},
                {"account": account_url or client.kid, "oldKey": public_jwk(old_key or client.key)})
    return client.post(url, inner)


def test_key_rollover(client_with_account):
    new_key = ec.generate_private_key(ec.SECP256R1())
    old_key = client_with_account.key
    answer = _key_change(client_with_account, new_key)
    assert answer.status == 200, answer.body
    assert AuditEvent.objects.filter(action="acme.account_key_change").count() == 1
    assert_refused(client_with_account.post(client_with_account.kid, None), "malformed")  # old key no longer signs
    client_with_account.key = new_key
    assert client_with_account.post(client_with_account.kid, None).status == 200
    client_with_account.key = old_key
    client_with_account.kid = None
    assert_refused(client_with_account.post(client_with_account.directory["newAccount"],
                                            {"onlyReturnExisting": True}, use_jwk=True), "accountDoesNotExist")


def test_key_rollover_refusals(client_with_account, make_client, acme_org):
    from acme_server.services.eab import create_eab_key
    from pki_project.actor import Actor

    second = create_eab_key(acme_org, actor=Actor.operator("tests"))
    other = make_client()
    other.new_account(eab=(second.credential.key_id, second.hmac_key))
    before = state()
    taken = _key_change(client_with_account, other.key)
    assert taken.status == 409
    assert taken.headers["location"] == other.kid
    wrong_old = _key_change(client_with_account, ec.generate_private_key(ec.SECP256R1()),
                            old_key=ec.generate_private_key(ec.SECP256R1()))
    assert_refused(wrong_old, "malformed")
    wrong_account = _key_change(client_with_account, ec.generate_private_key(ec.SECP256R1()), account_url=other.kid)
    assert_refused(wrong_account, "malformed")
    assert state() == before
