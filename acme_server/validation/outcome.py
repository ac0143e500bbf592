"""What a validation answers, and the problem types it may answer with (RFC 8555 §6.7)."""

from __future__ import annotations

from dataclasses import dataclass

ERROR_PREFIX = "urn:ietf:params:acme:error:"
CONNECTION = ERROR_PREFIX + "connection"  # the validation target could not be reached or timed out
DNS = ERROR_PREFIX + "dns"  # a DNS lookup failed (NXDOMAIN, SERVFAIL, timeout)
INCORRECT_RESPONSE = ERROR_PREFIX + "incorrectResponse"  # an answer came, but not the one the challenge wants
UNAUTHORIZED = ERROR_PREFIX + "unauthorized"  # no answer for this challenge where one must be (404, no TXT)
TLS = ERROR_PREFIX + "tls"  # the TLS handshake failed or did not negotiate acme-tls/1
MALFORMED = ERROR_PREFIX + "malformed"  # the token or identifier is not well formed


@dataclass(frozen=True)
class ChallengeOutcome:
    valid: bool
    problem_type: str | None  # a full urn from the constants above; None when valid
    detail: str  # human text for the problem document, no secrets


class ChallengeFailure(Exception):
    """Raised inside a validator to end it with a problem; `validate_challenge` turns it into an outcome."""

    def __init__(self, problem_type: str, detail: str) -> None:
        super().__init__(detail)
        self.problem_type = problem_type
        self.detail = detail

    def outcome(self) -> ChallengeOutcome:
        return ChallengeOutcome(valid=False, problem_type=self.problem_type, detail=self.detail)
