"""factory-boy factories for the identity models, for every app's tests.

    org = OrganizationFactory()
    manager = UserFactory(role="manager", organization=org)   # user + membership (+ admin flags)
    admin = UserFactory(role="admin")                           # a global admin (no organization)
    key = ApiKeyFactory(user=manager)                           # key.plain_key: the full key, once
    expired = ApiKeyFactory(user=manager, expires_at=past)      # overrides applied after creation

Users and keys go through the real services (`set_membership`, `create_api_key`), so
they are exactly what the product creates. Only `create` is supported (not `build`).
"""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from factory.django import DjangoModelFactory

from organizations.models import ApiKey, Organization
from organizations.services import create_api_key, set_membership
from pki_project.actor import Actor

_UNSET = object()


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Organization {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class UserFactory(DjangoModelFactory):
    """`role` ("admin", "manager", "user"; default "user") and `organization`.

    Without `organization`, an admin is global and other roles get a fresh organization.
    Pass `organization=None` with `role="admin"` to be explicit about a global admin,
    `membership=False` for a user without any role.
    """

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user-{n}")

    @classmethod
    def _create(cls, model_class, *args, role="user", organization=_UNSET, membership=True, **kwargs):
        user = model_class(*args, **kwargs)
        user.set_unusable_password()
        user.save()
        if membership:
            if organization is _UNSET:
                organization = None if role == "admin" else OrganizationFactory()
            set_membership(user, role, organization, actor=Actor.operator("tests"))
        return user


class ApiKeyFactory(DjangoModelFactory):
    """An API key made by `create_api_key`; `.plain_key` holds the full key (the only copy).

    `expires_at`, `revoked_at` and `last_used_at` given here are written after creation,
    so tests can make expired or revoked keys directly.
    """

    class Meta:
        model = ApiKey

    user = factory.SubFactory(UserFactory)
    label = factory.Sequence(lambda n: f"test key {n}")

    @classmethod
    def _create(cls, model_class, *args, user, label="", **overrides):
        created = create_api_key(user, label=label)
        api_key = created.api_key
        if overrides:
            ApiKey.objects.filter(pk=api_key.pk).update(**overrides)
            api_key.refresh_from_db()
        api_key.plain_key = created.key
        return api_key
