"""Issuance profiles: what an end-entity certificate of each kind contains.

A profile means the same thing for every channel (admin, API, CLI): the
service layer looks it up with :func:`get_profile` and hands it to the
builders and policy checks of this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .errors import InvalidRequestError
from .names import SAN_DNS, SAN_EMAIL, SAN_IP

#: CA/B Forum reserved policy identifier for domain-validated TLS certificates
#: (BR 7.1.6.1). BR 7.1.2.7.9 requires a reserved CA/B policy OID in every
#: subscriber TLS certificate and pkilint's serverauth lint reports its absence
#: as an ERROR, so server profiles assert DV: the subject holds at most a
#: commonName (BR 7.1.2.7.2) and the names are controlled by the organization
#: the private CA belongs to.
CABF_DOMAIN_VALIDATED = ObjectIdentifier("2.23.140.1.2.1")

#: CA/B Forum S/MIME BR 7.1.6.1 reserved OID for mailbox-validated, strict
#: certificates: the subject holds at most a commonName equal to one of the
#: mailbox SANs (S/MIME BR 7.1.4.2.2), which is what the e-mail profile issues.
CABF_SMIME_MAILBOX_STRICT = ObjectIdentifier("2.23.140.1.5.1.3")

KEY_USAGE_FLAGS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def key_usage_from_flags(flags: frozenset[str] | set[str]) -> x509.KeyUsage:
    """Build an :class:`x509.KeyUsage` from flag names such as ``digital_signature``."""
    unknown = set(flags) - set(KEY_USAGE_FLAGS)
    if unknown:
        raise ValueError(f"unknown key usage flags: {sorted(unknown)}")
    values = {flag: flag in flags for flag in KEY_USAGE_FLAGS}
    return x509.KeyUsage(**values)


@dataclass(frozen=True)
class Profile:
    """An end-entity issuance profile.

    ``key_usage`` applies to every key type; ``rsa_key_usage`` and
    ``ec_key_usage`` are added for RSA and EC keys respectively, because key
    usage must fit the key (RFC 5280 4.2.1.3, BR 7.1.2.7.11): RSA keys may
    encipher keys, EC keys may agree keys, Ed25519 keys only sign.
    """

    name: str
    key_usage: frozenset[str]
    extended_key_usages: tuple[ObjectIdentifier, ...]
    max_days: int
    allowed_san_types: frozenset[str]
    requires_san: bool
    allow_wildcard: bool
    rsa_key_usage: frozenset[str] = frozenset()
    ec_key_usage: frozenset[str] = frozenset()
    #: BR 7.1.4.3: a commonName, if present, must repeat one of the SANs.
    common_name_in_san: bool = False
    policy_oids: tuple[ObjectIdentifier, ...] = field(default_factory=tuple)
    description: str = ""

    def key_usage_for(self, public_key: object) -> x509.KeyUsage:
        """Return the keyUsage extension value for a subject ``public_key``."""
        flags = set(self.key_usage)
        if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            flags |= self.rsa_key_usage
        elif isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
            flags |= self.ec_key_usage
        return key_usage_from_flags(frozenset(flags))


_SIGN = frozenset({"digital_signature"})

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="server",
            description="TLS server (serverAuth)",
            key_usage=_SIGN,
            rsa_key_usage=frozenset({"key_encipherment"}),
            extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
            max_days=398,  # BR 6.3.2
            allowed_san_types=frozenset({SAN_DNS, SAN_IP}),
            requires_san=True,
            allow_wildcard=True,
            common_name_in_san=True,
            policy_oids=(CABF_DOMAIN_VALIDATED,),
        ),
        Profile(
            name="client",
            description="TLS client (clientAuth)",
            key_usage=_SIGN,
            extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
            max_days=825,
            allowed_san_types=frozenset({SAN_DNS, SAN_EMAIL, SAN_IP}),
            requires_san=False,
            allow_wildcard=False,
        ),
        Profile(
            name="server-client",
            description="TLS server and client (serverAuth + clientAuth)",
            key_usage=_SIGN,
            rsa_key_usage=frozenset({"key_encipherment"}),
            extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
            max_days=398,
            allowed_san_types=frozenset({SAN_DNS, SAN_IP}),
            requires_san=True,
            allow_wildcard=True,
            common_name_in_san=True,
            policy_oids=(CABF_DOMAIN_VALIDATED,),
        ),
        Profile(
            name="email",
            description="S/MIME (emailProtection)",
            key_usage=_SIGN,
            rsa_key_usage=frozenset({"key_encipherment"}),
            ec_key_usage=frozenset({"key_agreement"}),
            extended_key_usages=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
            max_days=825,
            allowed_san_types=frozenset({SAN_EMAIL}),
            requires_san=True,
            allow_wildcard=False,
            common_name_in_san=True,
            policy_oids=(CABF_SMIME_MAILBOX_STRICT,),
        ),
    )
}


def get_profile(name: str) -> Profile:
    """Return the profile called ``name`` or raise InvalidRequestError."""
    profile = PROFILES.get(name) if isinstance(name, str) else None
    if profile is None:
        allowed = ", ".join(PROFILES)
        raise InvalidRequestError(f"unknown profile; expected one of: {allowed}", code="unknown_profile")
    return profile


# CA/B Forum BR 6.3.2 as amended by ballot SC-081: the longest validity of a TLS
# subscriber certificate depends on when it is issued (398 -> 200 -> 100 -> 47 days).
SERVER_AUTH_VALIDITY_SCHEDULE: tuple[tuple[datetime, int], ...] = (
    (datetime(2026, 3, 15, tzinfo=UTC), 398),
    (datetime(2027, 3, 15, tzinfo=UTC), 200),
    (datetime(2029, 3, 15, tzinfo=UTC), 100),
)
SERVER_AUTH_FINAL_MAX_DAYS = 47


def max_validity_days(profile: Profile, issued_at: datetime) -> int:
    """The most days ``profile`` allows for a certificate issued at ``issued_at``.

    Profiles with serverAuth follow the BR schedule (never more than the profile's
    own ``max_days``); the others keep their fixed ``max_days``.
    """
    if ExtendedKeyUsageOID.SERVER_AUTH not in profile.extended_key_usages:
        return profile.max_days
    for issued_before, days in SERVER_AUTH_VALIDITY_SCHEDULE:
        if issued_at < issued_before:
            return min(days, profile.max_days)
    return min(SERVER_AUTH_FINAL_MAX_DAYS, profile.max_days)
