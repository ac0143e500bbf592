"""Errors the certificate services raise; every interface maps them to a clear 4xx or message.

`code` is a short machine-readable string for the API's `{"error": {"code", "message"}}`;
the message is safe to show a client: never a secret, never internal detail.
"""

from __future__ import annotations

from certificates.crypto.errors import CryptoError, PolicyError


class ServiceError(Exception):
    status = 400
    default_code = "invalid"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code


class InvalidInput(ServiceError):
    """The request itself is wrong (bad field, bad CSR, weak key...)."""


class PolicyViolation(ServiceError):
    """Well-formed, but the PKI's rules refuse it (name constraints, revoked issuer...)."""

    status = 422
    default_code = "policy"


class NotFound(ServiceError):
    """No such object, or not one the caller may see (tenancy answers 404, never 403)."""

    status = 404
    default_code = "not_found"


class Conflict(ServiceError):
    status = 409
    default_code = "conflict"


class UnlockRefused(ServiceError):
    """The root password did not open the root key. One generic message whatever the cause."""

    status = 403
    default_code = "unlock_failed"

    def __init__(self) -> None:
        super().__init__("The CA key could not be unlocked.", code=self.default_code)


def from_crypto_error(error: CryptoError) -> ServiceError:
    """Translate the pure layer's error into a service error, keeping its code and message."""
    if isinstance(error, PolicyError):
        return PolicyViolation(error.message, code=error.code)
    return InvalidInput(error.message, code=error.code)
