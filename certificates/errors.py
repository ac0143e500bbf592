"""The certificate services' own errors, members of the one family of `kernel.errors` (imported here
too, so the services name them from one place): a root key that does not unlock, a data directory
that takes no write, and the translation of the crypto layer's errors.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from certificates.crypto.errors import CryptoError, PolicyError
from kernel.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionRefused,
    PolicyViolation,
    ServiceError,
    Unavailable,
)

__all__ = ["Conflict", "InvalidInput", "NotFound", "PermissionRefused", "PolicyViolation", "ServiceError",
           "StorageUnavailable", "UnlockRefused", "from_crypto_error", "storage_errors"]

logger = logging.getLogger(__name__)


class UnlockRefused(ServiceError):
    """The root password did not open the root key. One generic message whatever the cause."""

    status = 403
    default_code = "unlock_failed"

    def __init__(self) -> None:
        super().__init__("The CA key could not be unlocked.", code=self.default_code)


class StorageUnavailable(Unavailable):
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
