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

Subclasses Django's `AuthenticationMiddleware` so the admin's system checks accept it.
"""

from __future__ import annotations

import logging

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.models import AnonymousUser

from organizations.services import AuthenticationFailed, authenticate_bearer, authenticate_session_token

logger = logging.getLogger(__name__)

SESSION_COOKIE = "pki_session"
BEARER = "bearer"
COOKIE = "cookie"


class PrincipalAuthenticationMiddleware(AuthenticationMiddleware):
    def process_request(self, request) -> None:
        request.principal = None
        request.auth_method = None
        request.auth_failed = False
        request.user = AnonymousUser()

        header = request.META.get("HTTP_AUTHORIZATION", "")
        cookie = request.COOKIES.get(SESSION_COOKIE, "")
        try:
            if header:
                scheme, _, credential = header.strip().partition(" ")
                credential = credential.strip()
                if scheme.lower() != "bearer" or not credential:
                    raise AuthenticationFailed("unsupported Authorization scheme")
                authenticated, method = authenticate_bearer(credential), BEARER
            elif cookie:
                authenticated, method = authenticate_session_token(cookie), COOKIE
            else:
                return
        except AuthenticationFailed as error:
            request.auth_failed = True
            logger.info("Credential refused on %s %s: %s", request.method, request.path, error.reason)
            return
        request.principal = authenticated.principal
        request.user = authenticated.user
        request.auth_method = method

        async def auser():
            return request.user

        request.auser = auser
