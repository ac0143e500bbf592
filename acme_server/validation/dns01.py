"""dns-01 (RFC 8555 §8.4): a TXT record at _acme-challenge.{name} holding base64url(SHA-256(key authorization)).

The lookup goes to PKI_ACME_DNS_RESOLVER (or the system resolver) through dnspython, which
follows CNAMEs in the answer as a stub resolver does; a wildcard's name comes without its "*.".
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from acme_server.validation.identifiers import Identifier
from acme_server.validation.network import Deadline, ValidationConfig, dns_failure, make_resolver
from acme_server.validation.outcome import INCORRECT_RESPONSE, UNAUTHORIZED, ChallengeFailure

CHALLENGE_LABEL = "_acme-challenge"


def expected_txt(key_authorization: str) -> bytes:
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def validate_dns01(identifier: Identifier, token: str, key_authorization: str, config: ValidationConfig,
                   deadline: Deadline) -> None:
    """Return when one TXT value is the digest; raise `ChallengeFailure` otherwise."""
    qname = dns.name.from_text(f"{CHALLENGE_LABEL}.{identifier.value}")
    shown = qname.to_text(omit_final_dot=True)
    resolver = make_resolver(config, deadline)
    try:
        answer = resolver.resolve(qname, dns.rdatatype.TXT, search=False,
                                  lifetime=deadline.step_timeout(f"DNS lookup of {shown}"))
    except dns.resolver.NoAnswer:
        raise ChallengeFailure(UNAUTHORIZED, f"no TXT record at {shown}") from None
    except dns.exception.DNSException as error:
        raise dns_failure(error, f"TXT {shown}", deadline) from None
    expected = expected_txt(key_authorization)
    values = [b"".join(rdata.strings) for rdata in answer]
    # Every value is compared (no early exit), each in constant time.
    matches = [hmac.compare_digest(value, expected) for value in values]
    if not any(matches):
        raise ChallengeFailure(INCORRECT_RESPONSE, f"{len(values)} TXT record(s) at {shown}, none of them the "
                                                   "digest of this challenge's key authorization")
