"""CSRF policy: only the ambient credential (the session cookie) needs CSRF protection.

* Bearer-authenticated requests carry no ambient credential: no CSRF check.
* Cookie-authenticated state-changing requests need either Django's CSRF token
  (forms: the `csrfmiddlewaretoken` field or the `X-CSRFToken` header), or
  `X-Requested-With: XMLHttpRequest` together with an `Origin` (or, without one, a
  `Referer`) of this very origin (scripts). A cross-site form can set neither the
  token nor that header. `csrf_exempt` on a view does not waive this: DRF marks
  every API view exempt, and the cookie still rides along with cross-site requests.
* Anonymous form submissions (the login form) are checked with the token as usual,
  against login CSRF; anonymous non-form bodies (JSON, OCSP requests) cannot be sent
  cross-site without a CORS preflight and pass.

Sits right before Django's own `CsrfViewMiddleware` (which stays in MIDDLEWARE: it
sets the CSRF cookie and checks what this policy hands on to it). Requests this
policy accepts are marked so Django's check skips them; cookie-authenticated writes
without the script proof are checked here with Django's own token check, even for
`csrf_exempt` views.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.middleware.csrf import CsrfViewMiddleware

from pki_project.middleware.authentication import BEARER, COOKIE

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def _enforced_view(request, *args, **kwargs):  # stands in for a csrf_exempt view when the cookie authenticates
    raise AssertionError("never called")


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request) -> bool:
    """The request's Origin (or Referer) is this site, or one of CSRF_TRUSTED_ORIGINS."""
    claimed = request.META.get("HTTP_ORIGIN")
    if not claimed or claimed == "null":
        claimed = request.META.get("HTTP_REFERER", "")
    origin = _origin_of(claimed or "")
    if origin is None:
        return False
    own = f"{request.scheme}://{request.get_host()}".lower()
    trusted = {value.lower().rstrip("/") for value in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    return origin == own or origin in trusted


def _skip_django_check(request) -> None:
    request._dont_enforce_csrf_checks = True


class CsrfPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self._token_check = CsrfViewMiddleware(get_response)

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, callback, callback_args, callback_kwargs):
        if request.method in SAFE_METHODS:
            return None
        method = getattr(request, "auth_method", None)
        if method == BEARER:
            _skip_django_check(request)
            return None
        if method == COOKIE:
            if request.headers.get("X-Requested-With") == "XMLHttpRequest" and same_origin(request):
                _skip_django_check(request)
                return None
            # Django's token check, as if the view were not csrf_exempt.
            return self._token_check.process_view(request, _enforced_view, callback_args, callback_kwargs)
        if request.content_type not in FORM_TYPES:
            _skip_django_check(request)
        return None  # anonymous forms: Django's CsrfViewMiddleware checks the token
