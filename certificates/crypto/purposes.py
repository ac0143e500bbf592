"""What a CA certificate vouches for: its extended key usage (EKU) as the limit of what it issues.

RFC 5280 4.2.1.12 defines EKU for end entities only, but every verifier the project is judged
by (OpenSSL, GnuTLS, NSS/mozilla::pkix, Go's crypto/x509, Windows CryptoAPI) reads an EKU in a
CA certificate as a limit on the certificates below it ("EKU chaining"): an intermediate with
serverAuth + clientAuth does not vouch for an emailProtection leaf, and every verifier refuses
the leaf for S/MIME. So a CA's EKU is chosen from the purposes it will issue for when it is
created, and issuance refuses a profile whose EKUs its CA (or a CA above it) does not cover.

A CA certificate without EKU is unrestricted (older or imported CAs; roots never carry one,
BR 7.1.2.1.2); ``anyExtendedKeyUsage`` likewise covers everything.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .errors import InvalidRequestError, PolicyError

#: The purposes a CA may be created for, by the names of RFC 5280 4.2.1.12, in certificate order.
CA_PURPOSES: dict[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
}
#: Everything the built-in profiles need (server, client, server-client, email). BR 7.1.2.10.6 and
#: Mozilla's Root Store Policy 5.3 keep serverAuth and emailProtection in separate CAs for publicly
#: trusted hierarchies; a private CA may combine them, and an installation that wants the public
#: rules creates a TLS CA (serverAuth, clientAuth) and an S/MIME CA (emailProtection) instead.
DEFAULT_CA_PURPOSES: tuple[str, ...] = tuple(CA_PURPOSES)
_NAMES = {oid: name for name, oid in CA_PURPOSES.items()}


def parse_ca_purposes(values: Iterable[str] | str) -> tuple[ObjectIdentifier, ...]:
    """The EKU OIDs of purpose names (``serverAuth``, ``clientAuth``, ``emailProtection``), in a fixed order.

    Accepts a list or one comma-separated string; names are case-insensitive. At least one
    purpose is needed: an empty EKU extension is invalid (RFC 5280 4.2.1.12, ``SIZE (1..MAX)``).
    """
    if isinstance(values, str):
        values = values.split(",")
    if isinstance(values, bytes) or not all(isinstance(value, str) for value in values):
        raise InvalidRequestError("CA purposes must be names such as 'serverAuth'.", code="invalid_purposes")
    by_lower = {name.lower(): name for name in CA_PURPOSES}
    chosen: set[str] = set()
    for value in (value.strip() for value in values):
        if not value:
            continue
        name = by_lower.get(value.lower())
        if name is None:
            raise InvalidRequestError(
                f"Unknown CA purpose '{value[:40]}'. Choose from: {', '.join(CA_PURPOSES)}.", code="invalid_purposes"
            )
        chosen.add(name)
    if not chosen:
        raise InvalidRequestError(
            f"Choose at least one CA purpose: {', '.join(CA_PURPOSES)}.", code="invalid_purposes"
        )
    return tuple(oid for name, oid in CA_PURPOSES.items() if name in chosen)


def purpose_names(oids: Iterable[ObjectIdentifier]) -> list[str]:
    """Readable names of EKU OIDs, the CA purposes first in their fixed order (others by dotted OID)."""
    order = list(CA_PURPOSES.values())
    ranked = sorted(set(oids), key=lambda oid: (order.index(oid) if oid in order else len(order), oid.dotted_string))
    return [_NAMES.get(oid) or oid.dotted_string for oid in ranked]


def certificate_extended_key_usages(certificate: x509.Certificate) -> frozenset[ObjectIdentifier] | None:
    """The EKU OIDs of ``certificate``; ``None`` when it has no EKU extension (no restriction)."""
    try:
        return frozenset(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def uncovered_usages(
    ca_usages: frozenset[ObjectIdentifier] | None, wanted: Sequence[ObjectIdentifier]
) -> list[ObjectIdentifier]:
    """The usages of ``wanted`` that a CA with EKU ``ca_usages`` does not vouch for (empty: all covered)."""
    if ca_usages is None or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in ca_usages:
        return []
    return [usage for usage in wanted if usage not in ca_usages]


def check_ca_covers(ca_certificate: x509.Certificate, wanted: Sequence[ObjectIdentifier], *, what: str) -> None:
    """Raise :class:`PolicyError` (``issuer_purpose``) unless the CA's EKU covers every usage of ``wanted``."""
    missing = uncovered_usages(certificate_extended_key_usages(ca_certificate), wanted)
    if missing:
        allowed = certificate_extended_key_usages(ca_certificate) or frozenset()
        raise PolicyError(
            f"{what} needs {', '.join(purpose_names(missing))}, which the issuing CA's extended key usage "
            f"({', '.join(purpose_names(allowed))}) does not cover.",
            code="issuer_purpose",
        )
