"""Refusals on the record, within a budget: the one place a refused request becomes an audit event.

`pki_project.middleware.denials` hands every answered request here. A refusal is

* an rbac.json refusal of a signed-in caller (`rbac.deny`; the RBAC middleware marks it);
* any other 403: a view's or a service's "not permitted", a CSRF failure (`access.deny`);
* a 404 on a route that needs a sign-in, or on a path no route serves when the caller is signed
  in (`access.deny`); the public routes' misses (a CRL or CA nobody has, a static file) and an
  anonymous caller's unknown paths are the internet's background noise and are left out;
* a 429, from the sign-in limits or the public routes' limit (`access.deny`).

A refusal its own operation already recorded as a failure (a wrong root password's `ca.unlock`)
is not recorded twice. 401s are not refusals here: a refused credential is an `auth.login`
failure (`organizations.signin`), and a request without one has no one to name. 405s are a
client's mistake about a route, not a refusal of access.

The budget, so a flood cannot flood the trail: per caller (the signed-in user, else the client IP)
and kind (rbac, 403, 404, 429), the first `PKI_AUDIT_DENIALS_PER_WINDOW` refusals of each
`PKI_AUDIT_DENIALS_WINDOW` seconds are recorded one by one; the next one is recorded as an
`access.deny_suppressed` event (phase `started`: this refusal, and that further ones are only
counted until the window ends); the caller's next refusal of that kind in a later window first
writes an `access.deny_suppressed` event with phase `ended` and how many were left out. The
counts live in the shared store (`pki_project.ratelimit.shared_store`), except for the public
`/pki/` routes, whose refusals are counted in the cache (`cache_store`) so the OCSP hot path never
waits on a database write it does not need.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from audit.actions import AuditAction
from audit.services import record_event
from organizations.roles import PUBLIC
from pki_project import ratelimit
from pki_project.errors import GENERIC_MESSAGES

logger = logging.getLogger(__name__)

RBAC, FORBIDDEN, NOT_FOUND, RATE_LIMITED = "rbac", "forbidden", "not_found", "rate_limited"
KIND_OF_STATUS = {403: FORBIDDEN, 404: NOT_FOUND, 429: RATE_LIMITED}
DENIAL_STATUSES = frozenset(KIND_OF_STATUS)
HOT_PATH_PREFIX = "/pki/"
# A window's count stays readable this long after the window, so the caller's next refusal can say
# how many were left out; a caller who comes back later than that gets no count (the started event
# and the server log remain).
SUMMARY_KEEP_SECONDS = 86400
PATH_MAX_LENGTH = 200
# A key pasted into a URL must not reach the trail: only its public prefix is kept.
_API_KEY_IN_TEXT = re.compile(r"(pki_[0-9a-f]{12})_[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Denial:
    kind: str
    status: int
    code: str
    route: str  # "METHOD /rbac/key", e.g. "GET /api/v1/cas/{id}/"
    path: str  # the request's path, any API key in it cut to its prefix


def denial_for(request: HttpRequest, response: HttpResponseBase) -> Denial | None:
    """The refusal `response` answers to `request`, or None when it is not one to record."""
    status = response.status_code
    if status not in DENIAL_STATUSES:
        return None
    method, key, resolved = _route_of(request)
    if status == 404 and not _records_not_found(request, method, key, resolved):
        return None
    kind = RBAC if getattr(request, "rbac_denied", False) else KIND_OF_STATUS[status]
    code = getattr(response, "error_code", None) or GENERIC_MESSAGES[status][0]
    path = _API_KEY_IN_TEXT.sub(r"\1_…", request.path)[:PATH_MAX_LENGTH]
    return Denial(kind=kind, status=status, code=str(code), route=f"{method} {key}", path=path)


def _route_of(request: HttpRequest) -> tuple[str, str, bool]:
    """(method, rbac key, whether a route matched): the RBAC middleware notes the key it matched."""
    noted = getattr(request, "rbac_route", "")
    if noted:
        method, _, key = noted.partition(" ")
        return method, key, True
    return request.method or "", request.path, False


def _records_not_found(request: HttpRequest, method: str, key: str, resolved: bool) -> bool:
    from pki_project.middleware.rbac import current_policy

    roles = current_policy().roles_for(method, key)
    if roles is not None:
        return PUBLIC not in roles  # a route that needs a sign-in (the public ones' misses are routine)
    return not resolved and getattr(request, "principal", None) is not None  # a signed-in caller probing


def record_denial(request: HttpRequest, denial: Denial, *, now: float | None = None) -> None:
    """Put `denial` on the record within the caller's budget for its kind (see the module docstring)."""
    budget, window = settings.PKI_AUDIT_DENIALS_PER_WINDOW, settings.PKI_AUDIT_DENIALS_WINDOW
    store = ratelimit.cache_store() if request.path.startswith(HOT_PATH_PREFIX) else ratelimit.shared_store()
    counted = ratelimit.count(f"deny:{denial.kind}:{_caller(request)}", window=window, store=store,
                              keep=SUMMARY_KEEP_SECONDS, now=now)
    if counted.count == 1 and counted.previous_window_start is not None and counted.previous_count > budget + 1:
        _record_suppressed_count(request, denial, counted, budget, window)
    if counted.count <= budget:
        _record_one(request, denial)
    elif counted.count == budget + 1:
        _record_suppression_start(request, denial, counted, budget, window)
    else:
        logger.info("Refusal not recorded (over the budget): %s %s -> %s %s", denial.route, denial.path,
                    denial.status, denial.code)


def _caller(request: HttpRequest) -> str:
    principal = getattr(request, "principal", None)
    if principal is not None:
        return f"user:{principal.user_id}"
    return f"ip:{ratelimit.client_ip(request)}"


def _actor_label(request: HttpRequest) -> str:
    """Names an anonymous caller: the key prefix it tried when it tried one (the IP is in source_ip)."""
    if getattr(request, "principal", None) is not None:
        return ""
    return getattr(request, "refused_key_prefix", "") or "anonymous"


def _record_one(request: HttpRequest, denial: Denial) -> None:
    action = AuditAction.RBAC_DENY if denial.kind == RBAC else AuditAction.ACCESS_DENY
    record_event(action, request=request, outcome="failure", target_type="route", target_id=denial.route,
                 actor_label=_actor_label(request),
                 details={"status": denial.status, "code": denial.code, "path": denial.path})


def _record_about_caller(request: HttpRequest, details: dict) -> None:
    """An `access.deny_suppressed` event: its target is the caller whose refusals of a kind it counts."""
    record_event(AuditAction.ACCESS_DENY_SUPPRESSED, request=request, outcome="failure", target_type="caller",
                 target_id=_caller(request), actor_label=_actor_label(request), details=details)


def _record_suppression_start(request: HttpRequest, denial: Denial, counted: ratelimit.WindowCount,
                              budget: int, window: int) -> None:
    _record_about_caller(request, {
        "phase": "started", "kind": denial.kind, "route": denial.route, "status": denial.status,
        "code": denial.code, "path": denial.path, "recorded": budget, "window_seconds": window,
        "until": _timestamp(counted.window_start + window),
    })


def _record_suppressed_count(request: HttpRequest, denial: Denial, counted: ratelimit.WindowCount,
                             budget: int, window: int) -> None:
    previous_start = int(counted.previous_window_start or 0)
    _record_about_caller(request, {
        "phase": "ended", "kind": denial.kind, "suppressed": counted.previous_count - budget - 1,
        "recorded": budget, "window_start": _timestamp(previous_start),
        "window_end": _timestamp(previous_start + window),
    })


def _timestamp(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).isoformat().replace("+00:00", "Z")
