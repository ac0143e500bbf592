"""API keys on the staff pages: the list, creation with a one-time reveal and scopes, revocation after
confirmation; each role, another organization, and bad input that changes nothing."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from audit.models import AuditEvent
from organizations.models import ApiKey, SessionToken
from tests.factories import ApiKeyFactory, UserFactory

pytestmark = pytest.mark.django_db
KEY_PATTERN = re.compile(r'<code id="new-api-key" class="secret">(pki_[0-9a-f]{12}_[A-Za-z0-9_-]{43})</code>')


@pytest.fixture
def browsers(make_principal_client, organization, other_organization) -> dict[str, Client]:
    clients = {role: make_principal_client(role, organization, via="cookie") for role in ("user", "manager", "admin")}
    clients["global_admin"] = make_principal_client("admin", via="cookie")
    clients["other_admin"] = make_principal_client("admin", other_organization, via="cookie")
    return clients


def _created_key(response) -> str:
    match = KEY_PATTERN.search(response.content.decode())
    assert match, response.content[:2000]
    return match.group(1)


def test_a_user_creates_a_key_shown_once_that_works(browsers):
    response = browsers["user"].post("/api-keys", {"label": "laptop", "expires_days": "30"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    key = _created_key(response)
    assert 'data-copy="new-api-key"' in response.content.decode()  # the Copy button (static pki.js)
    api_key = ApiKey.objects.get(prefix=key.split("_")[1])
    assert api_key.user == browsers["user"].user
    assert api_key.label == "laptop"
    assert api_key.expires_at is not None
    assert Client(headers={"Authorization": f"Bearer {key}"}).get("/api/v1/certificates/").status_code == 200
    listing = browsers["user"].get("/api-keys").content.decode()
    assert api_key.prefix in listing
    assert key not in listing
    assert AuditEvent.objects.filter(action="api_key.create", target_id=str(api_key.pk)).count() == 1


def test_the_list_shows_each_role_what_it_may_see(browsers, organization, other_organization):
    member = UserFactory(role="user", organization=organization)
    member_key = ApiKeyFactory(user=member, label="member key")
    foreign_key = ApiKeyFactory(user=UserFactory(role="user", organization=other_organization), label="foreign")
    own_key = browsers["manager"].api_key

    def shown(caller):
        return set(re.findall(r'data-key="([0-9a-f]{12})"', browsers[caller].get("/api-keys").content.decode()))

    assert shown("manager") == {own_key.prefix}  # own keys only
    assert shown("user") == {browsers["user"].api_key.prefix}
    assert member_key.prefix in shown("admin")
    assert foreign_key.prefix not in shown("admin")
    assert {member_key.prefix, foreign_key.prefix} <= shown("global_admin")
    assert member_key.prefix not in shown("other_admin")


def test_the_list_shows_scopes_roles_and_last_use(browsers, hierarchy):
    browsers["manager"].post("/api-keys", {"label": "scoped", "allowed_cas": [hierarchy.intermediate.slug],
                                           "allowed_profiles": ["server", "client"], "max_validity_days": "14"})
    key = ApiKey.objects.get(label="scoped")
    assert list(key.allowed_cas.all()) == [hierarchy.intermediate]
    assert key.allowed_profiles == ["client", "server"]
    assert key.max_validity_days == 14
    page = browsers["manager"].get("/api-keys").content.decode()
    row = page[page.index(f'data-key="{key.prefix}"'):]
    row = row[:row.index("</tr>")]
    assert f"<code>{hierarchy.intermediate.slug}</code>" in row
    assert "<code>client</code>, <code>server</code>" in row
    assert "14 days" in row
    assert "manager" in row
    assert "never" in row
    own = browsers["manager"].api_key
    own.refresh_from_db()
    assert own.last_used_at is not None  # signing in used it
    own_row = page[page.index(f'data-key="{own.prefix}"'):]
    assert f'<time datetime="{own.last_used_at:%Y-%m-%dT%H:%M:%SZ}">' in own_row[:own_row.index("</tr>")]


def test_an_admin_creates_a_key_for_a_member_of_their_organization_only(browsers, organization, other_organization):
    member = UserFactory(username="robot@x", role="manager", organization=organization)
    foreign = UserFactory(username="robot@y", role="manager", organization=other_organization)
    form = browsers["admin"].get("/api-keys").content.decode()
    assert f'value="{member.username}"' in form
    assert f'value="{foreign.username}"' not in form
    response = browsers["admin"].post("/api-keys", {"label": "for robot", "user": member.username})
    assert response.status_code == 200
    assert ApiKey.objects.get(prefix=_created_key(response).split("_")[1]).user == member
    keys = ApiKey.objects.count()
    refused = browsers["admin"].post("/api-keys", {"label": "not mine", "user": foreign.username})
    assert refused.status_code == 400
    assert "Choose a member from the list." in refused.content.decode()
    assert ApiKey.objects.count() == keys


def test_a_manager_cannot_create_a_key_for_someone_else(browsers, organization):
    member = UserFactory(role="user", organization=organization)
    assert 'name="user"' not in browsers["manager"].get("/api-keys").content.decode()
    response = browsers["manager"].post("/api-keys", {"label": "sneaky", "user": member.username})
    assert response.status_code == 200
    assert ApiKey.objects.get(label="sneaky").user == browsers["manager"].user  # the field is not theirs


@pytest.mark.parametrize(("data", "message"), [
    ({"label": "x" * 101}, "A label has at most 100 characters."),
    ({"expires_days": "0"}, "Enter a number of days between 1 and 3650."),
    ({"expires_days": "soon"}, "Enter a whole number of days between 1 and 3650, or leave it empty."),
    ({"max_validity_days": "4000"}, "Enter a number of days between 1 and 3650."),
    ({"allowed_cas": ["no-such-ca"]}, "Choose CAs from the list; “no-such-ca” is not one of them."),
    ({"allowed_profiles": ["nope"]}, "Choose profiles from the list; “nope” is not one of them."),
])
def test_bad_input_names_the_field_and_creates_nothing(browsers, hierarchy, data, message):
    before = (ApiKey.objects.count(), AuditEvent.objects.filter(action="api_key.create").count())
    response = browsers["admin"].post("/api-keys", data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "No key was created: correct the fields marked below." in page
    field = next(iter(data))
    assert f'class="field field-error" id="field-{field}"' in page
    assert message in page.replace("&#x27;", "'")
    assert (ApiKey.objects.count(), AuditEvent.objects.filter(action="api_key.create").count()) == before


def test_another_organizations_ca_is_not_offered_nor_accepted(browsers, other_hierarchy):
    assert other_hierarchy.intermediate.slug not in browsers["admin"].get("/api-keys").content.decode()
    keys = ApiKey.objects.count()
    response = browsers["admin"].post("/api-keys", {"allowed_cas": [other_hierarchy.intermediate.slug]})
    assert response.status_code == 400
    assert ApiKey.objects.count() == keys


def test_revocation_asks_first_then_ends_the_key_and_its_sessions(browsers, organization):
    member = UserFactory(role="user", organization=organization)
    key = ApiKeyFactory(user=member, label="to revoke")
    session = Client()
    assert session.post("/auth/session", {"api_key": key.plain_key}, content_type="application/json").status_code == 200
    confirm = browsers["admin"].get(f"/api-keys/{key.pk}/revoke")
    assert confirm.status_code == 200
    assert "Revoke this key" in confirm.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is None  # asking changed nothing
    response = browsers["admin"].post(f"/api-keys/{key.pk}/revoke")
    assert response.status_code == 302
    assert response["Location"] == "/api-keys"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert not SessionToken.objects.filter(api_key=key, revoked_at__isnull=True).exists()
    assert session.get("/certificates").status_code == 302  # the session is over: back to sign-in
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.pk)).count() == 1
    again = browsers["admin"].post(f"/api-keys/{key.pk}/revoke", follow=True)
    assert "was already revoked" in again.content.decode()
    assert AuditEvent.objects.filter(action="api_key.revoke", target_id=str(key.pk)).count() == 1


def test_nobody_revokes_a_key_they_cannot_see(browsers, organization):
    key = ApiKeyFactory(user=UserFactory(role="user", organization=organization), label="not theirs")
    for caller in ("user", "manager", "other_admin"):
        assert browsers[caller].get(f"/api-keys/{key.pk}/revoke").status_code == 404
        assert browsers[caller].post(f"/api-keys/{key.pk}/revoke").status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None
    assert browsers["user"].post(f"/api-keys/{browsers['user'].api_key.pk}/revoke").status_code == 302  # own key


def test_anonymous_callers_are_sent_to_sign_in(organization):
    key = ApiKeyFactory(user=UserFactory(role="user", organization=organization))
    for method, url in (("get", "/api-keys"), ("post", "/api-keys"), ("get", f"/api-keys/{key.pk}/revoke"),
                        ("post", f"/api-keys/{key.pk}/revoke")):
        response = getattr(Client(), method)(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/auth/login")
    assert ApiKey.objects.count() == 1
