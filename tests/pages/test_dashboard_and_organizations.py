"""The dashboard at / and the organizations pages: what each role sees, scoping, and bad input."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.models import AuditEvent
from organizations.models import Organization
from tests.pages.conftest import issue_server_certificate

pytestmark = pytest.mark.django_db


def test_anonymous_is_sent_to_the_login_page():
    for url in ("/", "/organizations", "/create-organization", "/toolbox", "/certificates/issue"):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/auth/login?next=")


def test_dashboard_counts_crl_status_and_chart(clients, hierarchy, leaf, other_leaf):
    from certificates.models import CertificateRevocationList

    # An intermediate signs its first CRLs when it is created; take them away to see "no CRL yet".
    CertificateRevocationList.objects.filter(ca=hierarchy.intermediate).delete()
    response = clients["manager"].get("/")
    assert response.status_code == 200
    counts = response.context["counts"]
    # the root, the intermediate and the leaf: all valid; the other organization's are not counted
    assert counts["valid"] == 3
    assert counts["revoked"] == 0
    assert counts["total"] == 3
    assert counts["expiring_90"] == 0
    page = response.content.decode()
    assert "Certificates by status" in page
    assert "Issuance and expiry by month" in page
    assert "<svg" in page
    assert 'class="bar-issued"' in page
    assert hierarchy.root.name in page
    assert hierarchy.intermediate.name in page
    assert "Other Root CA" not in page
    assert other_leaf.common_name not in page
    cas = {ca.slug: ca for ca in response.context["cas"]}
    assert cas[hierarchy.root.slug].crl_next_update is not None  # a root signs its first CRL when created
    assert cas[hierarchy.intermediate.slug].crl_next_update is None
    assert "no CRL yet" in page
    assert "Recent audit events" in page
    assert "ca.create" in page


def test_dashboard_is_role_shaped(clients, leaf):
    page = clients["user"].get("/").content.decode()
    assert "Issue a certificate" not in page
    assert "Recent audit events" not in page  # users read no audit trail
    assert leaf.common_name in page


def test_dashboard_queries_do_not_grow_with_certificates(clients, hierarchy, django_assert_max_num_queries):
    issue_server_certificate(hierarchy.intermediate, "a.example.com")
    client = clients["manager"]
    client.get("/")  # warm caches (sessions, content types)
    with django_assert_max_num_queries(20) as few:
        client.get("/")
    for index in range(5):
        issue_server_certificate(hierarchy.intermediate, f"n{index}.example.com", server_key=False)
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get("/")


def test_global_admin_sees_every_organization(clients, organization, other_organization):
    page = clients["global_admin"].get("/organizations").content.decode()
    assert organization.name in page
    assert other_organization.name in page
    assert "Create an organization" in page


def test_organization_members_see_only_their_own(clients, organization, other_organization):
    for role in ("user", "manager", "admin"):
        page = clients[role].get("/organizations").content.decode()
        assert organization.name in page, role
        assert other_organization.name not in page, role
        assert "Create an organization" not in page, role


def test_global_admin_creates_an_organization(clients):
    client = clients["global_admin"]
    form = client.get("/create-organization")
    assert b'name="csrfmiddlewaretoken"' in form.content
    assert b'<label for="id_name">' in form.content
    response = client.post("/create-organization", {"name": "Acme Widgets", "slug": ""}, follow=True)
    assert response.status_code == 200
    assert "Organization “Acme Widgets” (acme-widgets) was created." in response.content.decode()
    organization = Organization.objects.get(slug="acme-widgets")
    assert AuditEvent.objects.filter(action="organization.create", organization_id=organization.pk).count() == 1


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "", "slug": ""}, "This field is required."),
    ({"name": "Ok", "slug": "Not A Slug!"}, "A slug may contain only lower-case letters, digits and hyphens."),
])
def test_bad_organization_input_changes_nothing(clients, data, message):
    before = Organization.objects.count()
    response = clients["global_admin"].post("/create-organization", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert Organization.objects.count() == before


def test_duplicate_organization_is_refused(clients, organization):
    before = Organization.objects.count()
    response = clients["global_admin"].post("/create-organization", {"name": organization.name.upper()})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert Organization.objects.count() == before


def test_only_a_global_admin_creates_organizations(clients):
    before = Organization.objects.count()
    response = clients["admin"].post("/create-organization", {"name": "Sneaky"})
    assert response.status_code == 403
    assert "Only a global admin can create organizations" in response.content.decode()
    for role in ("user", "manager"):
        assert clients[role].post("/create-organization", {"name": "Sneaky"}).status_code == 403
    assert Organization.objects.count() == before


def test_a_slug_whose_usernames_belong_elsewhere_is_refused_readably(clients, organization):
    """`NAME@<slug>` names belong to that organization, so a slug they already use elsewhere is refused."""
    from tests.factories import UserFactory

    UserFactory(username="early@later-corp", role="user", organization=organization)
    before = (Organization.objects.count(), AuditEvent.objects.filter(action="organization.create").count())
    response = clients["global_admin"].post("/create-organization", {"name": "Later Corp", "slug": "later-corp"})
    assert response.status_code == 400
    assert "already belong to other organizations" in response.content.decode()
    assert (Organization.objects.count(), AuditEvent.objects.filter(action="organization.create").count()) == before
