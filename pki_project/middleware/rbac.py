"""Role-based access control from `rbac.json` (`PKI_RBAC_FILE`), deny by default.

The file maps `"METHOD /path"` to the roles allowed, e.g.::

    "GET /api/v1/cas/{id}/": ["admin", "manager", "user"],
    "POST /auth/session": ["public"],
    "* /admin/{path*}": ["admin", "manager", "user"]

* `METHOD` is GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or `*` (any method).
* `/path` is the URL pattern as routed, with `{name}` for each captured part
  (`<int:id>` and `(?P<id>…)` both read `{id}`).
* A path ending in `{path*}` covers a whole subtree (used for the Django admin and
  static files); an exact entry wins over a subtree entry, a longer subtree over a
  shorter one, and a named method over `*`.
* Roles are admin, manager, user, or the sentinel `["public"]` (no authentication)
  which stands alone.

HEAD and OPTIONS fall back to the GET entry. A method the route does not take at all
(no entry for it, and the view does not serve it) answers 405 with `Allow` listing what
the route takes, to every caller and without an audit event: it is a client's mistake,
not a refusal of access. A method the route takes but not for the caller is refused:
401 (JSON for API clients, a redirect to the login page for browsers) when anonymous,
403 otherwise, marked `request.rbac_denied` so the central denial recorder
(`audit.denials`) writes its `rbac.deny` event. The file is read once per process, so a
change needs a restart; `pki_project.checks` validates it against the URLconf at
start-up (and this middleware refuses to start on any error).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponseRedirect
from django.urls import URLPattern, URLResolver, get_resolver

from organizations.roles import PUBLIC, RBAC_NAMES
from pki_project.errors import error_response, wants_json
from pki_project.middleware.authentication import SESSION_COOKIE

logger = logging.getLogger(__name__)

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"})
SUBTREE = "{path*}"
LOGIN_URL = "/auth/login"

# Routes that must stay reachable without authentication (when they are served) ...
MUST_BE_PUBLIC_ROUTES = frozenset(
    {("GET", "/health"), ("GET", "/ready"), ("GET", "/auth/login"), ("POST", "/auth/session")}
)
# ... and whole prefixes: every entry under them must be ["public"] (CRL, CA certificates,
# OCSP live under /pki/; static files under STATIC_URL).
MUST_BE_PUBLIC_PREFIXES = ("/pki/",)
# Prefixes that must never be public.
MUST_BE_PRIVATE_PREFIXES = ("/api/v1/", "/admin/")


# --- Route keys ------------------------------------------------------------------------------

_CONVERTER = re.compile(r"<(?:[^<>:]+:)?(?P<name>\w+)>")
_NAMED_GROUP_START = re.compile(r"\(\?P<(?P<name>\w+)>")


def _replace_named_groups(regex: str) -> str:
    """`(?P<id>[0-9]+)` becomes `{id}`; nested parentheses are skipped correctly."""
    out, index = [], 0
    while True:
        match = _NAMED_GROUP_START.search(regex, index)
        if not match:
            out.append(regex[index:])
            return "".join(out)
        out.append(regex[index:match.start()])
        depth, position = 1, match.end()
        while position < len(regex) and depth:
            char = regex[position]
            if char == "\\":
                position += 2
                continue
            depth += {"(": 1, ")": -1}.get(char, 0)
            position += 1
        out.append("{" + match.group("name") + "}")
        index = position


def route_key(route: str) -> str:
    """The rbac.json path for a routed pattern string (as in `ResolverMatch.route`)."""
    key = _replace_named_groups(route)
    key = _CONVERTER.sub(lambda m: "{" + m.group("name") + "}", key)
    key = key.replace("^", "").replace("\\Z", "").replace("$", "")
    key = key.replace("/?", "/")
    key = re.sub(r"\\(.)", r"\1", key)
    return "/" + key.lstrip("/")


def _join(prefix: str, route: str) -> str:
    return prefix + (route[1:] if route.startswith("^") else route)


@dataclass(frozen=True)
class ServedRoute:
    key: str
    methods: frozenset[str] | None  # None: the view does not say which methods it serves
    name: str = ""


def _served_methods(callback) -> frozenset[str] | None:
    """The methods a view answers, HEAD and OPTIONS included, or None when the view does not say."""
    methods = _view_methods(callback)
    if methods is None:
        return None
    extra = {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())
    return methods | extra


def _view_methods(callback) -> frozenset[str] | None:
    actions = getattr(callback, "actions", None)  # DRF ViewSet.as_view({...})
    if isinstance(actions, dict):
        return frozenset(method.upper() for method in actions)
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    if view_class is not None:
        return frozenset(
            method.upper()
            for method in getattr(view_class, "http_method_names", ())
            if method not in ("head", "options") and hasattr(view_class, method)
        )
    return None


def served_routes(urlconf: str | None = None) -> list[ServedRoute]:
    """Every route of the URLconf (recursively through includes), plus the static files subtree."""
    routes: list[ServedRoute] = []

    def walk(patterns: Iterable, prefix: str) -> None:
        for entry in patterns:
            route = _join(prefix, str(entry.pattern))
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, route)
            elif isinstance(entry, URLPattern):
                routes.append(ServedRoute(route_key(route), _view_methods(entry.callback), entry.name or ""))

    walk(get_resolver(urlconf).url_patterns, "")
    static = "/" + str(settings.STATIC_URL).strip("/") + "/"
    routes.append(ServedRoute(static + SUBTREE, frozenset({"GET"}), "static files (whitenoise)"))
    return routes


# --- The policy ------------------------------------------------------------------------------


@dataclass
class RbacPolicy:
    exact: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    subtrees: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (method, prefix)
    errors: list[str] = field(default_factory=list)

    def entries(self) -> Iterable[tuple[str, str, frozenset[str]]]:
        """(entry text, path or prefix, roles) for every entry."""
        for (method, path), roles in self.exact.items():
            yield f"{method} {path}", path, roles
        for (method, prefix), roles in self.subtrees.items():
            yield f"{method} {prefix}{SUBTREE}", prefix, roles

    def methods_for(self, key: str) -> frozenset[str]:
        """Every method some entry grants on route `key` (all of them when a `*` entry covers it)."""
        return frozenset(method for method in METHODS - {"*"} if self.roles_for(method, key) is not None)

    def roles_for(self, method: str, key: str) -> frozenset[str] | None:
        """The roles allowed for `method` on route `key`, or None when no entry covers it."""
        methods = [method, "GET"] if method in ("HEAD", "OPTIONS") else [method]
        for candidate in methods:
            for wanted in (candidate, "*"):
                if (wanted, key) in self.exact:
                    return self.exact[(wanted, key)]
        best: tuple[int, frozenset[str]] | None = None
        for (entry_method, prefix), roles in self.subtrees.items():
            if entry_method in (*methods, "*") and key.startswith(prefix):
                rank = len(prefix) * 2 + (entry_method != "*")
                if best is None or rank > best[0]:
                    best = (rank, roles)
        return best[1] if best else None


def _reject_duplicates(pairs):
    seen, duplicates = {}, []
    for name, value in pairs:
        if name in seen:
            duplicates.append(name)
        seen[name] = value
    if duplicates:
        seen["__duplicates__"] = duplicates
    return seen


def parse_policy(text: str) -> RbacPolicy:
    """Parse rbac.json text; problems are collected in `policy.errors`, never raised."""
    policy = RbacPolicy()
    try:
        data = json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as error:
        policy.errors.append(f"rbac.json is not valid JSON: {error}")
        return policy
    if not isinstance(data, dict):
        policy.errors.append("rbac.json must be a JSON object of \"METHOD /path\": [roles].")
        return policy
    for duplicate in data.pop("__duplicates__", []):
        policy.errors.append(f"'{duplicate}': the entry appears more than once.")
    for entry, roles in data.items():
        method, _, path = entry.partition(" ")
        if method not in METHODS or not path.startswith("/") or " " in path or not path:
            policy.errors.append(f"'{entry}': malformed entry; write \"METHOD /path\" (METHOD one of "
                                 f"{', '.join(sorted(METHODS))}).")
            continue
        if SUBTREE in path and not path.endswith("/" + SUBTREE):
            policy.errors.append(f"'{entry}': {SUBTREE} may only end a path, after a slash.")
            continue
        if not isinstance(roles, list) or not roles or not all(isinstance(role, str) for role in roles):
            policy.errors.append(f"'{entry}': the roles must be a non-empty list of names.")
            continue
        unknown = sorted(set(roles) - RBAC_NAMES)
        if unknown:
            policy.errors.append(f"'{entry}': unknown role(s) {', '.join(unknown)}; "
                                 f"use {', '.join(sorted(RBAC_NAMES))}.")
            continue
        if PUBLIC in roles and len(roles) > 1:
            policy.errors.append(f"'{entry}': \"public\" must stand alone.")
            continue
        if path.endswith(SUBTREE):
            policy.subtrees[(method, path[: -len(SUBTREE)])] = frozenset(roles)
        else:
            policy.exact[(method, path)] = frozenset(roles)
    return policy


@lru_cache(maxsize=8)
def load_policy(path: str) -> RbacPolicy:
    """Read and parse the file once per process (a change of rbac.json needs a restart)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        policy = RbacPolicy()
        policy.errors.append(f"PKI_RBAC_FILE {path} cannot be read: {error.strerror}.")
        return policy
    return parse_policy(text)


def current_policy() -> RbacPolicy:
    return load_policy(str(settings.PKI_RBAC_FILE))


def validate_policy(policy: RbacPolicy, routes: list[ServedRoute]) -> list[str]:
    """Every problem that must stop start-up, each naming the offending entry or route."""
    problems = list(policy.errors)
    keys = {route.key for route in routes}
    for route in routes:
        methods = route.methods if route.methods else None
        if route.key.endswith(SUBTREE):
            prefix = route.key[: -len(SUBTREE)]
            covered = any(p == prefix or p.startswith(prefix) or prefix.startswith(p)
                          for (_m, p) in policy.subtrees) or any(p.startswith(prefix) for (_m, p) in policy.exact)
            if not covered:
                problems.append(f"'{route.key}' ({route.name}) is served but has no rbac.json entry.")
            continue
        if methods is None:
            if not any(policy.roles_for(m, route.key) is not None for m in METHODS - {"*"}):
                problems.append(f"'{route.key}' is served but has no rbac.json entry (any method).")
        else:
            for method in sorted(methods):
                if policy.roles_for(method, route.key) is None:
                    problems.append(f"'{method} {route.key}' is served but has no rbac.json entry.")
    for (method, path) in policy.exact:
        if path not in keys:
            problems.append(f"'{method} {path}' matches no route of the URLconf.")
    for (method, prefix) in policy.subtrees:
        if not any(key.startswith(prefix) for key in keys):
            problems.append(f"'{method} {prefix}{SUBTREE}' matches no route of the URLconf.")
    static_prefix = "/" + str(settings.STATIC_URL).strip("/") + "/"
    public_prefixes = (*MUST_BE_PUBLIC_PREFIXES, static_prefix)
    for entry, path, roles in policy.entries():
        if path.startswith(public_prefixes) and roles != {PUBLIC}:
            problems.append(f"'{entry}' must be public (the route serves relying parties or static files).")
        if path.startswith(MUST_BE_PRIVATE_PREFIXES) and PUBLIC in roles:
            problems.append(f"'{entry}' must not be public.")
    for method, path in sorted(MUST_BE_PUBLIC_ROUTES):
        if path in keys:
            roles = policy.roles_for(method, path)
            if roles is not None and roles != {PUBLIC}:
                problems.append(f"'{method} {path}' must be public.")
    return problems


# --- The middleware --------------------------------------------------------------------------


def login_redirect(request) -> HttpResponseRedirect:
    query = urlencode({"next": request.get_full_path()}) if request.method == "GET" else ""
    return HttpResponseRedirect(f"{LOGIN_URL}?{query}" if query else LOGIN_URL)


class RbacMiddleware:
    """Enforce rbac.json on every routed request (`process_view`, once the route is known)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        problems = validate_policy(current_policy(), served_routes())
        if problems:
            raise ImproperlyConfigured("rbac.json: " + " | ".join(problems))

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        match = request.resolver_match
        key = route_key(match.route) if match is not None else request.path
        policy = current_policy()
        roles = policy.roles_for(request.method, key)
        request.rbac_route = f"{request.method} {key}"
        if roles is None:  # no entry grants this method on the route: it does not take it
            return self._method_not_allowed(request, key, self._methods_taken(policy, key, view_func))
        if PUBLIC in roles:
            return None
        principal = getattr(request, "principal", None)
        if principal is None:
            if wants_json(request):
                response = error_response(
                    request, 401, "not_authenticated",
                    "Invalid credentials." if request.auth_failed else "Authentication required.",
                    headers={"WWW-Authenticate": 'Bearer realm="pki"'},
                )
            else:
                response = login_redirect(request)
            if request.auth_failed and SESSION_COOKIE in request.COOKIES:
                response.delete_cookie(SESSION_COOKIE, path="/", samesite="Lax")  # a dead session: forget it
            return response
        if principal.role.value not in roles:
            logger.info("RBAC refused %s %s for %s (%s)", request.method, key, principal.username, principal.role)
            request.rbac_denied = True  # audit.denials records the rbac.deny event, within its budget
            return error_response(request, 403)
        return None

    @staticmethod
    def _methods_taken(policy: RbacPolicy, key: str, view_func) -> frozenset[str]:
        """What the route takes: the methods rbac.json grants on it, narrowed to what the view serves."""
        granted = policy.methods_for(key)
        served = _served_methods(view_func)
        return granted if served is None else granted & served

    @staticmethod
    def _method_not_allowed(request, key: str, allowed: frozenset[str]):
        """405 with `Allow` (RFC 9110 15.5.6): the route exists, the method does not apply to it."""
        listed = ", ".join(sorted(allowed))
        logger.info("No %s on %s (it takes %s)", request.method, key, listed or "nothing")
        message = f"{request.method} is not allowed here" + (f"; use {listed}." if listed else ".")
        return error_response(request, 405, "method_not_allowed", message, headers={"Allow": listed})
