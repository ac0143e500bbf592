"""Sessions: login, the JWT cookie, Bearer credentials, and every kind of refused token."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from organizations.models import SessionToken
from organizations.services import revoke_api_key
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db
PROBE = "/api/v1/organizations/"
INVALID = {"error": {"code": "not_authenticated", "message": "Invalid credentials."}}


def login(client: Client, key: str):
    return client.post("/auth/session", {"api_key": key}, content_type="application/json")


def bearer(token: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {token}"})


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture
def api_key(organization):
    return ApiKeyFactory(user=UserFactory(role="manager", organization=organization))


@pytest.fixture
def session(api_key):
    client = Client()
    response = login(client, api_key.plain_key)
    assert response.status_code == 200
    return client, response.json()["token"]


def claims_for(token: str) -> dict:
    return jwt.decode(token, options={"verify_signature": False})


def test_login_answers_token_role_expiry_and_sets_the_cookie(api_key, organization):
    client = Client()
    response = login(client, api_key.plain_key)
    body = response.json()
    assert set(body) >= {"token", "role", "expires_at"}
    assert body["role"] == "manager"
    cookie = response.cookies["pki_session"]
    assert cookie.value == body["token"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # tests run with PKI_COOKIE_SECURE=false
    assert response["Cache-Control"] == "no-store"
    claims = claims_for(body["token"])
    assert set(claims) == {"sub", "role", "org", "iat", "nbf", "exp", "jti"}
    assert claims["org"] == organization.pk
    assert claims["exp"] - claims["iat"] == settings.PKI_SESSION_TTL
    assert api_key.plain_key not in json.dumps(claims)
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS256"
    assert client.get(PROBE).status_code == 200
    assert bearer(body["token"]).get(PROBE).status_code == 200


def test_cookie_is_secure_when_configured(api_key, settings):
    settings.PKI_COOKIE_SECURE = True
    response = login(Client(), api_key.plain_key)
    assert response.cookies["pki_session"]["secure"]


def test_login_form_redirects_to_the_dashboard_or_a_safe_next(api_key):
    client = Client()
    response = client.post("/auth/session", {"api_key": api_key.plain_key})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert "pki_session" in response.cookies
    response = Client().post("/auth/session", {"api_key": api_key.plain_key, "next": "https://evil.example/"})
    assert response["Location"] == "/"
    response = Client().post("/auth/session", {"api_key": api_key.plain_key, "next": "/admin/organizations/"})
    assert response["Location"] == "/admin/organizations/"


@pytest.mark.parametrize("body", [b"{not json", b"[]", b'{"api_key": 5}', b'{"api_key": ""}', b"{}"])
def test_malformed_login_body_is_a_400_and_opens_no_session(body, api_key):
    response = Client().post("/auth/session", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not SessionToken.objects.exists()


@pytest.mark.parametrize("make_key", [
    lambda key: key.plain_key[:-1] + ("A" if key.plain_key[-1] != "A" else "B"),  # wrong secret
    lambda key: "pki_000000000000_" + key.plain_key.split("_", 2)[2],  # unknown prefix
    lambda key: "not-a-key",
    lambda key: key.plain_key + "x",
])
def test_wrong_keys_get_one_generic_answer(make_key, api_key):
    response = Client().post("/auth/session", {"api_key": make_key(api_key)}, content_type="application/json")
    assert response.status_code == 401
    assert response.json() == {"error": {"code": "not_authenticated", "message": "Invalid credentials."}}
    assert not SessionToken.objects.exists()
    assert "pki_session" not in response.cookies


def test_revoked_expired_and_inactive_keys_cannot_log_in(organization):
    user = UserFactory(role="user", organization=organization)
    revoked = ApiKeyFactory(user=user, revoked_at=timezone.now())
    expired = ApiKeyFactory(user=user, expires_at=timezone.now() - timedelta(seconds=1))
    inactive_user = UserFactory(role="user", organization=organization, is_active=False)
    inactive = ApiKeyFactory(user=inactive_user)
    for key in (revoked, expired, inactive):
        response = login(Client(), key.plain_key)
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "Invalid credentials."
        assert bearer(key.plain_key).get(PROBE).json() == INVALID


def test_failed_form_login_re_renders_the_page_generically(api_key):
    response = Client().post("/auth/session", {"api_key": "pki_nope"})
    assert response.status_code == 401
    assert b"Invalid credentials." in response.content
    assert b"<form" in response.content


# --- Refused tokens -----------------------------------------------------------------------------


def _issue(session_row_claims: dict, key: str = settings.PKI_JWT_SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(session_row_claims, key, algorithm=algorithm)


@pytest.fixture
def live_claims(session):
    _client, token = session
    return claims_for(token)


def test_forged_payload_is_refused(session):
    _client, token = session
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "admin"
    claims["org"] = None
    forged = f"{header}.{b64(claims)}.{signature}"
    assert bearer(forged).get(PROBE).json() == INVALID
    tampered_signature = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert bearer(tampered_signature).get(PROBE).status_code == 401


def test_alg_none_is_refused(live_claims):
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(live_claims)}."
    assert bearer(unsigned).get(PROBE).json() == INVALID
    client = Client()
    client.cookies["pki_session"] = unsigned
    assert client.get(PROBE).status_code == 401


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_other_algorithms_and_wrong_secret_are_refused(live_claims):
    assert bearer(_issue(live_claims, algorithm="HS512")).get(PROBE).json() == INVALID
    assert bearer(_issue(live_claims, key="another-secret-" + "x" * 64)).get(PROBE).json() == INVALID


def test_expired_token_is_refused(live_claims):
    now = int(timezone.now().timestamp())
    expired = {**live_claims, "iat": now - 7200, "nbf": now - 7200, "exp": now - 60}
    assert bearer(_issue(expired)).get(PROBE).json() == INVALID


def test_not_yet_valid_token_is_refused(live_claims):
    now = int(timezone.now().timestamp())
    future = {**live_claims, "iat": now + 3600, "nbf": now + 3600, "exp": now + 7200}
    assert bearer(_issue(future)).get(PROBE).json() == INVALID
    future_nbf = {**live_claims, "nbf": now + 3600}
    assert bearer(_issue(future_nbf)).get(PROBE).json() == INVALID


def test_token_missing_a_claim_or_never_issued_is_refused(live_claims):
    without_jti = {k: v for k, v in live_claims.items() if k != "jti"}
    assert bearer(_issue(without_jti)).get(PROBE).json() == INVALID
    unknown_jti = {**live_claims, "jti": "never-issued"}
    assert bearer(_issue(unknown_jti)).get(PROBE).json() == INVALID
    other_user = {**live_claims, "sub": str(int(live_claims["sub"]) + 1000)}
    assert bearer(_issue(other_user)).get(PROBE).json() == INVALID


def test_logged_out_token_is_refused(session):
    client, token = session
    response = client.delete("/auth/session", headers={"X-Requested-With": "XMLHttpRequest",
                                                         "Origin": "http://testserver"})
    assert response.status_code == 200
    assert response.cookies["pki_session"].value == ""
    assert bearer(token).get(PROBE).json() == INVALID
    replay = Client()
    replay.cookies["pki_session"] = token
    refused = replay.get(PROBE)
    assert refused.status_code == 401
    assert refused.cookies["pki_session"].value == ""  # the dead cookie is cleared
    assert SessionToken.objects.get().revoked_at is not None


def test_logout_form_ends_the_session(session):
    client, token = session
    response = client.post("/auth/logout")
    assert response.status_code == 302
    assert response["Location"] == "/auth/login"
    assert bearer(token).get(PROBE).status_code == 401


def test_revoked_key_ends_its_live_session_on_the_next_request(session, api_key):
    client, token = session
    assert client.get(PROBE).status_code == 200
    revoke_api_key(api_key)
    assert client.get(PROBE).status_code == 401
    assert bearer(token).get(PROBE).json() == INVALID
    assert bearer(api_key.plain_key).get(PROBE).json() == INVALID


def test_key_revoked_directly_in_the_database_still_wins(session, api_key):
    """Even without the service (e.g. another process's admin), the next request sees the revocation."""
    client, _token = session
    type(api_key).objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())
    assert client.get(PROBE).status_code == 401


def test_deactivated_user_ends_sessions_on_the_next_request(session, api_key):
    client, _token = session
    user = api_key.user
    user.is_active = False
    user.save()
    assert client.get(PROBE).status_code == 401
    assert bearer(api_key.plain_key).get(PROBE).status_code == 401


def test_expired_key_ends_its_session(session, api_key):
    client, _token = session
    type(api_key).objects.filter(pk=api_key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(PROBE).status_code == 401


def test_role_change_applies_to_the_next_request(session, api_key, organization):
    """The database role wins over the token's claim."""
    from organizations.services import set_membership
    from pki_project.actor import Actor

    client, _token = session
    assert client.post("/api/v1/organizations/", {"name": "X"}, content_type="application/json",
                       headers={"X-Requested-With": "XMLHttpRequest", "Origin": "http://testserver"}
                       ).status_code == 403
    set_membership(api_key.user, "admin", None, actor=Actor.operator("tests"))
    response = client.post("/api/v1/organizations/", {"name": "X"}, content_type="application/json",
                           headers={"X-Requested-With": "XMLHttpRequest", "Origin": "http://testserver"})
    assert response.status_code == 201


def test_stale_cookie_does_not_block_the_login_page():
    client = Client()
    client.cookies["pki_session"] = "garbage"
    assert client.get("/auth/login").status_code == 200


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Token abc", "Bearer "])
def test_other_authorization_schemes_are_refused(header):
    response = Client(headers={"Authorization": header}).get(PROBE)
    assert response.status_code == 401
    assert response.json() == INVALID


def test_api_key_bearer_records_last_use(api_key):
    assert api_key.last_used_at is None
    assert bearer(api_key.plain_key).get(PROBE).status_code == 200
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_no_secret_reaches_the_log(api_key, caplog):
    caplog.set_level("DEBUG")
    response = login(Client(), api_key.plain_key)
    token = response.json()["token"]
    login(Client(), api_key.plain_key[:-3] + "abc")
    bearer(token).get(PROBE)
    bearer(token + "x").get(PROBE)
    text = caplog.text
    secret_part = api_key.plain_key.split("_", 2)[2]  # the secret may itself contain "_"
    assert secret_part not in text
    assert token not in text
    assert api_key.prefix in text or "Login refused" in text
