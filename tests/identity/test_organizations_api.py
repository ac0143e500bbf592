"""`/api/v1/organizations/` and `/api/v1/api-keys/`: scoping, creation rules, bad input changes nothing."""

from __future__ import annotations

import pytest

from organizations.models import ApiKey, Organization

pytestmark = pytest.mark.django_db
URL = "/api/v1/organizations/"


def test_global_admin_creates_an_organization(make_principal_client):
    client = make_principal_client("admin")
    response = client.post(URL, {"name": "Example Corp", "slug": "example"}, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["slug"] == "example"
    assert Organization.objects.filter(slug="example").exists()
    derived = client.post(URL, {"name": "Second Example"}, content_type="application/json")
    assert derived.json()["slug"] == "second-example"


@pytest.mark.parametrize("role", ["admin", "manager", "user"])
def test_members_of_an_organization_cannot_create_one(make_principal_client, organization, role):
    client = make_principal_client(role, organization)
    response = client.post(URL, {"name": "Sneaky"}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not Organization.objects.filter(name="Sneaky").exists()


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": " " + "x" * 200}, "name"),  # limits apply to what was sent, before normalizing
    ({"name": "Bad\x1eName"}, "name"),
    ({"name": "Tab\tName"}, "name"),
    ({"name": 5}, "name"),
    ({"name": ["list"]}, "name"),
    ({"name": "Fine", "slug": 7}, "slug"),
    ({"name": "Bad Slug", "slug": "Not A Slug!"}, "slug"),
    ({"name": "Long Slug", "slug": "a" * 65}, "slug"),
])
def test_invalid_input_is_a_400_and_creates_nothing(make_principal_client, body, field):
    client = make_principal_client("admin")
    before = Organization.objects.count()
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"]
    assert field in error["fields"]
    assert Organization.objects.count() == before


def test_malformed_json_is_a_400(make_principal_client):
    response = make_principal_client("admin").post(URL, b"{oops", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_duplicate_is_a_409(make_principal_client, organization):
    client = make_principal_client("admin")
    response = client.post(URL, {"name": organization.name.upper()}, content_type="application/json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "duplicate"
    response = client.post(URL, {"name": "Other", "slug": organization.slug}, content_type="application/json")
    assert response.status_code == 409


def test_unlisted_method_answers_405_as_json(make_principal_client, organization):
    response = make_principal_client("admin").delete(f"{URL}{organization.pk}/")
    assert response.status_code == 405  # no rbac.json entry for DELETE: the route does not take it
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert Organization.objects.filter(pk=organization.pk).exists()


def test_pagination_is_bounded(make_principal_client):
    from tests.factories import OrganizationFactory

    OrganizationFactory.create_batch(5)
    client = make_principal_client("admin")
    page = client.get(URL, {"page_size": 2}).json()
    assert len(page["results"]) == 2
    assert page["count"] >= 5
    assert len(client.get(URL, {"page_size": 200}).json()["results"]) >= 5
    assert len(client.get(URL, {"page_size": 100000}).json()["results"]) <= 200  # capped
    assert len(client.get(URL, {"page_size": 0}).json()["results"]) >= 5  # below 1: the default
    for bad in ("null", "", "2.5", "1e3", "9" * 20):
        response = client.get(URL, {"page_size": bad})
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"
    assert client.get(URL, {"page": 999}).status_code == 404


def test_filters_and_ordering(make_principal_client, organization):
    from tests.factories import OrganizationFactory

    OrganizationFactory(name="Alpha Widgets", slug="alpha-widgets")
    OrganizationFactory(name="Beta Gadgets", slug="beta")
    client = make_principal_client("admin")

    def slugs(query: str) -> list[str]:
        response = client.get(f"{URL}?{query}")
        assert response.status_code == 200, response.content
        return [row["slug"] for row in response.json()["results"]]

    assert slugs("slug=beta") == ["beta"]
    assert slugs("search=GADGET") == ["beta"]  # the name, case-insensitive
    assert slugs("search=alpha-wid") == ["alpha-widgets"]  # or the slug
    assert slugs("search=nothing-like-it") == []
    assert slugs("search=%20%20") == slugs("")  # blank: no filter
    every = slugs("page_size=200")
    assert every == sorted(every)  # by slug by default
    by_name = client.get(f"{URL}?ordering=-name&page_size=200").json()["results"]
    assert [row["name"] for row in by_name] == sorted((row["name"] for row in by_name), reverse=True)
    assert slugs("ordering=") == every  # an empty ordering keeps a stable order
    for bad in ("ordering=secret", "slug=" + "a" * 65, "search=" + "x" * 201):
        response = client.get(f"{URL}?{bad}")
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid"


def test_filters_never_widen_the_scope(make_principal_client, organization, other_organization):
    client = make_principal_client("manager", organization)
    assert client.get(URL, {"slug": other_organization.slug}).json()["results"] == []
    assert client.get(URL, {"search": other_organization.name}).json()["results"] == []
    assert [row["id"] for row in client.get(f"{URL}?ordering=-created_at").json()["results"]] == [organization.pk]


# --- Self-service API keys -------------------------------------------------------------------


def test_create_list_and_revoke_own_keys(make_principal_client):
    client = make_principal_client("user")
    response = client.post("/api/v1/api-keys/", {"label": "laptop", "expires_days": 30},
                           content_type="application/json")
    assert response.status_code == 201
    created = response.json()
    assert created["key"].startswith(f"pki_{created['prefix']}_")
    assert response["Cache-Control"] == "no-store"
    listed = client.get("/api/v1/api-keys/").json()["results"]
    assert {row["prefix"] for row in listed} == {client.api_key.prefix, created["prefix"]}
    assert all("key" not in row and "key_hash" not in row for row in listed)
    # the new key works, then is revoked (overlap: the old key still works)
    new_client = type(client)(headers={"Authorization": f"Bearer {created['key']}"})
    assert new_client.get("/api/v1/api-keys/").status_code == 200
    assert client.post(f"/api/v1/api-keys/{created['id']}/revoke/").json()["revoked_at"]
    assert new_client.get("/api/v1/api-keys/").status_code == 401
    assert client.get("/api/v1/api-keys/").status_code == 200


def test_keys_of_others_are_invisible(make_principal_client, organization):
    owner = make_principal_client("user", organization)
    manager = make_principal_client("manager", organization)
    response = manager.post(f"/api/v1/api-keys/{owner.api_key.pk}/revoke/")
    assert response.status_code == 404
    assert ApiKey.objects.get(pk=owner.api_key.pk).revoked_at is None
    assert owner.api_key.prefix not in manager.get("/api/v1/api-keys/").content.decode()
    other_admin = make_principal_client("admin", make_principal_client("user").organization)
    assert other_admin.post(f"/api/v1/api-keys/{owner.api_key.pk}/revoke/").status_code == 404
    same_org_admin = make_principal_client("admin", organization)
    assert same_org_admin.post(f"/api/v1/api-keys/{owner.api_key.pk}/revoke/").status_code == 200


@pytest.mark.parametrize("body", [{"expires_days": 0}, {"expires_days": "soon"}, {"label": "x" * 101}, {"label": 3}])
def test_bad_key_requests_create_nothing(make_principal_client, body):
    client = make_principal_client("user")
    before = ApiKey.objects.count()
    response = client.post("/api/v1/api-keys/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert ApiKey.objects.count() == before
