"""Verifying an ACME request (RFC 8555 6.2-6.5): the JWS, its key (`jwk` or `kid`), `url` and `nonce`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Literal

from acme_server.models import Account, AccountStatus
from acme_server.services import jose
from acme_server.services.context import AcmeContext
from acme_server.services.nonces import consume_nonce
from acme_server.services.problems import AcmeProblem

KeyRule = Literal["jwk", "kid", "either"]


@dataclass(frozen=True)
class VerifiedRequest:
    jws: jose.FlattenedJws
    jwk: jose.Jwk
    account: Account | None  # set when the request was signed with `kid`

    @property
    def is_post_as_get(self) -> bool:
        return self.jws.is_post_as_get

    def payload(self) -> Any:
        return self.jws.payload()

    def payload_object(self) -> dict:
        """The payload as a JSON object ({} and "" alike mean an empty object where an update is optional)."""
        payload = self.payload()
        if payload is None:
            return {}
        if not isinstance(payload, dict):
            raise AcmeProblem("malformed", "The JWS payload must be a JSON object.")
        return payload


def account_from_kid(context: AcmeContext, kid: object) -> Account:
    """The account a `kid` names: an account URL of this directory's organization (RFC 8555 6.2)."""
    prefix = context.url("account", "")
    if not isinstance(kid, str) or not kid.startswith(prefix):
        raise AcmeProblem("accountDoesNotExist", "The kid is not an account URL of this directory.")
    account = Account.objects.filter(name=kid[len(prefix):], organization_id=context.ca.organization_id).first()
    if account is None:
        raise AcmeProblem("accountDoesNotExist", "No account exists with that kid.")
    return account


def verify_request(context: AcmeContext, body: bytes, request_url: str, *, key: KeyRule = "kid",
                   consume: bool = True) -> VerifiedRequest:
    """Check everything a request's JWS must satisfy; consume its nonce last, once the signature holds."""
    jws = jose.parse_flattened(body)
    protected = jws.protected
    alg = jose.check_algorithm(protected.get("alg"))
    url = protected.get("url")
    if not isinstance(url, str) or not hmac.compare_digest(url.encode(), request_url.encode()):
        raise AcmeProblem("unauthorized", "The JWS url header does not match the request URL.")
    has_jwk, has_kid = "jwk" in protected, "kid" in protected
    if has_jwk == has_kid:
        raise AcmeProblem("malformed", "The protected header needs exactly one of jwk and kid.")
    if key == "jwk" and not has_jwk:
        raise AcmeProblem("malformed", "This resource is requested with a jwk header, not a kid.")
    if key == "kid" and not has_kid:
        raise AcmeProblem("malformed", "This resource is requested with the account's kid, not a jwk.")
    account = None
    if has_kid:
        account = account_from_kid(context, protected["kid"])
        jwk = jose.parse_jwk(account.jwk)
    else:
        jwk = jose.parse_jwk(protected["jwk"])
    jose.check_algorithm(alg, jwk)
    if not jose.verify_signature(jwk, alg, jws.signing_input, jws.signature):
        raise AcmeProblem("malformed", "The JWS signature does not verify.")
    if "nonce" not in protected:
        raise AcmeProblem("badNonce", "The protected header has no nonce.")
    if consume and not consume_nonce(protected.get("nonce")):
        raise AcmeProblem("badNonce", "The nonce is unknown, used or expired: retry with the fresh Replay-Nonce.")
    if account is not None and account.status != AccountStatus.VALID:
        raise AcmeProblem("unauthorized", f"The account is {account.status}.")
    return VerifiedRequest(jws, jwk, account)
