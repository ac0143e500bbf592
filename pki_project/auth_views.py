"""Sign-in and sign-out: `GET /auth/login`, `POST|DELETE /auth/session`, `POST /auth/mtls`, `POST /auth/logout`.

`POST /auth/session` takes JSON `{"api_key": "…"}` (scripts) or the login form
(`api_key`, `next`, CSRF token). It checks the key in constant time and answers a session
JWT both in the body and in an HttpOnly cookie. A correct key always signs in; wrong ones
are counted per client IP and per key prefix and answered 429 past a limit
(`organizations.signin`). Every other refusal reads "Invalid credentials.", whatever the
reason (code `not_authenticated`, as every 401); the reason goes to the log and audit.

`POST /auth/mtls` signs in with the client certificate a trusted TLS proxy verified
(`organizations.client_certificates`); it answers like `POST /auth/session`.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from organizations.client_certificates import NoClientCertificate, sign_in_with_client_certificate
from organizations.keys import parse_prefix
from organizations.services import INVALID_CREDENTIALS, AuthenticationFailed, close_session, open_session
from organizations.signin import TooManyAttempts, sign_in_with_api_key
from pki_project.errors import json_error
from pki_project.middleware.authentication import SESSION_COOKIE
from pki_project.ratelimit import client_ip

logger = logging.getLogger(__name__)

DEFAULT_NEXT = "/"  # the dashboard, which every role may see
MAX_KEY_LENGTH = 200
TOO_MANY_ATTEMPTS = "Too many login attempts; try again later."
NO_CLIENT_CERTIFICATE = "No client certificate was presented: connect through the TLS proxy with your certificate."


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    if candidate and candidate.startswith("/") and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return DEFAULT_NEXT


def _render_login(request: HttpRequest, *, status: int = 200, error: str = "", next_url: str = "",
                  headers: dict | None = None) -> HttpResponse:
    response = render(request, "auth/login.html", {"error": error, "next": next_url}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


@never_cache
@require_GET
def login_page(request: HttpRequest) -> HttpResponse:
    """The login form (public). It posts the API key to /auth/session."""
    return _render_login(request, next_url=_safe_next(request, request.GET.get("next")))


def _set_session_cookie(response: HttpResponse, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.PKI_SESSION_TTL,
        httponly=True,
        secure=settings.PKI_COOKIE_SECURE,
        samesite="Lax",
        path="/",
    )


def _end_session(request: HttpRequest) -> None:
    principal = getattr(request, "principal", None)
    if principal is not None and principal.token_id:
        close_session(principal.token_id, request=request, principal=principal)


def _log_in(request: HttpRequest) -> HttpResponse:
    is_json = request.content_type == "application/json"
    if is_json:
        try:
            data = json.loads(request.body or b"{}")
        except (ValueError, UnicodeDecodeError):
            return json_error(400, "invalid", "The body must be a JSON object: {\"api_key\": \"…\"}.")
        if not isinstance(data, dict) or not isinstance(data.get("api_key"), str) or not data["api_key"]:
            return json_error(400, "invalid", "The body must be a JSON object: {\"api_key\": \"…\"}.",
                              fields={"api_key": ["This field is required."]})
        raw_key, next_url = data["api_key"].strip(), None
    else:
        raw_key = (request.POST.get("api_key") or "").strip()
        next_url = _safe_next(request, request.POST.get("next"))
        if not raw_key:
            return _render_login(request, status=400, error="Enter your API key.", next_url=next_url)
    raw_key = raw_key[:MAX_KEY_LENGTH]
    prefix = parse_prefix(raw_key)

    try:
        api_key, membership = sign_in_with_api_key(raw_key, request=request)
    except TooManyAttempts as error:
        logger.warning("Login rate limit hit from %s (key prefix %s)", client_ip(request), prefix or "-")
        headers = {"Retry-After": str(error.retry_after)}
        if is_json:
            return json_error(429, "rate_limited", TOO_MANY_ATTEMPTS, headers=headers)
        return _render_login(request, status=429, error=TOO_MANY_ATTEMPTS, next_url=next_url or "", headers=headers)
    except AuthenticationFailed as error:
        logger.info("Login refused from %s (key prefix %s): %s", client_ip(request), prefix or "-", error.reason)
        if is_json:
            return json_error(401, "not_authenticated", INVALID_CREDENTIALS)
        return _render_login(request, status=401, error=INVALID_CREDENTIALS, next_url=next_url or "")

    _end_session(request)  # signing in again replaces the session this browser had
    session = open_session(api_key, membership, request=request)
    return _session_response(session, membership, as_json=is_json, next_url=next_url or DEFAULT_NEXT)


def _session_response(session, membership, *, as_json: bool, next_url: str = DEFAULT_NEXT) -> HttpResponse:
    """The answer to a sign-in: the session JWT as JSON (scripts) or a redirect (forms), and the cookie."""
    if as_json:
        response = JsonResponse({
            "token": session.token,
            "role": membership.role,
            "organization": membership.organization.slug if membership.organization_id else None,
            "expires_at": session.expires_at.isoformat().replace("+00:00", "Z"),
        })
    else:
        response = HttpResponseRedirect(next_url)
    response["Cache-Control"] = "no-store"
    _set_session_cookie(response, session.token)
    return response


@never_cache
@require_POST
def mtls_login(request: HttpRequest) -> HttpResponse:
    """Sign in with the client certificate the TLS proxy verified; a form post is redirected to `next`."""
    as_json = request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data")
    next_url = DEFAULT_NEXT if as_json else _safe_next(request, request.POST.get("next"))
    try:
        session, membership = sign_in_with_client_certificate(request)
    except NoClientCertificate:
        if as_json:
            return json_error(400, "no_client_certificate", NO_CLIENT_CERTIFICATE)
        return _render_login(request, status=400, error=NO_CLIENT_CERTIFICATE, next_url=next_url)
    except TooManyAttempts as error:
        logger.warning("Client-certificate login rate limit hit from %s", client_ip(request))
        headers = {"Retry-After": str(error.retry_after)}
        if as_json:
            return json_error(429, "rate_limited", TOO_MANY_ATTEMPTS, headers=headers)
        return _render_login(request, status=429, error=TOO_MANY_ATTEMPTS, next_url=next_url, headers=headers)
    except AuthenticationFailed as error:
        logger.info("Client-certificate login refused from %s: %s", client_ip(request), error.reason)
        if as_json:
            return json_error(401, "invalid_credentials", INVALID_CREDENTIALS)
        return _render_login(request, status=401, error=INVALID_CREDENTIALS, next_url=next_url)
    _end_session(request)  # signing in again replaces the session this browser had
    return _session_response(session, membership, as_json=as_json, next_url=next_url)


def _logged_out(response: HttpResponse) -> HttpResponse:
    response.delete_cookie(SESSION_COOKIE, path="/", samesite="Lax")
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["POST", "DELETE"])
def session(request: HttpRequest) -> HttpResponse:
    """POST: sign in with an API key. DELETE: sign out (the token's `jti` is refused from now on)."""
    if request.method == "POST":
        return _log_in(request)
    _end_session(request)
    return _logged_out(JsonResponse({"status": "logged_out"}))


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    """The pages' sign-out form: end the session and go back to the login page."""
    _end_session(request)
    return _logged_out(HttpResponseRedirect("/auth/login"))
