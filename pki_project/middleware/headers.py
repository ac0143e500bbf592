"""Security headers on every response, static files and error pages included.

Django's SecurityMiddleware adds HSTS (over HTTPS only), nosniff and the referrer
policy, and django-csp the Content-Security-Policy; this middleware sits outside
WhiteNoise and guarantees the frame, type and referrer headers on every response,
plus `Cache-Control: no-store` on anything answered to an authenticated caller.
"""

from __future__ import annotations

_ALWAYS = {"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "strict-origin-when-cross-origin"}
_UNLESS_SET = {"Cross-Origin-Opener-Policy": "same-origin"}


def security_headers() -> dict[str, str]:
    """What every answer carries (the OCSP fast path, which bypasses the middlewares, adds them too)."""
    return {**_ALWAYS, **_UNLESS_SET}


class SecurityHeadersMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        for name, value in _ALWAYS.items():
            response[name] = value
        for name, value in _UNLESS_SET.items():
            response.headers.setdefault(name, value)
        if getattr(request, "principal", None) is not None and "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        return response
