"""Vetting the identifiers of a new order (RFC 8555 7.4; RFC 8738 for IP addresses).

The names are held to the same rules as every other channel before a challenge is even offered:
the SAN syntax (`certificates.crypto.names`), the ACME profile's SAN types and wildcard rule, the
issuing CA's name constraints (its certificate's nameConstraints, those of every CA above it,
and its permitted/excluded lists).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from django.conf import settings

from acme_server.models import IdentifierType
from acme_server.services.problems import AcmeProblem
from certificates.crypto.errors import CryptoError
from certificates.crypto.names import format_san, parse_san
from certificates.crypto.policy import check_issuer_name_constraints, check_name_constraints, validate_sans_for_profile
from certificates.crypto.profiles import Profile
from certificates.errors import ServiceError
from certificates.keystore import ca_certificate
from certificates.models import CertificateAuthority
from certificates.selectors import ca_chain
from certificates.services.profiles import profile_for_issuance

MAX_IDENTIFIERS = 100


@dataclass(frozen=True)
class Identifier:
    type: str
    value: str  # normalized, "*." kept for a wildcard

    @property
    def wildcard(self) -> bool:
        return self.value.startswith("*.")

    @property
    def base_value(self) -> str:
        return self.value[2:] if self.wildcard else self.value

    def as_json(self) -> dict:
        return {"type": self.type, "value": self.value}

    def san(self) -> x509.GeneralName:
        return parse_san(f"{'DNS' if self.type == IdentifierType.DNS else 'IP'}:{self.value}")


def _one(raw: object) -> Identifier:
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str) or not isinstance(raw.get("value"), str):
        raise AcmeProblem("malformed", "Each identifier is an object with a type and a value.")
    kind, value = raw["type"], raw["value"]
    if kind not in IdentifierType.values:
        raise AcmeProblem("unsupportedIdentifier", f"Identifiers of type {kind[:20]!r} are not supported.")
    try:
        name = parse_san(f"{'DNS' if kind == IdentifierType.DNS else 'IP'}:{value}")
    except CryptoError as error:
        raise AcmeProblem("rejectedIdentifier", f"{value[:100]!r} is not acceptable: {error.message}") from None
    text = format_san(name).split(":", 1)[1]
    if kind == IdentifierType.DNS and isinstance(name, x509.IPAddress):
        raise AcmeProblem("malformed", "An IP address is ordered with the identifier type ip.")
    return Identifier(kind, text)


def identifiers_from_payload(raw: object) -> list[Identifier]:
    if not isinstance(raw, list) or not raw:
        raise AcmeProblem("malformed", "identifiers must be a non-empty list.")
    if len(raw) > MAX_IDENTIFIERS:
        raise AcmeProblem("rejectedIdentifier", f"At most {MAX_IDENTIFIERS} identifiers per order.")
    identifiers = list(dict.fromkeys(_one(item) for item in raw))
    return identifiers


def _acme_profile(ca: CertificateAuthority) -> Profile:
    """The profile row the CA issues ACME certificates under, as an administrator last edited it."""
    try:
        return profile_for_issuance(settings.PKI_ACME_PROFILE, ca)
    except ServiceError as error:
        raise AcmeProblem("rejectedIdentifier", f"The CA cannot issue ACME certificates: {error.message}") from None


def vet_identifiers(ca: CertificateAuthority, identifiers: list[Identifier]) -> None:
    """The CA may issue for every name: profile SAN rules and all name constraints; else rejectedIdentifier."""
    profile = _acme_profile(ca)
    sans = [identifier.san() for identifier in identifiers]
    problems = []
    for identifier, san in zip(identifiers, sans, strict=True):
        try:
            validate_sans_for_profile(profile, [san])
            check_issuer_name_constraints(ca_certificate(ca), [san])
            for authority in ca_chain(ca)[1:]:
                check_issuer_name_constraints(ca_certificate(authority), [san])
            check_name_constraints(ca.permitted_names, ca.excluded_names, [san])
        except CryptoError as error:
            problems.append({"type": "urn:ietf:params:acme:error:rejectedIdentifier", "detail": error.message,
                             "identifier": identifier.as_json()})
    if problems:
        raise AcmeProblem("rejectedIdentifier", "The CA does not issue for "
                          + ", ".join(p["identifier"]["value"] for p in problems) + ".", subproblems=problems)
