"""Errors the certificate services raise; every interface maps them to a clear 4xx or message.

`code` is a short machine-readable string for the API's `{"error": {"code", "message"}}`;
the message is safe to show a client: never a secret, never internal detail.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from certificates.crypto.errors import CryptoError, PolicyError

logger = logging.getLogger(__name__)


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


class PermissionRefused(ServiceError):
    """The caller's role may not do this to this kind of object (`certificates.services.permissions`).

    Every channel maps it the same way: the API's 403 `permission_denied`, a page's 403 with
    the message, an admin action's refusal page; nothing has changed when it is raised.
    """

    status = 403
    default_code = "permission_denied"


class UnlockRefused(ServiceError):
    """The root password did not open the root key. One generic message whatever the cause."""

    status = 403
    default_code = "unlock_failed"

    def __init__(self) -> None:
        super().__init__("The CA key could not be unlocked.", code=self.default_code)


class StorageUnavailable(ServiceError):
    """The data directory cannot take the write (full, read-only, gone): nothing was stored; try later."""

    status = 503
    default_code = "storage_unavailable"


_STORAGE_REASONS = {errno.ENOSPC: "is full", errno.EDQUOT: "is over quota", errno.EROFS: "is read-only",
                    errno.EACCES: "is not writable", errno.EPERM: "is not writable"}


@contextmanager
def storage_errors(consequence: str = "nothing was stored. Try again later.") -> Iterator[None]:
    """An `OSError` while writing artifacts becomes one clear `StorageUnavailable` (the log keeps the detail)."""
    try:
        yield
    except OSError as error:
        logger.exception("Writing to the data directory failed")
        reason = _STORAGE_REASONS.get(error.errno, "cannot be written")
        raise StorageUnavailable(f"The certificate store {reason}: {consequence}") from None


def from_crypto_error(error: CryptoError) -> ServiceError:
    """Translate the pure layer's error into a service error, keeping its code and message."""
    if isinstance(error, PolicyError):
        return PolicyViolation(error.message, code=error.code)
    return InvalidInput(error.message, code=error.code)
