"""The one exception hierarchy of the crypto layer.

Every error raised on purpose by :mod:`certificates.crypto` derives from
:class:`CryptoError` and carries a short machine-readable ``code``. Messages are
written for humans and are safe to show to a client: they never contain key
material, passwords or raw parser output.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by the crypto layer."""

    default_code = "crypto_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r})"


class InvalidRequestError(CryptoError):
    """The client's input is unacceptable (malformed CSR, weak key, bad SAN...).

    Callers map it to a 4xx answer; ``str(error)`` is safe to show to the client.
    """

    default_code = "invalid_request"


class PolicyError(CryptoError):
    """The request is well formed but the CA's policy forbids it.

    Examples: a name outside the issuer's name constraints, a validity longer
    than the profile allows, an issuer whose pathLenConstraint forbids another CA.
    """

    default_code = "policy"
