"""Sign-in limits: a correct credential always passes; wrong ones are counted, limited and audited.

Why it is built this way: an API key's secret carries 256 random bits, so no number of guesses
finds one and a limit protects no key by itself. What a limit can do is slow a flood, keep it off
the audit trail beyond a bounded number of events, and say so to the client (429, Retry-After).
What it must never do is lock out the key's owner: the key prefix is public (the admin, the audit
trail), so a limit that refused *every* attempt with a prefix would let anyone lock any user out
with ten wrong secrets. So the credential is checked first, and:

* a correct credential signs in (or authenticates the request), whatever wrong attempts anyone
  made with its prefix or from its address, and is never counted;
* a wrong one counts once against its client IP (`PKI_LOGIN_RATE_PER_IP`) and, when it carries a
  well-formed key prefix, against that prefix (`PKI_LOGIN_RATE_PER_KEY`), per
  `PKI_LOGIN_RATE_WINDOW` seconds, in the store every worker shares
  (`pki_project.ratelimit.shared_store`). Within both limits it is refused with 401 and an
  `auth.login` failure event (the key prefix, the reason, the door; never the secret); past
  either it is refused with 429, and the central denial recorder (`audit.denials`) puts the 429s
  on the record within its own budget.

Both doors count in the same per-IP bucket: `POST /auth/session` and a refused
`Authorization` header (a Bearer API key or session JWT, or an unsupported scheme). A refused
session *cookie* is not counted: a cookie that expired or was logged out is what every browser
presents sooner or later, and a forged one would need the JWT secret.
"""

from __future__ import annotations

from typing import NoReturn

from django.conf import settings
from django.http import HttpRequest

from organizations.keys import looks_like_api_key, parse_prefix
from organizations.models import ApiKey, Membership
from organizations.services import (
    Authenticated,
    AuthenticationFailed,
    authenticate_api_key,
    authenticate_bearer,
    record_failed_login,
)
from pki_project import ratelimit

LOGIN = "login"
BEARER = "bearer"


class TooManyAttempts(AuthenticationFailed):
    """A wrong credential past a limit: answer 429 with `Retry-After`. Never raised for a correct one."""

    def __init__(self, retry_after: int, *, reason: str, prefix: str | None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.prefix = prefix


def sign_in_with_api_key(raw_key: str, *, request: HttpRequest) -> tuple[ApiKey, Membership]:
    """`POST /auth/session`: the key's (api_key, membership), or `AuthenticationFailed` / `TooManyAttempts`."""
    try:
        return authenticate_api_key(raw_key)
    except AuthenticationFailed as error:
        refuse_credential(error, request=request, prefix=parse_prefix(raw_key), via=LOGIN)


def authenticate_bearer_credential(credential: str, *, request: HttpRequest) -> Authenticated:
    """An `Authorization: Bearer` credential (API key or session JWT), counted and audited when refused."""
    try:
        return authenticate_bearer(credential)
    except AuthenticationFailed as error:
        prefix = parse_prefix(credential) if looks_like_api_key(credential) else None
        refuse_credential(error, request=request, prefix=prefix, via=BEARER)


def refuse_credential(error: AuthenticationFailed, *, request: HttpRequest, prefix: str | None,
                      via: str) -> NoReturn:
    """Count a refused credential; raise `TooManyAttempts` past a limit, else record it and raise `error`."""
    retry_after = _count_failure(ratelimit.client_ip(request), prefix)
    if retry_after:
        # The denial recorder names the attacked key prefix on the 429's event (it has no other way to know it).
        request.refused_key_prefix = prefix or ""
        raise TooManyAttempts(retry_after, reason=error.reason, prefix=prefix) from None
    record_failed_login(request=request, prefix=prefix, reason=error.reason, via=via)
    raise error


def _count_failure(ip: str, prefix: str | None) -> int:
    """Count one wrong attempt; the Retry-After seconds when it is past a limit, else 0.

    An attempt already refused for its address is not counted against the prefix, so one
    address cannot fill the prefix table beyond its own limit per window.
    """
    store, window = ratelimit.shared_store(), settings.PKI_LOGIN_RATE_WINDOW
    result = ratelimit.hit(f"login-ip:{ip}", limit=settings.PKI_LOGIN_RATE_PER_IP, window=window, store=store)
    if not result.allowed:
        return result.retry_after
    if prefix:
        result = ratelimit.hit(f"login-key:{prefix}", limit=settings.PKI_LOGIN_RATE_PER_KEY, window=window,
                               store=store)
        if not result.allowed:
            return result.retry_after
    return 0
