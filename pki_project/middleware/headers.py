"""Security headers on every response, static files and error pages included.

Django's SecurityMiddleware adds HSTS (over HTTPS only), nosniff and the referrer
policy, and django-csp the Content-Security-Policy; this middleware sits outside
WhiteNoise and guarantees the frame, type and referrer headers on every response,
plus `Cache-Control: no-store` on anything answered to an authenticated caller.
"""

from __future__ import annotations


class SecurityHeadersMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response["X-Frame-Options"] = "DENY"
        response["X-Content-Type-Options"] = "nosniff"
        response["Referrer-Policy"] = "strict-origin-when-cross-origin"
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if getattr(request, "principal", None) is not None and "Cache-Control" not in response:
            response["Cache-Control"] = "no-store"
        return response
