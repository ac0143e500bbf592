"""Who is asking: a Bearer credential (API key or session JWT) or the session cookie.

Sets on every request:

* `request.principal`: a `Principal`, or None for an anonymous request;
* `request.user`: the matching Django user, or `AnonymousUser`;
* `request.auth_method`: `"bearer"`, `"cookie"` or None (the CSRF policy reads it);
* `request.auth_failed`: True when a credential was presented and refused.

A refused credential never raises here: the request continues as anonymous, so a
stale cookie does not lock anyone out of the login page. The RBAC middleware then
answers 401 (or a redirect to the login page) wherever a role is needed. The reason
for a refusal goes to the server log only; the client always reads "Invalid credentials.".

A refused `Authorization` header is a failed sign-in like a wrong key at the login form
(`organizations.signin`): counted per client IP (and key prefix), audited as an
`auth.login` failure, and past the limit answered here with 429 and `Retry-After`. A
correct Bearer credential is never counted nor refused by the limits. A refused cookie
is not counted (an expired session is not an attack).

Subclasses Django's `AuthenticationMiddleware` so the admin's system checks accept it.
"""

from __future__ import annotations

import logging

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser

from organizations.services import AuthenticationFailed, authenticate_session_token
from organizations.signin import BEARER as BEARER_DOOR
from organizations.signin import TooManyAttempts, authenticate_bearer_credential, refuse_credential
from pki_project.errors import error_response

logger = logging.getLogger(__name__)

SESSION_COOKIE = "pki_session"
BEARER = "bearer"
COOKIE = "cookie"
# Where `Authorization: Basic` is the view's own credential, not a sign-in (EST, RFC 7030 3.2.3: the
# password is an enrollment token): this middleware leaves it to the view.
VIEW_BASIC_AUTH_PREFIXES = ("/.well-known/est/",)


def _is_view_credential(request, header: str) -> bool:
    return header.strip()[:6].lower() == "basic " and request.path.startswith(VIEW_BASIC_AUTH_PREFIXES)


class PrincipalAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request) -> None:
        request.principal = None
        request.auth_method = None
        request.auth_failed = False
        request.user = AnonymousUser()

        header = request.META.get("HTTP_AUTHORIZATION", "")
        if header and _is_view_credential(request, header):
            header = ""
        cookie = request.COOKIES.get(SESSION_COOKIE, "")
        try:
            if header:
                authenticated, method = _authenticate_header(request, header), BEARER
            elif cookie:
                authenticated, method = authenticate_session_token(cookie), COOKIE
            else:
                return None
        except TooManyAttempts as error:
            request.auth_failed = True
            logger.warning("Credential refused past the rate limit on %s %s: %s", request.method, request.path,
                           error.reason)
            return error_response(request, 429, "rate_limited",
                                  "Too many failed authentication attempts; try again later.",
                                  headers={"Retry-After": str(error.retry_after)})
        except AuthenticationFailed as error:
            request.auth_failed = True
            logger.info("Credential refused on %s %s: %s", request.method, request.path, error.reason)
            return None
        request.principal = authenticated.principal
        request.user = authenticated.user
        request.auth_method = method

        async def auser():
            return request.user

        request.auser = auser
        return None


def _authenticate_header(request, header: str):
    """`Authorization: Bearer <API key or session JWT>`; any other scheme is a refused credential too."""
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        refuse_credential(AuthenticationFailed("unsupported Authorization scheme"), request=request, prefix=None,
                          via=BEARER_DOOR)
    return authenticate_bearer_credential(credential, request=request)
