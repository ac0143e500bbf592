"""GET /api/schema/ (OpenAPI 3, generated from the code) and GET /api/docs/ (Swagger UI, local files, strict CSP)."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db

CONTRACT_OPERATIONS = {
    ("/api/v1/organizations/", "get"), ("/api/v1/organizations/", "post"), ("/api/v1/organizations/{id}/", "get"),
    ("/api/v1/cas/", "get"), ("/api/v1/cas/", "post"), ("/api/v1/cas/{id}/", "get"), ("/api/v1/cas/{id}/crl/", "post"),
    ("/api/v1/certificates/", "get"), ("/api/v1/certificates/", "post"), ("/api/v1/certificates/{id}/", "get"),
    ("/api/v1/certificates/{id}/renew/", "post"), ("/api/v1/certificates/{id}/revoke/", "post"),
    ("/api/v1/certificates/{id}/download/", "get"), ("/api/v1/certificates/{id}/pkcs12-password/", "post"),
    ("/api/v1/audit-events/", "get"), ("/api/v1/api-keys/", "get"), ("/api/v1/api-keys/", "post"),
    ("/api/v1/api-keys/{id}/revoke/", "post"),
}


@pytest.fixture
def document() -> dict:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_is_public_openapi_3(document):
    assert document["openapi"].startswith("3.")
    assert Client().get("/api/schema/").status_code == 200  # YAML by default


def test_every_contract_operation_is_documented(document):
    documented = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert documented >= CONTRACT_OPERATIONS


def test_both_auth_schemes_are_alternatives(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["cookieAuth"]["in"] == "cookie"
    assert schemes["cookieAuth"]["name"] == "pki_session"
    for path, method in CONTRACT_OPERATIONS:
        assert document["paths"][path][method]["security"] == [{"bearerAuth": []}, {"cookieAuth": []}], path


def test_errors_are_documented_with_the_error_body(document):
    for path, operations in document["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404"):
                content = operation["responses"][status]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"} or "$ref" in content, (path, method)


def test_request_and_response_schemas(document):
    issue = document["paths"]["/api/v1/certificates/"]["post"]
    request_schema = issue["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][request_schema]["properties"]
    assert {"ca", "profile", "csr", "common_name", "sans", "key_type", "days"} <= set(properties)
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in issue["parameters"])
    detail = issue["responses"]["201"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    detail_schema = document["components"]["schemas"][detail]
    contract = {"id", "serial", "status", "not_before", "not_after", "fingerprint_sha256", "certificate_pem",
                "chain_pem"}
    assert contract <= set(detail_schema["required"])
    listing = document["paths"]["/api/v1/certificates/"]["get"]
    assert {"status", "ca", "organization", "expiring_within", "search", "page", "page_size", "ordering"} <= {
        p["name"] for p in listing["parameters"]}
    password = document["components"]["schemas"]["CertificateAuthorityCreateRequest"]["properties"]["root_password"]
    assert password["writeOnly"] is True


def test_admin_operations_are_documented_with_their_bodies(document):
    """The API equivalents of `generate_crl --all`, `verify_audit_log` and `create_api_key --user`."""
    schemas = document["components"]["schemas"]

    def properties(operation: dict, where: str) -> set[str]:
        content = operation["requestBody"] if where == "request" else operation["responses"][
            "201" if "201" in operation["responses"] else "200"]
        name = content["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        return set(schemas[name]["properties"])

    crls = document["paths"]["/api/v1/crls/"]["post"]
    assert {"force", "root_password"} <= properties(crls, "request")
    assert {"cas", "signed", "current", "skipped", "failed"} <= properties(crls, "response")
    verify = document["paths"]["/api/v1/audit-events/verify/"]["post"]
    assert properties(verify, "request") == {"checkpoint"}
    assert {"ok", "count", "broken", "new_checkpoint"} <= properties(verify, "response")
    keys = document["paths"]["/api/v1/api-keys/"]["post"]
    assert {"label", "expires_days", "user", "role", "organization"} <= properties(keys, "request")
    assert {"key", "role", "organization", "user_created"} <= properties(keys, "response")
    listing = document["paths"]["/api/v1/organizations/"]["get"]
    assert {"slug", "search", "ordering"} <= {p["name"] for p in listing["parameters"]}


def test_docs_page_is_public_local_and_csp_clean():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts
    for attributes, body in scripts:
        assert "src=" in attributes
        assert not body.strip(), "inline script"
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son\w+=", html), "inline event handler"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/static/"), asset  # no CDN
        assert finders.find(asset.removeprefix("/static/").split("?")[0]), asset
    assert 'data-schema-url="/api/schema/"' in html


def test_docs_and_schema_need_no_login_but_api_does():
    assert Client().get("/api/docs/").status_code == 200
    assert Client().get("/api/v1/certificates/").status_code == 401


def _api_operations(document):
    for path, operations in document["paths"].items():
        if path.startswith("/api/v1/"):
            for method, operation in operations.items():
                yield path, method, operation


def test_every_post_takes_an_idempotency_key_and_says_when_it_replayed(document):
    for path, method, operation in _api_operations(document):
        if method != "post":
            continue
        assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in operation["parameters"]), path
        for status, response in operation["responses"].items():
            if status.startswith("2"):
                assert "Idempotent-Replayed" in response["headers"], (path, status)
            if status == "201":
                assert "Location" in response["headers"], path


def test_rate_limits_outages_and_methods_are_documented(document):
    for path, method, operation in _api_operations(document):
        responses = operation["responses"]
        for status in ("429", "503"):
            assert "Retry-After" in responses[status]["headers"], (path, method, status)
        assert "Allow" in responses["405"]["headers"], (path, method)


def test_error_codes_are_listed_per_operation(document):
    issue = document["paths"]["/api/v1/certificates/"]["post"]["responses"]
    assert "`csr_malformed`" in issue["400"]["description"]
    assert "`idempotency_key_reused`" in issue["422"]["description"]
    revoke = document["paths"]["/api/v1/certificates/{id}/revoke/"]["post"]["responses"]
    assert "`already_revoked`" in revoke["409"]["description"]
    assert "`duplicate`" in document["paths"]["/api/v1/organizations/"]["post"]["responses"]["409"]["description"]
    assert "csr` (the subscriber holds the key) **or** `common_name`" in \
        document["paths"]["/api/v1/certificates/"]["post"]["description"]


def test_downloads_name_their_media_types_and_file(document):
    ok = document["paths"]["/api/v1/certificates/{id}/download/"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"application/x-pem-file", "application/pkix-cert",
                                  "application/pem-certificate-chain", "application/x-pkcs12"}
    assert "Content-Disposition" in ok["headers"]
    assert document["paths"]["/pki/crl/{ca}.crl"]["get"]["responses"]["200"]["content"] == {
        "application/pkix-crl": {"schema": {"type": "string", "format": "binary"}}}
    assert document["paths"]["/pki/ocsp/{ca}/"]["post"]["security"] == []


def test_ordering_is_a_comma_separated_string_as_the_server_reads_it(document):
    listing = document["paths"]["/api/v1/certificates/"]["get"]["parameters"]
    ordering = next(p for p in listing if p["name"] == "ordering")
    assert ordering["schema"]["type"] == "string"
    assert re.fullmatch(ordering["schema"]["pattern"], "-not_after,id")
    assert not re.fullmatch(ordering["schema"]["pattern"], "secret_field")


def test_the_session_route_is_documented_as_it_answers(document, make_principal_client, organization):
    from tests.factories import ApiKeyFactory, UserFactory

    operation = document["paths"]["/auth/session"]["post"]
    assert operation["security"] == []
    assert set(operation["responses"]) >= {"200", "400", "401", "429"}
    key = ApiKeyFactory(user=UserFactory(role="admin"))
    answer = Client().post("/auth/session", {"api_key": key.plain_key}, content_type="application/json").json()
    session = document["components"]["schemas"]["Session"]
    assert set(answer) == set(session["properties"]) == set(session["required"])
    assert answer["organization"] is None
    assert session["properties"]["organization"]["nullable"] is True
