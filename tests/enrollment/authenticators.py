"""A stand-in for the TLS front in tests: the client certificate named by its SHA-256 fingerprint in a header.

Production configures a function that reads what the trusted reverse proxy verified; this one lets
the tests present "the client's current certificate" without a TLS terminator, to exercise the
reenrollment path behind `PKI_EST_CLIENT_CERTIFICATE_AUTHENTICATOR`.
"""

from __future__ import annotations

from django.http import HttpRequest

from certificates.models import Certificate

HEADER = "HTTP_X_TEST_CLIENT_CERTIFICATE_SHA256"


def by_fingerprint_header(request: HttpRequest) -> Certificate | None:
    fingerprint = request.META.get(HEADER, "")
    return Certificate.objects.filter(fingerprint_sha256=fingerprint).first() if fingerprint else None
