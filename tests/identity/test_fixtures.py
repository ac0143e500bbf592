"""The shared factories and fixtures work as documented."""

import pytest

from organizations.roles import Role
from tests.factories import ApiKeyFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_user_factory_roles():
    org = OrganizationFactory()
    manager = UserFactory(role="manager", organization=org)
    assert manager.membership.role == Role.MANAGER
    assert manager.membership.organization == org
    assert manager.is_staff
    assert not manager.is_superuser
    admin = UserFactory(role="admin")
    assert admin.membership.is_global_admin
    assert admin.is_superuser
    user = UserFactory()
    assert user.membership.organization is not None
    assert not UserFactory(membership=False).is_staff


def test_api_key_factory_gives_the_plain_key_once():
    key = ApiKeyFactory()
    assert key.plain_key.startswith(f"pki_{key.prefix}_")
    assert key.plain_key not in key.key_hash


@pytest.mark.parametrize("via", ["bearer", "cookie"])
def test_make_principal_client(make_principal_client, organization, via):
    client = make_principal_client("manager", organization, via=via)
    response = client.get("/api/v1/organizations/")
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == [organization.slug]
