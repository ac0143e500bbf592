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
