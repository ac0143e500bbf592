"""Schema-driven fuzzing: schemathesis generates requests for every operation of /api/schema/ and runs
them in-process through the WSGI application, signed in as a global admin. No response may be a 5xx or
contradict the schema (status code, content type, body, headers).

Operations on `{id}` get real objects (a CA, an end-entity certificate with a server-generated key) for
three examples in four, so the fuzzed bodies reach the services and not only the 404 path; `ca`/`parent`
in bodies name a real CA likewise (and `root_password` of `crls/` the real password, `organization` of
`api-keys/` a real slug); the other examples keep what schemathesis generated. `max_examples`
bounds the run.
"""

from __future__ import annotations

import os
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from certificates.services.issuance import IssuanceRequest, issue_certificate
from tests.api.conftest import ROOT_PASSWORD
from tests.factories import ApiKeyFactory, UserFactory

# Bounded so the suite stays quick; PKI_FUZZ_EXAMPLES=200 PKI_FUZZ_COVERAGE=1 for a deeper local run (the
# coverage phase adds schemathesis' boundary values for every field and multiplies the run time).
MAX_EXAMPLES = int(os.environ.get("PKI_FUZZ_EXAMPLES", "25"))
COVERAGE_PHASE = os.environ.get("PKI_FUZZ_COVERAGE") == "1"
# Not judged: whether a request that breaks the schema is refused (`negative_data_rejection`) and whether
# every request that fits it succeeds (`positive_data_acceptance`). DRF, like most HTTP APIs, coerces
# "1" and 1 into each other, ignores unknown query parameters and headers, falls back to the default
# page size for a bad `page_size`; and a request that fits the schema may still be refused by a rule
# (wrong root password, a revoked certificate, another organization's CA). Everything else is judged:
# no 5xx, documented status codes and content types, bodies and headers that match their schemas,
# and authentication that is not ignored.
EXCLUDED_CHECKS = [negative_data_rejection, positive_data_acceptance]


@pytest.fixture(autouse=True)
def _no_sign_in_limit(monkeypatch):
    """Schemathesis sends every operation wrong credentials again and again from one address; what it judges
    here is the answer to them, not the sign-in limit (tests/identity/test_ratelimit.py judges that)."""
    from django.conf import settings as django_settings

    monkeypatch.setattr(django_settings, "PKI_LOGIN_RATE_PER_IP", 10**9)
    monkeypatch.setattr(django_settings, "PKI_LOGIN_RATE_PER_KEY", 10**9)


@pytest.fixture
def test_connection_kept():
    """The WSGI app runs in-process, inside the test's transaction: like Django's test client, keep
    request_started/finished from closing the database connection (PostgreSQL would lose the transaction)."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db, test_connection_kept, hierarchy, operator, organization):
    root, inter = hierarchy
    certificate = issue_certificate(inter, IssuanceRequest(profile="client", common_name="fuzz.example.com",
                                                           sans=("DNS:fuzz.example.com",)), actor=operator)
    key = ApiKeyFactory(user=UserFactory(role="admin"))
    return {"root": root, "inter": inter, "certificate": certificate, "organization": organization,
            "headers": {"Authorization": f"Bearer {key.plain_key}"}}


def _load_schema():
    """The document /api/schema/ serves, fetched in-process (public: no database access needed)."""
    from django.core.wsgi import get_wsgi_application
    from schemathesis.config import SchemathesisConfig

    config = SchemathesisConfig()
    config.projects.default.phases.coverage.enabled = COVERAGE_PHASE
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application(), config=config)


# OCSP over POST takes a DER request no generator can make up; tests/publishing judges it with openssl ocsp.
schema = _load_schema().exclude(method="POST", path="/pki/ocsp/{ca}/")


def _keep_generated(value) -> bool:
    """A quarter of the examples keep schemathesis' own ids and references (deterministically per value)."""
    return zlib.crc32(repr(value).encode()) % 4 == 0


def _aim_at_real_objects(case, world) -> None:
    path = case.operation.path
    if case.path_parameters and "id" in case.path_parameters and not _keep_generated(case.path_parameters):
        if path.startswith("/api/v1/cas/"):
            case.path_parameters["id"] = world["inter"].pk
        elif path.startswith("/api/v1/certificates/"):
            case.path_parameters["id"] = world["certificate"].pk
        elif path.startswith("/api/v1/organizations/"):
            case.path_parameters["id"] = world["organization"].pk
    if isinstance(case.body, dict) and not _keep_generated(case.body):
        if "ca" in case.body and path == "/api/v1/certificates/":
            case.body["ca"] = str(world["inter"].pk)
        if "parent" in case.body and path == "/api/v1/cas/":
            case.body["parent"] = str(world["root"].pk)
            case.body["root_password"] = ROOT_PASSWORD
        if "root_password" in case.body and path == "/api/v1/crls/":
            case.body["root_password"] = ROOT_PASSWORD
        if "organization" in case.body and path == "/api/v1/api-keys/":
            case.body["organization"] = world["organization"].slug


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_every_operation_against_its_schema(case, fuzz_world):
    _aim_at_real_objects(case, fuzz_world)
    case.call_and_validate(headers=fuzz_world["headers"], excluded_checks=EXCLUDED_CHECKS)
