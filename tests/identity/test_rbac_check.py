"""rbac.json validation: the system check names every offending entry, and `manage.py check` fails."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from pki_project.checks import check_rbac
from pki_project.middleware.rbac import (
    RbacPolicy,
    ServedRoute,
    load_policy,
    parse_policy,
    route_key,
    served_routes,
    validate_policy,
)
from tests.helpers import clean_environment, run_manage

REAL_RBAC = json.loads(Path(django_settings.PKI_RBAC_FILE).read_text())


def problems_for(entries: dict) -> list[str]:
    return validate_policy(parse_policy(json.dumps(entries)), served_routes())


def test_the_shipped_rbac_json_passes():
    assert problems_for(REAL_RBAC) == []
    assert check_rbac() == []


@pytest.mark.parametrize(("route", "key"), [
    ("api/v1/cas/<int:id>/", "/api/v1/cas/{id}/"),
    ("api/v1/certificates/<int:id>/download/", "/api/v1/certificates/{id}/download/"),
    ("admin/(?P<app_label>auth|organizations)/$", "/admin/{app_label}/"),
    ("pki/ocsp/<slug:ca>/<path:request>", "/pki/ocsp/{ca}/{request}"),
    ("api/v1/^items/(?P<pk>[^/.]+)/$", "/api/v1/items/{pk}/"),
    ("pki/ca/(?P<ca>[a-z0-9-]+)\\.crt$", "/pki/ca/{ca}.crt"),
    ("health", "/health"),
])
def test_route_keys(route, key):
    assert route_key(route) == key


def test_deleting_an_entry_names_the_route():
    entries = dict(REAL_RBAC)
    del entries["GET /api/v1/organizations/{id}/"]
    problems = problems_for(entries)
    assert problems == ["'GET /api/v1/organizations/{id}/' is served but has no rbac.json entry."]


@pytest.mark.parametrize(("change", "expected"), [
    ({"GET /api/v1/organizations/": ["admin", "auditor"]}, "unknown role(s) auditor"),
    ({"GET /api/v1/organizations/": []}, "non-empty list"),
    ({"GET /api/v1/organizations/": "admin"}, "non-empty list"),
    ({"GET /api/v1/organizations/": ["public", "admin"]}, "\"public\" must stand alone"),
    ({"FETCH /api/v1/organizations/": ["admin"]}, "malformed entry"),
    ({"GET api/v1/organizations/": ["admin"]}, "malformed entry"),
    ({"GET /api/v1/nothing-here/": ["admin"]}, "'GET /api/v1/nothing-here/' matches no route"),
    ({"* /nothing/{path*}": ["admin"]}, "'* /nothing/{path*}' matches no route"),
    ({"GET /a/{path*}/b": ["admin"]}, "may only end a path"),
    ({"GET /api/v1/organizations/": ["public"]}, "'GET /api/v1/organizations/' must not be public"),
    ({"* /admin/{path*}": ["public"]}, "'* /admin/{path*}' must not be public"),
    ({"GET /auth/login": ["user"]}, "'GET /auth/login' must be public"),
    ({"POST /auth/session": ["admin"]}, "'POST /auth/session' must be public"),
    ({"GET /health": ["admin"]}, "'GET /health' must be public"),
    ({"GET /static/{path*}": ["admin"]}, "'GET /static/{path*}' must be public"),
])
def test_each_kind_of_mistake_is_named(change, expected):
    problems = problems_for({**REAL_RBAC, **change})
    assert any(expected in problem for problem in problems), problems


def test_static_files_need_an_entry():
    entries = {k: v for k, v in REAL_RBAC.items() if not k.startswith("GET /static/")}
    assert any("/static/{path*}" in problem and "no rbac.json entry" in problem for problem in problems_for(entries))


def test_pki_routes_must_be_public_when_they_land():
    routes = [ServedRoute("/pki/crl/{ca}.crl", None), ServedRoute("/pki/ocsp/{ca}/", None)]
    policy = parse_policy(json.dumps({"GET /pki/crl/{ca}.crl": ["user"], "POST /pki/ocsp/{ca}/": ["public"]}))
    problems = validate_policy(policy, routes)
    assert problems == ["'GET /pki/crl/{ca}.crl' must be public (the route serves relying parties or static files)."]


def test_duplicates_and_bad_json_are_reported():
    policy = parse_policy('{"GET /health": ["public"], "GET /health": ["public"]}')
    assert policy.errors == ["'GET /health': the entry appears more than once."]
    assert "not valid JSON" in parse_policy("{").errors[0]
    assert parse_policy("[]").errors


def test_precedence_exact_over_subtree_and_named_method_over_star():
    policy = parse_policy(json.dumps({
        "* /admin/{path*}": ["admin", "manager", "user"],
        "GET /admin/backup/{path*}": ["admin"],
        "POST /admin/backup/database": ["admin"],
        "* /admin/backup/database": ["manager"],
    }))
    assert isinstance(policy, RbacPolicy)
    assert policy.roles_for("GET", "/admin/organizations/") == {"admin", "manager", "user"}
    assert policy.roles_for("GET", "/admin/backup/x") == {"admin"}
    assert policy.roles_for("POST", "/admin/backup/database") == {"admin"}
    assert policy.roles_for("DELETE", "/admin/backup/database") == {"manager"}
    assert policy.roles_for("HEAD", "/admin/backup/x") == {"admin"}
    assert policy.roles_for("GET", "/elsewhere") is None


def test_middleware_refuses_to_start_on_a_broken_file(tmp_path, settings):
    broken = tmp_path / "rbac.json"
    entries = dict(REAL_RBAC)
    del entries["GET /ready"]
    broken.write_text(json.dumps(entries))
    settings.PKI_RBAC_FILE = broken
    load_policy.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match=re.escape("'/ready' is served but has no rbac.json entry")):
            Client().get("/health")
    finally:
        load_policy.cache_clear()


def test_editing_rbac_json_changes_access_after_a_restart(tmp_path, settings, make_principal_client):
    """Who may do what is only rbac.json: here users lose the organization list."""
    client = make_principal_client("user")
    assert client.get("/api/v1/organizations/").status_code == 200
    edited = tmp_path / "rbac.json"
    edited.write_text(json.dumps({**REAL_RBAC, "GET /api/v1/organizations/": ["admin", "manager"]}))
    settings.PKI_RBAC_FILE = edited
    try:
        assert client.get("/api/v1/organizations/").status_code == 403
    finally:
        load_policy.cache_clear()


@pytest.mark.slow
def test_manage_py_check_fails_and_names_the_deleted_entry(tmp_path):
    entries = dict(REAL_RBAC)
    del entries["POST /api/v1/organizations/"]
    rbac = tmp_path / "rbac.json"
    rbac.write_text(json.dumps(entries, indent=2))
    env = clean_environment(PKI_RBAC_FILE=str(rbac), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                            PKI_DATA_DIR=str(tmp_path / "data"))
    result = run_manage("check", env=env)
    assert result.returncode == 1
    assert "'POST /api/v1/organizations/' is served but has no rbac.json entry." in result.stderr
    assert "Traceback" not in result.stderr
    ok = run_manage("check", env=clean_environment(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
                                                   PKI_DATA_DIR=str(tmp_path / "data")))
    assert ok.returncode == 0, ok.stderr
