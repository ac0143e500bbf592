"""Organization names with bidi controls or invisible characters: refused by the service's rule on
every channel (service, API, staff page, Django admin add and change, manage.py), with nothing changed."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from organizations.models import Organization
from organizations.services import OrganizationError, create_organization

pytestmark = pytest.mark.django_db

EVIL = ["Acme\u202e Corp", "Acme\u2067 Corp", "Ac\u200dme Corp", "Acme Corp\u2028", "\ufeffAcme Corp", "Acme\x00Corp"]
ADMIN_ADD = "/admin/organizations/organization/add/"


def organizations_and_events() -> tuple[list[tuple[str, str]], int]:
    rows = list(Organization.objects.order_by("pk").values_list("name", "slug"))
    return rows, AuditEvent.objects.filter(action="organization.create").count()


@pytest.mark.parametrize("name", EVIL)
def test_the_service_refuses_the_name(name: str):
    before = organizations_and_events()
    with pytest.raises(OrganizationError) as refused:
        create_organization(name, "acme")
    assert "U+" in str(refused.value)
    assert organizations_and_events() == before


def test_the_api_refuses_the_name(make_principal_client):
    client = make_principal_client("admin")
    before = organizations_and_events()
    response = client.post("/api/v1/organizations/", {"name": EVIL[0], "slug": "acme"},
                           content_type="application/json")
    assert response.status_code == 400
    assert "RIGHT-TO-LEFT OVERRIDE" in response.json()["error"]["message"]
    assert organizations_and_events() == before


def test_the_staff_page_refuses_the_name(make_principal_client):
    client = make_principal_client("admin")
    before = organizations_and_events()
    response = client.post("/create-organization", {"name": EVIL[1], "slug": "acme"})
    assert response.status_code == 400
    assert "RIGHT-TO-LEFT ISOLATE" in response.content.decode()
    assert organizations_and_events() == before


def test_the_admin_add_and_change_forms_refuse_the_name(make_principal_client, organization):
    client = make_principal_client("admin")
    before = organizations_and_events()
    added = client.post(ADMIN_ADD, {"name": EVIL[2], "slug": "acme"})
    assert added.status_code == 200  # the form again, with its error
    assert "ZERO WIDTH JOINER" in added.content.decode()
    changed = client.post(f"/admin/organizations/organization/{organization.pk}/change/",
                          {"name": EVIL[0], "slug": organization.slug})
    assert changed.status_code == 200
    assert "RIGHT-TO-LEFT OVERRIDE" in changed.content.decode()
    assert organizations_and_events() == before
    renamed = client.post(f"/admin/organizations/organization/{organization.pk}/change/",
                          {"name": "Renamed  Corp", "slug": organization.slug})
    assert renamed.status_code == 302
    organization.refresh_from_db()
    assert organization.name == "Renamed Corp"  # the service's clean-up: one line, single spaces


def test_the_command_refuses_the_name():
    before = organizations_and_events()
    with pytest.raises(CommandError) as refused:
        call_command("create_organization", "--name", EVIL[3], "--json", stdout=StringIO(), stderr=StringIO())
    assert "LINE SEPARATOR" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert organizations_and_events() == before
