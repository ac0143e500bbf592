"""Shared fixtures: a fresh temporary PKI_DATA_DIR per test, and the PostgreSQL pass.

Django's test client posts every form as multipart/form-data; a browser does so only for a
form with a file field, and the server refuses multipart on every route that takes no file
(415, `pki_project.middleware.body`). So, like a browser, the test client here sends a form
without a file as application/x-www-form-urlencoded, and one with a file as multipart. A test
that wants multipart without a file passes its own encoded body and content type.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test.client import MULTIPART_CONTENT, RequestFactory
from django.utils.http import urlencode

DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}
FORM_CONTENT = "application/x-www-form-urlencoded"


def _carries_a_file(data: object) -> bool:
    if not isinstance(data, dict):
        return False
    values = [item for value in data.values() for item in (value if isinstance(value, list | tuple) else [value])]
    return any(hasattr(value, "read") for value in values)


_django_post = RequestFactory.post


def _post_like_a_browser(self, path, data=None, content_type=MULTIPART_CONTENT, *args, **kwargs):
    if content_type is MULTIPART_CONTENT and (data is None or isinstance(data, dict)) and not _carries_a_file(data):
        return _django_post(self, path, urlencode(data or {}, doseq=True), FORM_CONTENT, *args, **kwargs)
    return _django_post(self, path, data, content_type, *args, **kwargs)


RequestFactory.post = _post_like_a_browser


def running_on_postgres() -> bool:
    return os.environ.get("PKI_TEST_DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def uses_database(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    return item.get_closest_marker("django_db") is not None or bool(fixtures & DATABASE_FIXTURES)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass run only the tests that touch the database; the rest ran on SQLite."""
    if not running_on_postgres():
        return
    selected = [item for item in items if uses_database(item)]
    deselected = [item for item in items if not uses_database(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
    items[:] = selected


def pytest_report_header(config: pytest.Config) -> str:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return f"PKI test database backend: {engine}"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, settings) -> Path:
    """Every test gets its own empty, private data directory."""
    directory = tmp_path / "pki-data"
    directory.mkdir(mode=0o700)
    settings.PKI_DATA_DIR = directory
    return directory


# --- Identity: organizations, users with roles, authenticated clients -------------------------


@pytest.fixture(autouse=True)
def _empty_cache():
    """Rate-limit counters (and any other cached value) never leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def organization(db):
    from tests.factories import OrganizationFactory

    return OrganizationFactory()


@pytest.fixture
def other_organization(db):
    from tests.factories import OrganizationFactory

    return OrganizationFactory()


@pytest.fixture
def make_principal_client(db):
    """Build a Django test client signed in as a new user with `role` in `organization`.

        client = make_principal_client("manager", organization)           # Bearer API key
        client = make_principal_client("user", organization, via="cookie")  # session cookie (JWT)
        client = make_principal_client("admin")                            # a global admin

    `via="bearer"` sends `Authorization: Bearer <API key>` on every request (no CSRF
    needed); `via="cookie"` signs in through POST /auth/session so the client holds the
    HttpOnly session cookie (Django's test client skips the CSRF token check unless
    created with `enforce_csrf_checks=True`, which the helper passes through).
    The client carries `.user`, `.api_key`, `.plain_key` and `.organization`.
    """
    from django.test import Client

    from tests.factories import ApiKeyFactory, UserFactory

    def make(role: str, organization=None, *, via: str = "bearer", enforce_csrf_checks: bool = False) -> Client:
        # Without an organization: an admin is global, other roles get a fresh organization.
        user = UserFactory(role=role) if organization is None else UserFactory(role=role, organization=organization)
        api_key = ApiKeyFactory(user=user)
        if via == "bearer":
            client = Client(enforce_csrf_checks=enforce_csrf_checks,
                            headers={"Authorization": f"Bearer {api_key.plain_key}"})
        elif via == "cookie":
            client = Client(enforce_csrf_checks=enforce_csrf_checks)
            response = client.post("/auth/session", {"api_key": api_key.plain_key}, content_type="application/json")
            assert response.status_code == 200, response.content
        else:
            raise ValueError("via is 'bearer' or 'cookie'")
        client.user, client.api_key, client.plain_key = user, api_key, api_key.plain_key
        client.organization = user.membership.organization
        return client

    return make


@pytest.fixture
def committed_audit_events_removed(transactional_db):
    """For tests whose writes commit (threads, the live server, `write_transaction` on the driver): the
    append-only triggers refuse pytest-django's flush, so the audit trail is emptied the sanctioned way afterwards."""
    yield
    from audit.maintenance import delete_all_events

    delete_all_events()
