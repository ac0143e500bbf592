"""ACME challenge validation: http-01, dns-01 (RFC 8555 §8.3, §8.4) and tls-alpn-01 (RFC 8737).

`validate_challenge` is blocking and bounded by PKI_ACME_VALIDATION_TIMEOUT for the whole
validation. A network or peer failure never raises: it answers a `ChallengeOutcome` with the
RFC 8555 §6.7 problem type and a detail fit for the problem document. Only a programming error
raises `ValueError`: an unknown challenge or identifier type, a combination not in
`SUPPORTED_CHALLENGES`, a wildcard given with its "*.", or a key authorization that is not
`token.thumbprint` for this token (RFC 8555 §8.1).
"""

from __future__ import annotations

import http.client
import logging
import ssl
from collections.abc import Callable

import dns.exception

from acme_server.validation.dns01 import validate_dns01
from acme_server.validation.http01 import validate_http01
from acme_server.validation.identifiers import Identifier, check_token, parse_identifier
from acme_server.validation.network import Deadline, ValidationConfig
from acme_server.validation.outcome import (
    CONNECTION,
    DNS,
    INCORRECT_RESPONSE,
    MALFORMED,
    TLS,
    UNAUTHORIZED,
    ChallengeFailure,
    ChallengeOutcome,
)
from acme_server.validation.tlsalpn01 import validate_tlsalpn01

__all__ = [
    "CONNECTION",
    "DNS",
    "INCORRECT_RESPONSE",
    "MALFORMED",
    "SUPPORTED_CHALLENGES",
    "TLS",
    "UNAUTHORIZED",
    "ChallengeOutcome",
    "validate_challenge",
]

logger = logging.getLogger(__name__)

# Identifier type -> the challenge types that can prove it (dns-01 cannot prove an address: RFC 8738 §7).
SUPPORTED_CHALLENGES: dict[str, frozenset[str]] = {
    "dns": frozenset({"http-01", "dns-01", "tls-alpn-01"}),
    "ip": frozenset({"http-01", "tls-alpn-01"}),
}

Validator = Callable[[Identifier, str, str, ValidationConfig, Deadline], None]
VALIDATORS: dict[str, Validator] = {
    "http-01": validate_http01,
    "dns-01": validate_dns01,
    "tls-alpn-01": validate_tlsalpn01,
}


def validate_challenge(challenge_type: str, identifier_type: str, identifier_value: str,
                       token: str, key_authorization: str) -> ChallengeOutcome:
    """Validate one challenge now, within PKI_ACME_VALIDATION_TIMEOUT; never raises for a peer's failure."""
    _check_call(challenge_type, identifier_type, token, key_authorization)
    config = ValidationConfig.from_settings()
    deadline = Deadline(config.timeout)
    try:
        check_token(token)
        identifier = parse_identifier(identifier_type, identifier_value)
        VALIDATORS[challenge_type](identifier, token, key_authorization, config, deadline)
    except ChallengeFailure as failure:
        outcome = failure.outcome()
    except (OSError, http.client.HTTPException, ssl.SSLError, dns.exception.DNSException) as error:
        # A failure the validator did not name more precisely: still the peer's, never a 5xx.
        detail = f"{challenge_type} validation failed ({type(error).__name__})"
        if deadline.expired:
            detail = f"{challenge_type} validation timed out (it may take {deadline.seconds:g} s)"
        outcome = ChallengeOutcome(valid=False, problem_type=CONNECTION, detail=detail)
    else:
        outcome = ChallengeOutcome(valid=True, problem_type=None,
                                   detail=f"{challenge_type} validated for {identifier_type} {identifier.value}")
    logger.info("ACME %s for %s %r: %s", challenge_type, identifier_type, identifier_value,
                "valid" if outcome.valid else outcome.detail)
    return outcome


def _check_call(challenge_type: str, identifier_type: str, token: str, key_authorization: str) -> None:
    """The caller's side of the contract: a break of it is a programming error and raises ValueError."""
    if identifier_type not in SUPPORTED_CHALLENGES:
        raise ValueError(f"unknown identifier type {identifier_type!r}")
    if challenge_type not in VALIDATORS:
        raise ValueError(f"unknown challenge type {challenge_type!r}")
    if challenge_type not in SUPPORTED_CHALLENGES[identifier_type]:
        raise ValueError(f"{challenge_type} cannot validate an identifier of type {identifier_type!r}")
    token_part, dot, thumbprint = key_authorization.partition(".")
    if not dot or token_part != token or not thumbprint:
        raise ValueError("the key authorization must be the token, a dot and the account key's thumbprint")
