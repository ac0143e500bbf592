"""GET /api/v1/certificates/: filters (status, ca, organization, expiring_within, search), ordering, pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from certificates.models import Certificate
from certificates.services.issuance import IssuanceRequest, issue_certificate
from certificates.services.revocation import revoke_certificate
from tests.api.conftest import make_csr

pytestmark = pytest.mark.django_db

URL = "/api/v1/certificates/"


@pytest.fixture
def population(intermediate_ca, operator):
    """valid (www, api), revoked (old), expired (gone), expiring in 5 days (soon)."""
    def issue(cn: str, sans: list[str] | None = None) -> Certificate:
        return issue_certificate(intermediate_ca, IssuanceRequest(profile="server", csr=make_csr(cn, sans)),
                                 actor=operator)

    made = {name: issue(f"{name}.example.com") for name in ("www", "api", "old", "gone", "soon")}
    made["multi"] = issue("multi.example.com", ["DNS:multi.example.com", "DNS:alias.example.org"])
    revoke_certificate(made["old"], reason="superseded", actor=operator)
    now = timezone.now()
    # Time travel in the database: certificates whose validity ended, or ends soon (the rows only).
    Certificate.objects.filter(pk=made["gone"].pk).update(not_before=now - timedelta(days=40),
                                                          not_after=now - timedelta(days=1))
    Certificate.objects.filter(pk=made["soon"].pk).update(not_after=now + timedelta(days=5))
    return made


def ids(client, query: str) -> set[int]:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def end_entities(client, query: str) -> set[int]:
    return ids(client, f"kind=end_entity&{query}")


def test_status(clients, population):
    user = clients["user"]
    assert end_entities(user, "status=revoked") == {population["old"].pk}
    assert end_entities(user, "status=expired") == {population["gone"].pk}
    assert end_entities(user, "status=valid") == {population[n].pk for n in ("www", "api", "soon", "multi")}
    assert user.get(f"{URL}?status=sideways").status_code == 400


def test_expiring_within(clients, population):
    assert end_entities(clients["user"], "expiring_within=10") == {population["soon"].pk}
    assert end_entities(clients["user"], "expiring_within=0") == set()
    for bad in ("ten", "-1", "1e9", "99999999999999999999999"):
        response = clients["user"].get(f"{URL}?expiring_within={bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"


def test_ca_and_organization(clients, population, intermediate_ca, other_issued, organization, other_organization):
    admin = clients["global_admin"]
    by_id, by_slug = ids(admin, f"ca={intermediate_ca.pk}"), ids(admin, f"ca={intermediate_ca.slug}")
    assert by_id == by_slug == {c.pk for c in population.values()}
    assert ids(admin, f"organization={other_organization.slug}") >= {other_issued.pk}
    assert population["www"].pk not in ids(admin, f"organization={other_organization.pk}")
    assert ids(admin, "ca=99999999999999999999999999") == set()
    # tenancy wins over filters: another organization's rows never appear
    assert ids(clients["manager"], f"organization={other_organization.slug}") == set()


def test_search(clients, population):
    user, www = clients["user"], population["www"]
    assert ids(user, "search=WWW.exa") == {www.pk}
    assert ids(user, f"search={www.serial}") == {www.pk}
    assert ids(user, f"search={www.serial[:10].upper()}") >= {www.pk}
    colons = ":".join(www.serial[i:i + 2] for i in range(0, 12, 2))
    assert www.pk in ids(user, f"search={colons}")
    assert ids(user, f"search={www.fingerprint_sha256}") == {www.pk}
    assert ids(user, "search=alias.example.org") == {population["multi"].pk}
    assert ids(user, "search=nothing-like-this") == set()


def test_ordering(clients, population):
    rows = clients["user"].get(f"{URL}?kind=end_entity&ordering=not_after").json()["results"]
    assert rows[0]["id"] == population["gone"].pk
    rows = clients["user"].get(f"{URL}?kind=end_entity&ordering=-common_name").json()["results"]
    assert rows[0]["common_name"] == "www.example.com"
    assert clients["user"].get(f"{URL}?ordering=der").status_code == 400


def test_pages_are_bounded(clients, population):
    user = clients["user"]
    page = user.get(f"{URL}?page_size=2").json()
    assert len(page["results"]) == 2
    assert page["count"] == Certificate.objects.filter(organization=clients["user"].organization).count()
    assert "page=2" in page["next"]
    assert len(user.get(f"{URL}?page_size=100000").json()["results"]) <= 200
    assert user.get(f"{URL}?page=999999").status_code == 404
    assert user.get(f"{URL}?page=abc").status_code == 404
    assert user.get(f"{URL}?page_size=-5").status_code == 200  # DRF falls back to the default size
