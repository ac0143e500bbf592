"""Roles, against a live gunicorn: nobody raises their own role; every permitted change is audited.

The issue's chain was: a global admin ticks "Superuser" on a read-only member in Django's user admin, the
member then edits their own membership to admin, and the trail shows nothing. Each step is replayed here,
on SQLite and PostgreSQL, and shown refused with the stored state unchanged; and an organization's admin
probing usernames of another organization gets the very answer an unknown name gets.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from tests.trust.live import ORGANIZATION, LivePKI, query

pytestmark = pytest.mark.slow
ACCESS_PREFIXES = ("user.", "membership.", "organization.", "api_key.")


def user_id(live: LivePKI, username: str) -> int:
    return int(query(live.installation.database_url, "SELECT id FROM auth_user WHERE username = %s", [username])[0][0])


def membership_id(live: LivePKI, username: str) -> int:
    rows = query(live.installation.database_url, "SELECT m.id FROM organizations_membership m "
                 "JOIN auth_user u ON u.id = m.user_id WHERE u.username = %s", [username])
    return int(rows[0][0])


def organization_id(live: LivePKI, slug: str) -> int:
    return int(query(live.installation.database_url, "SELECT id FROM organizations_organization WHERE slug = %s",
                     [slug])[0][0])


def access_flags(live: LivePKI, username: str) -> tuple[bool, bool]:
    rows = query(live.installation.database_url, "SELECT is_staff, is_superuser FROM auth_user WHERE username = %s",
                 [username])
    return bool(rows[0][0]), bool(rows[0][1])


def access_events(live: LivePKI, after_seq: int) -> list[dict]:
    return [event for event in live.audit_events(after_seq=after_seq) if event["action"].startswith(ACCESS_PREFIXES)]


def admin_form(live: LivePKI, role: str, path: str, form: dict[str, object]):
    """A POST of an admin form, as a browser sends it (Bearer-authenticated: no CSRF token needed)."""
    return live.request("POST", path, key=role, body=urlencode(form, doseq=True).encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"})


def test_ticking_superuser_staff_and_groups_in_the_user_admin_changes_none_of_them(live: LivePKI):
    target = user_id(live, "user")
    page = live.request("GET", f"/admin/auth/user/{target}/change/", key="global-admin",
                        headers={"Accept": "text/html"})
    assert page.status == 200, page.body[:500]
    assert b'name="email"' in page.body  # the form is there, without the fields that grant access
    for name in ("is_superuser", "is_staff", "groups", "user_permissions", "password"):
        assert f'name="{name}"'.encode() not in page.body, name
    group_ids = [row[0] for row in query(live.installation.database_url, "SELECT id FROM auth_group", [])]
    permission_ids = [row[0] for row in query(live.installation.database_url, "SELECT id FROM auth_permission", [])]
    before, mark = live.fingerprint(), live.audit_head()

    response = admin_form(live, "global-admin", f"/admin/auth/user/{target}/change/", {
        "first_name": "", "last_name": "", "email": "", "is_active": "on",
        "is_superuser": "on", "is_staff": "on", "groups": group_ids, "user_permissions": permission_ids[:20],
        "password": "pbkdf2_sha256$1000000$salt$hash", "username": "user-renamed",
    })

    assert response.status == 302, response.body[:2000]
    assert live.fingerprint().differences(before) == []  # users, groups, permissions, admin log: all as they were
    assert access_flags(live, "user") == (True, False)
    assert access_events(live, mark) == []
    # and the member still cannot take the next step of the chain
    assert live.request("GET", "/api/v1/audit-events/", key="user").status == 403


@pytest.mark.parametrize("role", ["user", "manager", "admin", "global-admin"])
def test_nobody_edits_their_own_membership_in_the_admin(live: LivePKI, role: str):
    own = membership_id(live, role)
    acme = organization_id(live, ORGANIZATION)
    before, mark = live.fingerprint(), live.audit_head()

    attempts = [
        admin_form(live, role, f"/admin/organizations/membership/{own}/change/", {"role": "admin", "organization": ""}),
        admin_form(live, role, f"/admin/organizations/membership/{own}/change/",
                   {"role": "manager" if role == "global-admin" else "admin", "organization": acme}),
        admin_form(live, role, f"/admin/organizations/membership/{own}/delete/", {"post": "yes"}),
        admin_form(live, role, f"/admin/auth/user/{user_id(live, role)}/delete/", {"post": "yes"}),
    ]

    for response in attempts:
        assert (response.status, response.error_code) == (403, "permission_denied"), response.body[:500]
    assert live.fingerprint().differences(before) == []
    assert access_events(live, mark) == []


@pytest.mark.parametrize(("role", "body"), [
    ("global-admin", {"user": "global-admin", "role": "manager", "organization": ORGANIZATION}),
    ("admin", {"user": "admin", "role": "manager"}),
    ("manager", {"user": "manager", "role": "admin"}),
    ("user", {"user": "user", "role": "admin", "organization": ORGANIZATION}),
])
def test_nobody_edits_their_own_membership_through_the_api(live: LivePKI, role: str, body: dict):
    before, mark = live.fingerprint(), live.audit_head()

    response = live.request("POST", "/api/v1/api-keys/", key=role, json_body=body)

    assert (response.status, response.error_code) == (403, "permission_denied"), response.body
    assert live.fingerprint().differences(before) == []
    assert access_events(live, mark) == []


@pytest.mark.parametrize(("prober", "elsewhere"), [
    ("admin", ["other-admin", "global-admin", "other-admin@other", "nobody@other"]),
    ("other-admin", ["admin", "manager", "user", "global-admin", "manager@acme"]),
])
def test_an_organization_admin_probing_usernames_elsewhere_learns_nothing(live: LivePKI, prober: str,
                                                                          elsewhere: list[str]):
    before, mark = live.fingerprint(), live.audit_head()

    unknown = live.request("POST", "/api/v1/api-keys/", key=prober,
                           json_body={"user": "no-such-user-anywhere", "role": "user"})
    answers = {name: live.request("POST", "/api/v1/api-keys/", key=prober, json_body={"user": name, "role": "user"})
               for name in elsewhere}

    assert (unknown.status, unknown.error_code) == (403, "permission_denied")
    for name, answer in answers.items():
        assert (answer.status, answer.body) == (unknown.status, unknown.body), name
    assert live.fingerprint().differences(before) == []
    assert access_events(live, mark) == []


def test_a_permitted_membership_change_is_recorded_and_applies_at_once(live: LivePKI):
    """Last in the module: it changes the installation (and changes it back)."""
    membership, acme = membership_id(live, "user"), organization_id(live, ORGANIZATION)
    path = f"/admin/organizations/membership/{membership}/change/"
    assert live.request("GET", "/api/v1/audit-events/", key="user").status == 403
    before, mark = live.fingerprint(), live.audit_head()

    response = admin_form(live, "global-admin", path, {"role": "manager", "organization": acme})

    assert response.status == 302, response.body[:2000]
    assert set(live.fingerprint().differences(before)) == {"organizations_membership", "auth_user_groups",
                                                           "django_admin_log"}
    [event] = access_events(live, mark)
    assert (event["action"], event["outcome"], event["actor_username"], event["target_id"]) == (
        "membership.change", "success", "global-admin", str(membership))
    assert event["details"] == {"user": "user", "before": {"role": "user", "organization": ORGANIZATION},
                                "after": {"role": "manager", "organization": ORGANIZATION}}
    assert live.request("GET", "/api/v1/audit-events/", key="user").status == 200  # the new role, at once

    mark = live.audit_head()
    assert admin_form(live, "global-admin", path, {"role": "user", "organization": acme}).status == 302
    [back] = access_events(live, mark)
    assert back["details"]["after"] == {"role": "user", "organization": ORGANIZATION}
    assert live.request("GET", "/api/v1/audit-events/", key="user").status == 403
