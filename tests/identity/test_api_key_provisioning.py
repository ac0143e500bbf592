"""`POST /api/v1/api-keys/` with `user` and `role`: the `create_api_key` command for admins.

A global admin may give anyone any role; an organization's admin only inside their organization and never
a global admin, to its members or to new users named `NAME@<slug>`, so that what they are told never
depends on other organizations' users; managers and users get 403; nobody changes their own membership.
Every refusal creates nothing: no user, no membership, no key, no event.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from audit.actions import AuditAction
from audit.models import AuditEvent
from organizations.models import ApiKey, Membership
from organizations.services import authenticate_api_key
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/api-keys/"
# The events of changes to who may do what (refusals may be recorded too, under other actions).
ACCESS_ACTIONS = [action.value for action in AuditAction
                  if action.value.split(".")[0] in {"user", "membership", "organization", "api_key"}]


def post(client, body):
    return client.post(URL, body, content_type="application/json")


def state() -> dict[str, int]:
    """Everything a refused request must leave alone."""
    return {"users": get_user_model().objects.count(), "memberships": Membership.objects.count(),
            "keys": ApiKey.objects.count(),
            "events": AuditEvent.objects.filter(action__in=ACCESS_ACTIONS).count()}


def test_global_admin_creates_a_user_with_a_role_and_a_working_key(make_principal_client, organization):
    admin = make_principal_client("admin")
    response = post(admin, {"user": "carol", "role": "manager", "organization": organization.slug,
                            "label": "ci", "expires_days": 30})
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert (body["user"], body["role"], body["organization"], body["user_created"]) == (
        "carol", "manager", organization.slug, True)
    assert body["key"].startswith(f"pki_{body['prefix']}_")
    assert body["expires_at"] is not None
    assert body["label"] == "ci"
    membership = Membership.objects.get(user__username="carol")
    assert (membership.role, membership.organization) == ("manager", organization)
    api_key, _membership = authenticate_api_key(body["key"])
    assert api_key.pk == body["id"]
    # as the command records it, with the admin as the actor
    event = AuditEvent.objects.get(action="api_key.create", target_id=str(body["id"]))
    assert event.actor_username == admin.user.username
    assert event.organization_id == organization.pk
    assert event.details["user"] == "carol"
    assert event.details["role"] == "manager"
    assert event.details["user_created"] is True
    assert body["key"] not in str(event.details)
    # the key is shown once: the list never carries it
    assert "key" not in admin.get(URL).json()["results"][0]
    # a second key for the same user and role: rotation, no new user
    again = post(admin, {"user": "carol", "role": "manager", "organization": organization.slug})
    assert again.status_code == 201
    assert again.json()["user_created"] is False
    assert ApiKey.objects.filter(user__username="carol").count() == 2


def test_global_admin_creates_a_global_admin(make_principal_client):
    response = post(make_principal_client("admin"), {"user": "root-two", "role": "admin"})
    assert response.status_code == 201, response.content
    assert response.json()["organization"] is None
    assert Membership.objects.get(user__username="root-two").is_global_admin


def test_organization_admin_creates_in_their_own_organization(make_principal_client, organization):
    admin = make_principal_client("admin", organization)
    dora, ed = f"dora@{organization.slug}", f"ed@{organization.slug}"
    response = post(admin, {"user": dora, "role": "user"})  # the organization defaults to the admin's
    assert response.status_code == 201, response.content
    assert response.json()["organization"] == organization.slug
    named = post(admin, {"user": ed, "role": "admin", "organization": organization.slug})
    assert named.status_code == 201
    assert Membership.objects.get(user__username=ed).organization == organization  # an admin of it, not global
    created_ids = {response.json()["id"], named.json()["id"]}
    assert created_ids <= {row["id"] for row in admin.get(URL).json()["results"]}  # and sees those keys
    member = UserFactory(username="plain-name", role="manager", organization=organization)
    again = post(admin, {"user": "plain-name", "role": "manager"})  # an existing member: any name
    assert again.status_code == 201, again.content
    assert again.json()["user_created"] is False
    assert ApiKey.objects.filter(user=member).count() == 1


def test_organization_admin_names_new_users_in_their_organization(make_principal_client, organization):
    """A new user made by an organization's admin is `NAME@<slug>`: other names are not theirs to create."""
    admin = make_principal_client("admin", organization)
    before = state()
    response = post(admin, {"user": "dora", "role": "user"})
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert f"name@{organization.slug}" in response.json()["error"]["message"]
    assert state() == before


def test_organization_admin_learns_nothing_about_other_organizations_users(make_principal_client, organization,
                                                                         other_organization):
    """A name that exists elsewhere answers exactly as a name that exists nowhere, and mints nothing."""
    admin = make_principal_client("admin", organization)
    global_admin = UserFactory(username="the-root", role="admin")
    outsider = UserFactory(username="outsider", role="manager", organization=other_organization)
    realm_outsider = UserFactory(username=f"spy@{other_organization.slug}", role="user",
                                 organization=other_organization)
    loner = UserFactory(username="loner", membership=False)
    before = state()
    unknown = post(admin, {"user": "nobody-at-all", "role": "manager"})
    assert unknown.status_code == 403, unknown.content
    for name in ("the-root", "outsider", realm_outsider.username, "loner", f"ghost@{other_organization.slug}"):
        for role in ("admin", "manager", "user"):
            response = post(admin, {"user": name, "role": role})
            assert (response.status_code, response.content) == (unknown.status_code, unknown.content), name
    assert other_organization.slug not in unknown.content.decode()
    assert state() == before
    assert not ApiKey.objects.filter(user__in=[global_admin, outsider, realm_outsider, loner]).exists()


def test_an_existing_member_with_another_role_is_a_conflict_for_their_own_admin(make_principal_client,
                                                                               organization):
    admin = make_principal_client("admin", organization)
    UserFactory(username="erin", role="user", organization=organization)
    before = state()
    response = post(admin, {"user": "erin", "role": "manager"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "membership_conflict"
    assert state() == before


def test_nobody_changes_their_own_membership_through_the_api(make_principal_client, organization):
    global_admin = make_principal_client("admin")
    before = state()
    response = post(global_admin, {"user": global_admin.user.username, "role": "manager",
                                   "organization": organization.slug})
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "permission_denied"
    assert "own" in response.json()["error"]["message"]
    assert Membership.objects.get(user=global_admin.user).is_global_admin
    assert state() == before
    same = post(global_admin, {"user": global_admin.user.username, "role": "admin"})  # the same role: just a key
    assert same.status_code == 201, same.content


def test_a_name_of_an_organization_never_belongs_to_another(make_principal_client, organization,
                                                           other_organization):
    """`NAME@<slug>` is a member of that organization or of none, whoever creates it."""
    global_admin = make_principal_client("admin")
    before = state()
    for body in ({"user": f"mole@{organization.slug}", "role": "user", "organization": other_organization.slug},
                 {"user": f"Mole@{organization.slug.upper()}", "role": "user",
                  "organization": other_organization.slug},
                 {"user": f"mole@{organization.slug}", "role": "admin"}):
        response = post(global_admin, body)
        assert response.status_code == 400, (body, response.content)
        assert "user" in response.json()["error"]["fields"]
    assert state() == before
    fits = post(global_admin, {"user": f"mole@{organization.slug}", "role": "user",
                               "organization": organization.slug})
    assert fits.status_code == 201


def test_an_organization_slug_whose_names_are_taken_is_refused(make_principal_client, organization):
    from organizations.models import Organization

    UserFactory(username="early@newcomer", role="user", organization=organization)
    response = make_principal_client("admin").post("/api/v1/organizations/", {"name": "Newcomer", "slug": "newcomer"},
                                                   content_type="application/json")
    assert response.status_code == 400, response.content
    assert "slug" in response.json()["error"]["fields"]
    assert not Organization.objects.filter(slug="newcomer").exists()


def test_self_service_is_unchanged_and_reports_the_callers_role(make_principal_client, organization):
    client = make_principal_client("user", organization)
    response = post(client, {"label": "laptop"})
    assert response.status_code == 201
    body = response.json()
    assert (body["user"], body["role"], body["organization"], body["user_created"]) == (
        client.user.username, "user", organization.slug, False)


@pytest.mark.parametrize("role", ["manager", "user"])
def test_managers_and_users_may_not_create_keys_for_others(make_principal_client, organization, role):
    client = make_principal_client(role, organization)
    before = state()
    for body in ({"user": "mallory", "role": "user"},
                 {"user": "mallory", "role": "user", "organization": organization.slug},
                 {"user": client.user.username, "role": role}):  # not even for themselves this way
        response = post(client, body)
        assert response.status_code == 403, (body, response.content)
        assert response.json()["error"]["code"] == "permission_denied"
    assert state() == before


def test_organization_admin_may_not_grant_outside_their_organization(make_principal_client, organization,
                                                                      other_organization):
    admin = make_principal_client("admin", organization)
    before = state()
    other = post(admin, {"user": "spy", "role": "user", "organization": other_organization.slug})
    missing = post(admin, {"user": "spy", "role": "user", "organization": "no-such-org"})
    assert other.status_code == missing.status_code == 404  # another organization does not exist for them
    assert other.json() == missing.json()
    assert other_organization.slug not in other.content.decode()
    assert state() == before


def test_existing_membership_is_never_changed(make_principal_client, organization):
    UserFactory(username="erin", role="user", organization=organization)
    admin = make_principal_client("admin")
    before = state()
    response = post(admin, {"user": "erin", "role": "admin"})
    assert response.status_code == 409
    assert "already exists as user" in response.json()["error"]["message"]  # a global admin sees where
    assert Membership.objects.get(user__username="erin").role == "user"
    assert state() == before


@pytest.mark.parametrize(("body", "field"), [
    ({"user": "dave"}, "role"),
    ({"role": "user"}, "user"),
    ({"organization": "x"}, "user"),
    ({"user": "dave", "role": "overlord"}, "role"),
    ({"user": "", "role": "user"}, "user"),
    ({"user": "   ", "role": "admin"}, "user"),
    ({"user": "x" * 151, "role": "admin"}, "user"),
    ({"user": 7, "role": "admin"}, "user"),
    ({"user": ["dave"], "role": "admin"}, "user"),
    ({"user": "dave smith", "role": "admin"}, "user"),
    ({"user": "dave\u202e", "role": "admin"}, "user"),
    ({"user": "dave", "role": "manager"}, "organization"),  # a global admin must name one for a manager
    ({"user": "dave", "role": "user", "organization": 5}, "organization"),
    ({"user": "dave", "role": "user", "organization": ""}, "organization"),
    ({"user": "dave", "role": "admin", "expires_days": 0}, "expires_days"),
    ({"user": "dave", "role": "admin", "label": "x" * 101}, "label"),
])
def test_bad_input_is_a_400_and_creates_nothing(make_principal_client, body, field):
    client = make_principal_client("admin")
    before = state()
    response = post(client, body)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert state() == before
    assert not get_user_model().objects.filter(username__startswith="dave").exists()


def test_unknown_organization_is_a_404_and_creates_nothing(make_principal_client):
    admin = make_principal_client("admin")
    before = state()
    response = post(admin, {"user": "dave", "role": "user", "organization": "nowhere"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert state() == before


def test_a_refused_key_leaves_no_new_user_behind(make_principal_client, organization, monkeypatch):
    """User and key are one transaction: if the key cannot be made, the user made for it goes too."""
    from organizations import services

    def refuse(*args, **kwargs):
        raise services.IdentityError("A key's expiry must lie in the future.", code="invalid_expiry")

    admin = make_principal_client("admin")
    monkeypatch.setattr(services, "create_api_key", refuse)
    before = state()
    response = post(admin, {"user": "ghost", "role": "user", "organization": organization.slug})
    assert response.status_code == 400
    assert state() == before
    assert not get_user_model().objects.filter(username="ghost").exists()
