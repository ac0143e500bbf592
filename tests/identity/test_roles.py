"""Roles: nobody raises their own role, and every change of who may do what is audited.

The user admin offers no superuser, staff, groups, permissions or password field and ignores them when
posted; is_staff/is_superuser/groups come from memberships alone (whoever saves a user); nobody edits their
own membership or deactivates or deletes themself, in any channel; every allowed change of a user, a
membership, an organization or an API key is one audit event with its before and after, in every channel.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import transaction

from audit.actions import AuditAction
from audit.models import AuditEvent
from organizations.models import ApiKey, Membership, Organization
from organizations.principal import Principal
from organizations.roles import Role
from organizations.services import (
    IdentityError,
    NotPermitted,
    OrganizationError,
    add_user,
    change_user,
    delete_membership,
    delete_organization,
    delete_user,
    refresh_role_groups,
    rename_organization,
    set_membership,
    sync_user_access,
)
from pki_project.actor import Actor
from tests.factories import ApiKeyFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db
User = get_user_model()
OPERATOR = Actor.operator("tests")
USERS = "/admin/auth/user/"
MEMBERSHIPS = "/admin/organizations/membership/"
ORGANIZATIONS = "/admin/organizations/organization/"
ACCESS_PREFIXES = {"user", "membership", "organization", "api_key"}
FORBIDDEN_FIELDS = {"is_superuser", "is_staff", "groups", "user_permissions", "password", "password1", "password2"}


def access_events(after_seq: int = 0) -> list[AuditEvent]:
    """Events of changes to who may do what (refusals may be recorded too, under other actions)."""
    return [event for event in AuditEvent.objects.filter(seq__gt=after_seq).order_by("seq")
            if event.action.split(".")[0] in ACCESS_PREFIXES]


def head() -> int:
    return AuditEvent.objects.newest_first().values_list("seq", flat=True).first() or 0


def snapshot() -> dict[str, object]:
    """What a refused change must leave as it was."""
    return {
        "users": sorted(User.objects.values_list("pk", "username", "email", "first_name", "last_name", "is_active",
                                                 "is_staff", "is_superuser", "password")),
        "groups": sorted(User.groups.through.objects.values_list("user_id", "group_id")),
        "permissions": sorted(User.user_permissions.through.objects.values_list("user_id", "permission_id")),
        "memberships": sorted(Membership.objects.values_list("pk", "user_id", "role", "organization_id")),
        "organizations": sorted(Organization.objects.values_list("pk", "name", "slug")),
        "keys": sorted(ApiKey.objects.values_list("pk", "revoked_at")),
        "access_events": len(access_events()),
        "admin_log": LogEntry.objects.count(),
    }


def admin_actor(principal_client) -> Actor:
    membership = principal_client.user.membership
    return Actor(principal=Principal(user_id=principal_client.user.pk, username=principal_client.user.username,
                                     role=Role(membership.role), organization_id=membership.organization_id))


# --- The user admin: no field that grants anything ----------------------------------------------------


@pytest.mark.parametrize("page", ["add", "change"])
def test_the_user_forms_offer_nothing_that_grants_access(make_principal_client, page):
    admin = make_principal_client("admin")
    target = UserFactory(role="user")
    url = f"{USERS}add/" if page == "add" else f"{USERS}{target.pk}/change/"
    response = admin.get(url)
    assert response.status_code == 200
    fields = set(response.context["adminform"].form.fields)
    assert fields & FORBIDDEN_FIELDS == set()
    html = response.content.decode()
    for name in FORBIDDEN_FIELDS:
        assert f'name="{name}"' not in html, name


def test_posting_superuser_staff_groups_and_password_changes_none_of_them(make_principal_client):
    """The issue's first step: a global admin ticks "Superuser" on a read-only member. It changes nothing."""
    admin = make_principal_client("admin")
    target = UserFactory(role="user")
    admins = refresh_role_groups()[Role.ADMIN]
    permission = Permission.objects.get(codename="delete_membership")
    before = snapshot()
    response = admin.post(f"{USERS}{target.pk}/change/", {
        "first_name": target.first_name, "last_name": target.last_name, "email": target.email, "is_active": "on",
        "is_superuser": "on", "is_staff": "on", "groups": [admins.pk], "user_permissions": [permission.pk],
        "password": "pbkdf2_sha256$1$x$y", "username": "renamed", "role": "admin", "organization": "",
    })
    assert response.status_code == 302, response.content[:2000]
    assert snapshot() == before  # nothing changed, so no event and no admin log entry either
    target.refresh_from_db()
    assert (target.is_superuser, target.is_staff, target.username) == (False, True, target.username)
    assert list(target.groups.values_list("name", flat=True)) == ["PKI users"]
    assert not target.has_usable_password()


def test_the_add_form_takes_the_role_and_ignores_flags(make_principal_client, organization):
    admin = make_principal_client("admin")
    mark = head()
    response = admin.post(f"{USERS}add/", {
        "username": "newbie", "first_name": "New", "last_name": "Bie", "email": "newbie@example.com",
        "role": "manager", "organization": organization.pk,
        "is_superuser": "on", "is_staff": "", "groups": [refresh_role_groups()[Role.ADMIN].pk],
        "password1": "Sup3r-secret!", "password2": "Sup3r-secret!",
    })
    assert response.status_code == 302, response.content[:2000]
    user = User.objects.get(username="newbie")
    assert (user.is_superuser, user.is_staff, user.has_usable_password()) == (False, True, False)
    assert list(user.groups.values_list("name", flat=True)) == ["PKI managers"]
    assert (user.membership.role, user.membership.organization) == ("manager", organization)
    events = access_events(mark)
    assert [event.action for event in events] == ["user.create", "membership.create"]
    assert all(event.actor_username == admin.user.username for event in events)
    assert events[0].details == {"username": "newbie", "before": None, "after": {
        "first_name": "New", "last_name": "Bie", "email": "newbie@example.com", "is_active": True}}
    assert events[1].details == {"user": "newbie", "before": None,
                                 "after": {"role": "manager", "organization": organization.slug}}
    assert "Sup3r" not in json.dumps([event.details for event in events])


@pytest.mark.parametrize(("data", "message"), [
    ({"username": "bad name", "role": "user"}, "Enter a valid username"),
    ({"username": "nobody", "role": "manager", "organization": ""}, "A manager needs an organization."),
    ({"username": "sneaky", "role": "user", "first_name": "Eve\u202e"}, "control or unassigned characters"),
    ({"username": "mail", "role": "admin", "email": "not-an-address"}, "Enter a valid email address"),
])
def test_bad_user_input_is_shown_and_creates_nothing(make_principal_client, data, message):
    admin = make_principal_client("admin")
    before = snapshot()
    response = admin.post(f"{USERS}add/", {"first_name": "", "last_name": "", "email": "", "organization": "",
                                           **data})
    assert response.status_code == 200  # the form again, with the reason
    assert message in response.content.decode()
    assert snapshot() == before


def test_only_global_admins_open_the_user_and_group_admin(make_principal_client, organization):
    for role in ("admin", "manager", "user"):
        client = make_principal_client(role, organization)
        for url in (USERS, f"{USERS}add/", f"{USERS}{client.user.pk}/change/", "/admin/auth/group/"):
            assert client.get(url).status_code == 403, (role, url)


def test_the_role_groups_are_read_only(make_principal_client):
    admin = make_principal_client("admin")
    group = refresh_role_groups()[Role.USER]
    permissions = sorted(group.permissions.values_list("pk", flat=True))
    assert admin.get("/admin/auth/group/").status_code == 200
    assert admin.get(f"/admin/auth/group/{group.pk}/change/").status_code == 200  # a read-only view
    assert admin.get("/admin/auth/group/add/").status_code == 403
    assert admin.post(f"/admin/auth/group/{group.pk}/change/", {
        "name": "PKI users", "permissions": list(Permission.objects.values_list("pk", flat=True))}).status_code == 403
    assert admin.post(f"/admin/auth/group/{group.pk}/delete/", {"post": "yes"}).status_code == 403
    assert sorted(group.permissions.values_list("pk", flat=True)) == permissions


# --- Flags and groups come from sync_user_access only, whoever saves -----------------------------------


def test_flags_follow_the_membership_whoever_saves_the_user(organization):
    user = UserFactory(role="user", organization=organization)
    user.is_superuser = user.is_staff = True
    user.save()
    user.refresh_from_db()
    assert (user.is_staff, user.is_superuser) == (True, False)
    outsider = User.objects.create_superuser("made-by-shell", password="Sup3r-secret!")
    outsider.refresh_from_db()
    assert (outsider.is_staff, outsider.is_superuser) == (False, False)  # no membership, no access


def test_groups_and_permissions_cannot_be_granted_directly(organization):
    user = UserFactory(role="user", organization=organization)
    before = snapshot()
    with pytest.raises(IdentityError, match="follow the membership"), transaction.atomic():
        user.groups.add(refresh_role_groups()[Role.ADMIN])
    with pytest.raises(IdentityError, match="follow the membership"), transaction.atomic():
        refresh_role_groups()[Role.ADMIN].user_set.add(user)
    with pytest.raises(IdentityError, match="follow the membership"), transaction.atomic():
        user.user_permissions.add(Permission.objects.get(codename="delete_membership"))
    assert snapshot() == before
    sync_user_access(user)  # the one way in
    assert list(user.groups.values_list("name", flat=True)) == ["PKI users"]


# --- Nobody edits their own membership ------------------------------------------------------------------


def test_a_global_admin_cannot_change_or_delete_their_own_membership_in_the_admin(make_principal_client,
                                                                                 organization):
    admin = make_principal_client("admin")
    own = admin.user.membership
    assert admin.get(f"{MEMBERSHIPS}{own.pk}/change/").status_code == 200  # read-only
    before = snapshot()
    response = admin.post(f"{MEMBERSHIPS}{own.pk}/change/", {"role": "manager", "organization": organization.pk})
    assert response.status_code == 403
    assert admin.post(f"{MEMBERSHIPS}{own.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin.post(f"{USERS}{admin.user.pk}/delete/", {"post": "yes"}).status_code == 403
    assert snapshot() == before
    assert Membership.objects.get(pk=own.pk).is_global_admin


@pytest.mark.parametrize("role", ["admin", "manager", "user"])
def test_members_cannot_change_their_own_membership_in_the_admin(make_principal_client, organization, role):
    client = make_principal_client(role, organization)
    own = client.user.membership
    before = snapshot()
    for body in ({"role": "admin", "organization": ""}, {"role": "admin", "organization": organization.pk}):
        assert client.post(f"{MEMBERSHIPS}{own.pk}/change/", body).status_code == 403
    assert client.post(f"{MEMBERSHIPS}add/", {"user": client.user.pk, "role": "admin"}).status_code == 403
    assert snapshot() == before


def test_another_global_admin_demotes_one_and_it_is_recorded(make_principal_client, organization):
    first, second = make_principal_client("admin"), make_principal_client("admin")
    membership = first.user.membership
    mark = head()
    response = second.post(f"{MEMBERSHIPS}{membership.pk}/change/", {"role": "manager",
                                                                      "organization": organization.pk})
    assert response.status_code == 302, response.content[:2000]
    first.user.refresh_from_db()
    assert (first.user.is_superuser, first.user.is_staff) == (False, True)
    assert list(first.user.groups.values_list("name", flat=True)) == ["PKI managers"]
    [event] = access_events(mark)
    assert (event.action, event.actor_username, event.organization_id, event.target_id) == (
        "membership.change", second.user.username, organization.pk, str(membership.pk))
    assert event.details == {"user": first.user.username, "before": {"role": "admin", "organization": None},
                             "after": {"role": "manager", "organization": organization.slug}}
    assert first.get("/api/v1/organizations/").json()["count"] == 1  # the demotion applies at once


def test_an_unchanged_membership_save_records_nothing(make_principal_client, organization):
    admin = make_principal_client("admin")
    membership = UserFactory(role="user", organization=organization).membership
    before = snapshot()
    response = admin.post(f"{MEMBERSHIPS}{membership.pk}/change/", {"role": "user", "organization": organization.pk})
    assert response.status_code == 302
    assert snapshot() == before


def test_membership_admin_lists_only_the_organizations_one_may_see(make_principal_client, organization):
    hidden = OrganizationFactory(name="Hidden Elsewhere Inc", slug="hidden-elsewhere")
    UserFactory(username="elsewhere-member", role="user", organization=hidden)
    page = make_principal_client("admin", organization).get(MEMBERSHIPS).content.decode()
    assert organization.name in page  # in the organization filter
    assert "Hidden Elsewhere" not in page
    assert "elsewhere-member" not in page


def test_a_membership_is_added_only_for_a_user_without_one(make_principal_client, organization):
    admin = make_principal_client("admin")
    member, loner = UserFactory(role="user", organization=organization), UserFactory(membership=False)
    choices = {str(value) for value, _label in admin.get(f"{MEMBERSHIPS}add/").context["adminform"].form
               .fields["user"].choices if value}
    assert str(loner.pk) in choices
    assert str(member.pk) not in choices
    before = snapshot()
    response = admin.post(f"{MEMBERSHIPS}add/", {"user": member.pk, "role": "admin", "organization": ""})
    assert response.status_code == 200
    assert snapshot() == before


# --- Service rules, which every channel meets -----------------------------------------------------------


def test_the_services_refuse_changes_to_ones_own_access(organization):
    admin = UserFactory(role="admin")
    actor = Actor(principal=Principal(user_id=admin.pk, username=admin.username, role=Role.ADMIN,
                                      organization_id=None))
    before = snapshot()
    for attempt in (lambda: set_membership(admin, "manager", organization, actor=actor),
                    lambda: delete_membership(admin.membership, actor=actor),
                    lambda: change_user(admin, actor=actor, is_active=False),
                    lambda: delete_user(admin, actor=actor)):
        with pytest.raises(NotPermitted, match="their own"):
            attempt()
    assert snapshot() == before
    assert change_user(admin, actor=actor, email="me@example.com") == ["email"]  # one's own profile is fine


def test_an_organization_admin_changes_no_membership(organization):
    org_admin = UserFactory(role="admin", organization=organization)
    actor = Actor(principal=Principal(user_id=org_admin.pk, username=org_admin.username, role=Role.ADMIN,
                                      organization_id=organization.pk))
    member = UserFactory(role="user", organization=organization)
    before = snapshot()
    for attempt in (lambda: set_membership(member, "manager", organization, actor=actor),
                    lambda: delete_membership(member.membership, actor=actor),
                    lambda: change_user(member, actor=actor, is_active=False),
                    lambda: rename_organization(organization, "Mine Now", actor=actor),
                    lambda: delete_organization(organization, actor=actor)):
        with pytest.raises(NotPermitted):
            attempt()
    assert snapshot() == before


def test_only_profile_and_active_flag_change_through_change_user(organization):
    user = UserFactory(role="user", organization=organization)
    before = snapshot()
    for forbidden in ({"is_superuser": True}, {"is_staff": True}, {"username": "other"}, {"password": "x"}):
        with pytest.raises(IdentityError, match="Not changeable"):
            change_user(user, actor=OPERATOR, **forbidden)
    assert snapshot() == before


def test_a_user_with_api_keys_is_deactivated_not_deleted(make_principal_client, organization):
    """Deleting would take the key records with it; the admin says so and refuses, and so does the service."""
    admin = make_principal_client("admin")
    user = UserFactory(role="user", organization=organization)
    ApiKeyFactory(user=user)
    before = snapshot()
    confirmation = admin.get(f"{USERS}{user.pk}/delete/")
    assert "API key" in confirmation.content.decode()  # "... doesn't have permission to delete: API key"
    assert admin.post(f"{USERS}{user.pk}/delete/", {"post": "yes"}).status_code == 403
    with pytest.raises(IdentityError, match="deactivate the user instead"):
        delete_user(user, actor=OPERATOR)
    assert snapshot() == before


def test_deleting_a_user_records_the_membership_and_the_user(make_principal_client, organization):
    admin = make_principal_client("admin")
    user = UserFactory(role="manager", organization=organization)
    mark = head()
    assert admin.post(f"{USERS}{user.pk}/delete/", {"post": "yes"}).status_code == 302
    events = access_events(mark)
    assert [event.action for event in events] == ["membership.delete", "user.delete"]
    assert events[0].details["before"] == {"role": "manager", "organization": organization.slug}
    assert events[1].details["before"]["is_active"] is True
    assert not User.objects.filter(pk=user.pk).exists()


def test_deactivating_oneself_is_refused_in_the_form_and_the_action(make_principal_client):
    admin = make_principal_client("admin")
    before = snapshot()
    response = admin.post(f"{USERS}{admin.user.pk}/change/", {"first_name": "", "last_name": "", "email": ""})
    assert response.status_code == 200
    assert "Nobody changes their own" in response.content.decode()
    response = admin.post(USERS, {"action": "deactivate_users", "_selected_action": [admin.user.pk]}, follow=True)
    assert "Nobody changes their own" in response.content.decode()
    assert snapshot() == before


def test_deactivation_ends_sessions_and_is_recorded(make_principal_client, organization):
    admin = make_principal_client("admin")
    victim = make_principal_client("manager", organization)
    mark = head()
    assert admin.post(USERS, {"action": "deactivate_users", "_selected_action": [victim.user.pk]}).status_code == 302
    assert victim.get("/api/v1/organizations/").status_code == 401
    [event] = access_events(mark)
    assert (event.action, event.details["after"], event.organization_id) == (
        "user.deactivate", {"is_active": False}, organization.pk)


def _change_then_fail(user, organization) -> None:
    with transaction.atomic():
        set_membership(user, "manager", organization, actor=OPERATOR)
        change_user(user, actor=OPERATOR, email="x@example.com")
        raise RuntimeError("a later step failed")


def test_a_rolled_back_change_leaves_no_event(organization):
    user = UserFactory(role="user", organization=organization)
    before = snapshot()
    with pytest.raises(RuntimeError, match="later step"):
        _change_then_fail(user, organization)
    assert snapshot() == before


# --- Organizations in the admin --------------------------------------------------------------------------


def test_organizations_are_created_renamed_and_deleted_through_the_services(make_principal_client):
    admin = make_principal_client("admin")
    mark = head()
    assert admin.post(f"{ORGANIZATIONS}add/", {"name": "Admin Made", "slug": "admin-made"}).status_code == 302
    organization = Organization.objects.get(slug="admin-made")
    response = admin.post(f"{ORGANIZATIONS}{organization.pk}/change/", {"name": "Admin Renamed",
                                                                          "slug": "sneaky-new-slug"})
    assert response.status_code == 302
    organization.refresh_from_db()
    assert (organization.name, organization.slug) == ("Admin Renamed", "admin-made")  # the slug never changes
    assert admin.post(f"{ORGANIZATIONS}{organization.pk}/delete/", {"post": "yes"}).status_code == 302
    events = access_events(mark)
    assert [event.action for event in events] == ["organization.create", "organization.rename",
                                                  "organization.delete"]
    assert events[1].details == {"slug": "admin-made", "before": {"name": "Admin Made"},
                                 "after": {"name": "Admin Renamed"}}
    assert all(event.organization_slug == "admin-made" for event in events)


def test_organization_changes_that_are_refused_change_nothing(make_principal_client, organization,
                                                              other_organization):
    admin = make_principal_client("admin")
    UserFactory(role="user", organization=organization)
    before = snapshot()
    duplicate = admin.post(f"{ORGANIZATIONS}{organization.pk}/change/", {"name": other_organization.name.upper()})
    assert duplicate.status_code == 200
    hidden = admin.post(f"{ORGANIZATIONS}{organization.pk}/change/", {"name": "Evil\u202eCorp"})
    assert hidden.status_code == 200
    assert "bidirectional control" in hidden.content.decode()
    in_use = admin.post(f"{ORGANIZATIONS}{organization.pk}/delete/", {"post": "yes"})
    assert in_use.status_code == 200  # Django's "cannot delete: protected" page
    assert snapshot() == before
    with pytest.raises(OrganizationError, match="still has members"):
        delete_organization(organization, actor=OPERATOR)
    org_admin = make_principal_client("admin", organization)
    assert org_admin.post(f"{ORGANIZATIONS}{organization.pk}/change/", {"name": "Mine"}).status_code == 403


# --- Commands and the API -------------------------------------------------------------------------------


def test_create_api_key_records_the_user_the_membership_and_the_key(organization):
    mark = head()
    out = StringIO()
    call_command("create_api_key", "--user", "cli-made", "--role", "manager", "--organization", organization.slug,
                 "--json", stdout=out)
    key = json.loads(out.getvalue())["key"]
    events = access_events(mark)
    assert [event.action for event in events] == ["user.create", "membership.create", "api_key.create"]
    assert {event.actor_label for event in events} == {"cli:create_api_key"}
    assert {event.organization_id for event in events} == {organization.pk}
    assert key not in json.dumps([event.details for event in events])
    mark = head()
    call_command("create_api_key", "--user", "cli-made", "--role", "manager", "--organization", organization.slug,
                 stdout=StringIO())
    assert [event.action for event in access_events(mark)] == ["api_key.create"]  # an existing member: a key only


def test_api_provisioning_records_the_user_and_membership_with_the_admin_as_actor(make_principal_client,
                                                                                 organization):
    admin = make_principal_client("admin", organization)
    mark = head()
    response = admin.post("/api/v1/api-keys/", {"user": f"api-made@{organization.slug}", "role": "user"},
                          content_type="application/json")
    assert response.status_code == 201, response.content
    events = access_events(mark)
    assert [event.action for event in events] == ["user.create", "membership.create", "api_key.create"]
    assert {event.actor_username for event in events} == {admin.user.username}
    assert events[1].details["after"] == {"role": "user", "organization": organization.slug}


def test_revocation_records_before_and_after(organization):
    key = ApiKeyFactory(user=UserFactory(role="user", organization=organization))
    mark = head()
    call_command("revoke_api_key", str(key.pk), stdout=StringIO())
    [event] = access_events(mark)
    assert event.action == AuditAction.API_KEY_REVOKE
    assert event.details["before"] == {"revoked_at": None}
    assert event.details["after"]["revoked_at"]
    assert event.details["user"] == key.user.username


def test_add_user_needs_a_valid_new_name(organization):
    OrganizationFactory(slug="acme-x")
    before = snapshot()
    with pytest.raises(IdentityError, match="letters, digits"):
        add_user(User(username="two words"), "user", organization, actor=OPERATOR)
    with pytest.raises(IdentityError, match="belongs to the organization 'acme-x'"):
        add_user(User(username="bob@acme-x"), "user", organization, actor=OPERATOR)
    assert snapshot() == before


@pytest.mark.slow
def test_migrate_gives_the_role_groups_their_permissions(tmp_path) -> None:
    """The post_migrate hook runs once, after the last app that has models (not a model-less app such as backups)."""
    from tests.helpers import clean_environment, run_manage

    env = clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'pki.db'}", PKI_DATA_DIR=str(tmp_path / "data"),
                            PKI_ENV_FILE=str(tmp_path / "none.env"))
    assert run_manage("migrate", "--noinput", "-v", "0", env=env).returncode == 0
    result = run_manage("shell", "-c", "from django.contrib.auth.models import Group; print(sorted((g.name, "
                        "g.permissions.count() > 0) for g in Group.objects.all()))", env=env)
    assert "[('PKI admins', True), ('PKI managers', True), ('PKI users', True)]" in result.stdout, result.stderr
