"""create_organization, create_api_key, revoke_api_key: in-process and as an operator runs them."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from organizations.models import ApiKey, Membership, Organization
from organizations.services import authenticate_api_key
from tests.factories import OrganizationFactory, UserFactory
from tests.helpers import clean_environment, run_manage

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_create_api_key_creates_user_membership_and_a_working_key(organization):
    payload = json.loads(run("create_api_key", "--user", "carol", "--role", "manager",
                             "--organization", organization.slug, "--expires-days", "30", "--label", "ci", "--json"))
    assert payload["user_created"] is True
    key = ApiKey.objects.get(pk=payload["id"])
    assert payload["key"].startswith(f"pki_{key.prefix}_")
    assert payload["key"] not in key.key_hash
    assert key.label == "ci"
    assert key.expires_at is not None
    membership = Membership.objects.get(user__username="carol")
    assert (membership.role, membership.organization) == ("manager", organization)
    assert authenticate_api_key(payload["key"])[0] == key
    # a second key for the same user: rotation with overlap
    second = json.loads(run("create_api_key", "--user", "carol", "--role", "manager",
                            "--organization", organization.slug, "--json"))
    assert second["user_created"] is False
    assert ApiKey.objects.filter(user__username="carol", revoked_at__isnull=True).count() == 2


def test_global_admin_key_without_organization():
    text = run("create_api_key", "--user", "root-admin", "--role", "admin")
    assert "shown only now" in text
    assert Membership.objects.get(user__username="root-admin").is_global_admin


@pytest.mark.parametrize(("args", "message"), [
    (["--user", "dave", "--role", "user"], "A user needs an organization."),
    (["--user", "dave", "--role", "user", "--organization", "missing"], "No organization with the slug 'missing'."),
    (["--user", "dave", "--role", "admin", "--expires-days", "0"], "--expires-days must be between 1 and 3650."),
    (["--user", "", "--role", "admin"], "A username has 1 to 150 characters."),
])
def test_create_api_key_refuses_bad_input_and_changes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ApiKey.objects.exists()
    assert not Membership.objects.filter(user__username="dave").exists()


def test_create_api_key_refuses_to_change_an_existing_membership(organization):
    UserFactory(username="erin", role="user", organization=organization)
    with pytest.raises(CommandError, match="already exists as user"):
        run("create_api_key", "--user", "erin", "--role", "admin")
    assert Membership.objects.get(user__username="erin").role == "user"
    assert not ApiKey.objects.exists()


def test_revoke_api_key_by_id_and_prefix(organization):
    payload = json.loads(run("create_api_key", "--user", "fay", "--role", "user",
                             "--organization", organization.slug, "--json"))
    result = json.loads(run("revoke_api_key", str(payload["id"]), "--json"))
    assert result["revoked"] is True
    assert result["already_revoked"] is False
    again = run("revoke_api_key", payload["prefix"])
    assert "already revoked" in again
    with pytest.raises(CommandError, match="No API key"):
        run("revoke_api_key", "999999")


def test_create_organization_command():
    payload = json.loads(run("create_organization", "--name", "Widgets Inc", "--json"))
    assert payload == {"id": payload["id"], "slug": "widgets-inc", "name": "Widgets Inc"}
    with pytest.raises(CommandError, match="already exists"):
        run("create_organization", "--name", "widgets inc")
    with pytest.raises(CommandError, match="lower-case letters"):
        run("create_organization", "--name", "X", "--slug", "Bad Slug")
    assert Organization.objects.count() == 1


def test_the_audit_trail_names_the_console_command_as_actor(organization):
    """Like the CA commands (`cli:<command>`): an operator's identity change is never anonymous in the trail."""
    from audit.models import AuditEvent

    payload = json.loads(run("create_api_key", "--user", "gil", "--role", "user",
                             "--organization", organization.slug, "--json"))
    run("revoke_api_key", str(payload["id"]))
    run("create_organization", "--name", "Audited Inc")
    actors = dict(AuditEvent.objects.filter(
        action__in=["api_key.create", "api_key.revoke", "organization.create"]).values_list("action", "actor_label"))
    assert actors == {"api_key.create": "cli:create_api_key", "api_key.revoke": "cli:revoke_api_key",
                      "organization.create": "cli:create_organization"}


def test_membership_constraints_hold_in_the_database():
    user = UserFactory(membership=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, role="manager", organization=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=user, role="superhero", organization=OrganizationFactory())
    Membership.objects.create(user=user, role="admin", organization=None)  # a global admin


@pytest.fixture(scope="module")
def operator_env(tmp_path_factory):
    directory = tmp_path_factory.mktemp("operator")
    env = clean_environment(DATABASE_URL=f"sqlite:///{directory / 'pki.db'}", PKI_DATA_DIR=str(directory / "data"))
    result = run_manage("migrate", "--noinput", env=env)
    assert result.returncode == 0, result.stderr
    return env


@pytest.mark.slow
def test_commands_as_an_operator_runs_them(operator_env):
    created = run_manage("create_organization", "--name", "Operator Org", "--json", env=operator_env)
    assert created.returncode == 0, created.stderr
    organization = json.loads(created.stdout)
    assert organization["slug"] == "operator-org"

    key = run_manage("create_api_key", "--user", "op", "--role", "manager", "--organization", "operator-org",
                     "--json", env=operator_env)
    assert key.returncode == 0, key.stderr
    payload = json.loads(key.stdout)  # exactly one JSON object
    assert set(payload) >= {"id", "key", "prefix"}
    assert payload["key"] not in key.stderr

    revoked = run_manage("revoke_api_key", str(payload["id"]), "--json", env=operator_env)
    assert json.loads(revoked.stdout)["revoked"] is True

    bad = run_manage("create_api_key", "--user", "op2", "--role", "manager", env=operator_env)
    assert bad.returncode == 1
    assert bad.stderr.strip() == "CommandError: A manager needs an organization."
    assert "Traceback" not in bad.stderr
    missing = run_manage("revoke_api_key", "nope", env=operator_env)
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr
