"""The OpenAPI document at /api/schema/ says what the server does, not only what DRF sees.

drf-spectacular describes the DRF views; this postprocessing hook adds what happens around
them, for every operation (so routes added later inherit it):

* the error body on every answer the middleware or the view may give, with the codes an
  operation can answer (`OPERATION_ERROR_CODES`, on top of `COMMON_CODES`);
* 405 (with `Allow`), 429 and 503 (with `Retry-After`);
* `Idempotency-Key` on every POST, `Idempotent-Replayed` on its 2xx answers, `Location` on 201
  (`pki_project.middleware.idempotency`), `Content-Disposition` on downloads;
* `ordering` as a comma-separated string (django-filter reads `ordering=-not_after,id`);
* the plain Django routes a client needs: `/auth/session` and the public `/pki/` routes
  (CA certificates, CRLs, OCSP; RFC 5280 section 4.2.1.13 and RFC 6960 appendix A).
"""

from __future__ import annotations

import copy
import re

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "description": "Machine-readable; the vocabulary is in the README."},
            "message": {"type": "string", "description": "Readable; safe to show."},
            "fields": {"type": "object", "additionalProperties": {},
                       "description": "400 `invalid` only: the messages per field (a list, or per item/key of a "
                                      "list or object field)."},
        },
    }},
}
STATUS_DESCRIPTIONS = {
    "400": "Invalid input.",
    "401": "No credentials, or credentials that are not valid.",
    "403": "The role may not do this (rbac.json, or a rule of the operation).",
    "404": "No such object in the caller's organization (or a page past the end).",
    "405": "The path does not take this method (`Allow` lists those it takes).",
    "409": "Conflicts with the current state.",
    "413": "The body is larger than the server accepts (PKI_MAX_REQUEST_BYTES).",
    "415": "The body is not JSON: send `Content-Type: application/json`.",
    "422": "Well-formed, but a rule of the PKI refuses it.",
    "429": "Too many requests: wait `Retry-After` seconds.",
    "503": "The database or the data directory is unavailable: retry after `Retry-After` seconds, if given.",
}
COMMON_CODES = {
    "400": ["invalid", "parse_error", "bad_request"],
    "401": ["not_authenticated"],
    "403": ["permission_denied", "csrf_failed"],
    "404": ["not_found"],
    "405": ["method_not_allowed"],
    "413": ["too_large"],
    "415": ["unsupported_media_type"],
    "429": ["rate_limited"],
    "503": ["database_unavailable", "storage_unavailable", "unavailable"],
}
WRITE_CODES = {
    "400": ["invalid_idempotency_key"],
    "409": ["idempotency_in_progress", "idempotency_secret_shown"],
    "422": ["idempotency_key_reused"],
}
ISSUANCE_CODES = {
    "400": ["csr_malformed", "subject_invalid", "san_invalid", "too_many_sans", "weak_key", "unsupported_key",
            "validity_invalid", "invalid_days", "invalid_profile", "unknown_profile"],
    "403": ["unlock_failed"],
    "422": ["san_not_allowed", "name_constraints", "issuer_purpose", "validity_too_long", "root_cannot_issue",
            "policy", "revoked"],
}
OPERATION_ERROR_CODES: dict[tuple[str, str], dict[str, list[str]]] = {
    ("post", "/api/v1/certificates/"): ISSUANCE_CODES,
    ("post", "/api/v1/certificates/{id}/renew/"): {**ISSUANCE_CODES, "409": ["already_renewed"]},
    ("post", "/api/v1/certificates/{id}/revoke/"): {
        "400": ["reason_invalid", "invalid_invalidity_date", "root_password_required"], "403": ["unlock_failed"],
        "409": ["already_revoked", "ca_has_valid_children"]},
    ("post", "/api/v1/cas/"): {
        "400": ["invalid_slug", "weak_password", "name_constraints_invalid", "invalid_purposes", "path_length",
                "organization_required", "root_password_required"],
        "403": ["unlock_failed"], "409": ["duplicate"], "422": ["path_length", "issuer_purpose", "policy"]},
    ("post", "/api/v1/cas/{id}/crl/"): {"400": ["root_password_required"], "403": ["unlock_failed"]},
    ("post", "/api/v1/organizations/"): {"400": ["invalid_slug"], "409": ["duplicate"]},
    ("post", "/api/v1/api-keys/"): {
        "400": ["invalid_username", "username_realm", "invalid_role", "organization_required", "invalid_label",
                "invalid_expiry"],
        "404": ["not_found"], "409": ["membership_conflict"]},
    ("post", "/api/v1/profiles/"): {"400": ["invalid_profile", "policy_oid_invalid"], "409": ["duplicate"]},
    ("delete", "/api/v1/profiles/{id}/"): {"403": ["builtin_profile"], "409": ["profile_in_use"]},
    ("post", "/api/v1/acme/eab/"): {"400": ["organization_required"], "404": ["unknown_organization", "unknown_ca"]},
    ("get", "/api/v1/certificates/{id}/download/"): {"400": ["invalid_format"], "404": ["no_pkcs12"]},
    ("post", "/api/v1/certificates/{id}/pkcs12-password/"): {"404": ["no_pkcs12"]},
}
CONDITIONAL_RULES = {
    ("post", "/api/v1/certificates/"): "Give `csr` (the subscriber holds the key) **or** `common_name` and/or "
                                       "`sans` (the key is generated here; `key_type` applies only then). "
                                       "`days` and `hours` exclude each other.",
    ("post", "/api/v1/cas/"): "`kind: root` takes `organization` (a global admin must give it) and a new "
                              "`root_password`; `kind: intermediate` takes `parent` and that root's `root_password`.",
    ("post", "/api/v1/api-keys/"): "Without `user`: a key for the caller. With `user`: `role` is required too, and "
                                   "`organization` (a slug; never empty) applies.",
}
HEADER_TEXT = {"schema": {"type": "string"}}
RETRY_AFTER = {"Retry-After": {**HEADER_TEXT, "description": "Seconds to wait before retrying."}}
LOCATION = {"Location": {**HEADER_TEXT, "description": "The URL of what was created."}}
REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                    "description": "Present on the replay of an earlier request's answer."}}
IDEMPOTENCY_PARAMETER = {
    "in": "header", "name": "Idempotency-Key", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$"},
    "description": "A unique string per intended change: a retry with the same key and body answers the first "
                   "answer (header `Idempotent-Replayed: true`) and changes nothing (24 hours, per user).",
}


def _error_response(status: str, codes: list[str]) -> dict:
    listed = ", ".join(f"`{code}`" for code in dict.fromkeys(codes))
    response = {"description": f"{STATUS_DESCRIPTIONS[status]} Codes: {listed}.",
                "content": {"application/json": {"schema": ERROR_REF}}}
    if status in ("429", "503"):
        response["headers"] = copy.deepcopy(RETRY_AFTER)
    if status == "405":
        response["headers"] = {"Allow": {**HEADER_TEXT, "description": "The methods the path takes."}}
    return response


def _codes_for(method: str, path: str) -> dict[str, list[str]]:
    codes = {status: list(values) for status, values in COMMON_CODES.items()}
    if method in ("post", "put", "patch", "delete"):
        for status, values in WRITE_CODES.items():
            codes.setdefault(status, []).extend(values)
    for status, values in OPERATION_ERROR_CODES.get((method, path), {}).items():
        codes.setdefault(status, []).extend(values)
    if method == "get":  # reads take no body
        for status in ("413", "415"):
            codes.pop(status, None)
    return codes


def _document_errors(method: str, path: str, operation: dict) -> None:
    for status, codes in _codes_for(method, path).items():
        operation["responses"][status] = _error_response(status, codes)


def _document_write_headers(method: str, operation: dict) -> None:
    if method != "post":
        return
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name") == "Idempotency-Key" for p in parameters):
        parameters.append(copy.deepcopy(IDEMPOTENCY_PARAMETER))
    for status, response in operation["responses"].items():
        if not status.startswith("2"):
            continue
        headers = response.setdefault("headers", {})
        headers.update(copy.deepcopy(REPLAYED))
        if status == "201":
            headers.update(copy.deepcopy(LOCATION))


def _document_ordering(operation: dict) -> None:
    for parameter in operation.get("parameters", []):
        if parameter.get("name") != "ordering" or parameter.get("in") != "query":
            continue
        fields = sorted({value.lstrip("-") for value in parameter["schema"].get("items", {}).get("enum", [])})
        if not fields:
            continue
        one = "-?(" + "|".join(re.escape(field) for field in fields) + ")"
        parameter["schema"] = {"type": "string", "pattern": f"^{one}(,{one})*$"}
        parameter.pop("explode", None)
        parameter.pop("style", None)
        parameter["description"] = (f"Comma-separated fields, each optionally prefixed with `-` to reverse: "
                                    f"{', '.join(f'`{f}`' for f in fields)} (e.g. `-not_after,id`).")


def _document_downloads(operation: dict) -> None:
    for status, response in operation["responses"].items():
        content = response.get("content", {})
        if status.startswith("2") and content and all(
                media != "application/json" and schema.get("schema", {}).get("format") == "binary"
                for media, schema in content.items()):
            response.setdefault("headers", {})["Content-Disposition"] = {
                **HEADER_TEXT, "description": 'attachment; filename="…" (the certificate\'s name and format).'}


def _document_conditional_rules(method: str, path: str, operation: dict) -> None:
    rule = CONDITIONAL_RULES.get((method, path))
    if rule:
        operation["description"] = f"{operation.get('description', '')}\n\n**Rule:** {rule}".strip()


# --- Routes outside DRF ---------------------------------------------------------------------------


def _binary(*media_types: str) -> dict:
    return {media: {"schema": {"type": "string", "format": "binary"}} for media in media_types}


def _ca_parameter() -> dict:
    return {"in": "path", "name": "ca", "required": True, "schema": {"type": "string", "pattern": r"^[-a-zA-Z0-9_]+$"},
            "description": "The CA's slug."}


PLAIN_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _public_not_found() -> dict:
    """No such CA (a line of text), or no such route (the generic answer: JSON for API clients, else a page)."""
    return {"description": "No such CA, or no such path.",
            "content": {**PLAIN_TEXT, "application/json": {"schema": ERROR_REF}, "text/html": {"schema": {
                "type": "string"}}}}


def _public_answers(ok: dict, too_many: dict) -> dict:
    return {"200": ok, "304": {"description": "Not modified (`If-None-Match` / `If-Modified-Since`)."},
            "404": _public_not_found(),
            "429": {"description": "Too many requests from this address: wait `Retry-After` seconds.",
                    "headers": copy.deepcopy(RETRY_AFTER), "content": too_many},
            "503": _error_response("503", ["database_unavailable", "storage_unavailable"])}


def _public_download(summary: str, media: str, operation_id: str) -> dict:
    return {"get": {
        "operationId": operation_id, "summary": summary, "tags": ["pki"], "security": [],
        "parameters": [_ca_parameter()],
        "responses": _public_answers({"description": summary, "content": _binary(media)}, PLAIN_TEXT),
    }}


def _auth_session_paths() -> dict:
    login_request = {"type": "object", "required": ["api_key"],
                     "properties": {"api_key": {"type": "string", "minLength": 1, "writeOnly": True}}}
    session = {"type": "object", "required": ["token", "role", "organization", "expires_at"], "properties": {
        "token": {"type": "string", "description": "A session JWT: send it as `Authorization: Bearer`."},
        "role": {"type": "string", "enum": ["admin", "manager", "user"]},
        "organization": {"type": "string", "nullable": True, "description": "Slug; null: a global admin."},
        "expires_at": {"type": "string", "format": "date-time"},
    }}
    cookie = {"Set-Cookie": {**HEADER_TEXT, "description": "`pki_session=…; HttpOnly; SameSite=Lax; Path=/`."}}
    return {"/auth/session": {
        "post": {
            "operationId": "auth_session_create", "tags": ["auth"], "security": [],
            "summary": "Sign in with an API key: a session token in the body and in an HttpOnly cookie.",
            "description": "JSON only for clients (the HTML login form posts here too). Wrong keys are counted per "
                           "client address and key prefix; past the limit the answer is 429.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/SessionRequest"}}}},
            "responses": {
                "200": {"description": "Signed in.", "headers": cookie,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Session"}}}},
                "400": _error_response("400", ["invalid"]),
                "401": _error_response("401", ["not_authenticated"]),
                "413": _error_response("413", ["too_large"]),
                "429": _error_response("429", ["rate_limited"]),
                "503": _error_response("503", ["database_unavailable"]),
            },
        },
        "delete": {
            "operationId": "auth_session_destroy", "tags": ["auth"],
            "security": [{"bearerAuth": []}, {"cookieAuth": []}, {}],
            "summary": "Sign out: the session token is refused from now on and the cookie is cleared.",
            "responses": {"200": {"description": "Signed out.", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/LoggedOut"}}}}},
        },
    }}, {"SessionRequest": login_request, "Session": session,
         "LoggedOut": {"type": "object", "required": ["status"],
                       "properties": {"status": {"type": "string", "enum": ["logged_out"]}}}}


def _pki_paths() -> dict:
    ocsp = {"description": "An OCSP response (RFC 6960 section 4.2); refusals are OCSP responses too "
                           "(malformedRequest, unauthorized), never a page.",
            "content": _binary("application/ocsp-response")}
    ocsp_errors = _public_answers(ocsp, _binary("application/ocsp-response"))  # 429: an OCSP tryLater
    return {
        "/pki/ca/{ca}.crt": _public_download("The CA certificate, DER.", "application/pkix-cert", "pki_ca_der"),
        "/pki/ca/{ca}.pem": _public_download("The CA certificate, PEM.", "application/x-pem-file", "pki_ca_pem"),
        "/pki/crl/{ca}.crl": _public_download("The CA's current full CRL, DER.", "application/pkix-crl",
                                              "pki_crl_der"),
        "/pki/crl/{ca}.pem": _public_download("The CA's current full CRL, PEM.", "application/x-pem-file",
                                              "pki_crl_pem"),
        "/pki/crl/{ca}.delta.crl": _public_download("The CA's current delta CRL, DER (RFC 5280 section 5.2.4).",
                                                    "application/pkix-crl", "pki_delta_crl_der"),
        "/pki/crl/{ca}.delta.pem": _public_download("The CA's current delta CRL, PEM.", "application/x-pem-file",
                                                    "pki_delta_crl_pem"),
        "/pki/ocsp/{ca}/": {"post": {
            "operationId": "pki_ocsp_post", "tags": ["pki"], "security": [],
            "summary": "OCSP over POST (RFC 6960 appendix A.1).", "parameters": [_ca_parameter()],
            "requestBody": {"required": True, "content": _binary("application/ocsp-request")},
            "responses": ocsp_errors,
        }},
        "/pki/ocsp/{ca}/{request_b64}": {"get": {
            "operationId": "pki_ocsp_get", "tags": ["pki"], "security": [],
            "summary": "OCSP over GET: the base64 DER request, URL-encoded (RFC 6960 appendix A.1).",
            "parameters": [_ca_parameter(), {"in": "path", "name": "request_b64", "required": True,
                                             "schema": {"type": "string"}}],
            "responses": ocsp_errors,
        }},
    }


def postprocess(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            _document_errors(method, path, operation)
            _document_write_headers(method, operation)
            _document_ordering(operation)
            _document_downloads(operation)
            _document_conditional_rules(method, path, operation)
    auth_paths, auth_schemas = _auth_session_paths()
    result["paths"] = {**auth_paths, **_pki_paths(), **result.get("paths", {})}
    components.update(auth_schemas)
    return result
