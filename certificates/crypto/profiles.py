"""Issuance profiles: what an end-entity certificate of each kind contains.

A profile means the same thing for every channel (admin, API, CLI): the
service layer looks it up with :func:`get_profile` and hands it to the
builders and policy checks of this package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from .errors import InvalidRequestError, PolicyError
from .names import SAN_DNS, SAN_EMAIL, SAN_IP

#: CA/B Forum reserved policy identifier for domain-validated TLS certificates
#: (BR 7.1.6.1). A private PKI is not audited against the Baseline Requirements,
#: So no profile asserts it by default: a profile opts in with
#: ``cabf_policy`` (then BR 7.1.2.7.9 and pkilint's serverauth lint are satisfied),
#: and even then it is left out for Ed25519 keys and internal names, which the BRs
#: do not allow in a certificate asserting it.
CABF_DOMAIN_VALIDATED = ObjectIdentifier("2.23.140.1.2.1")

#: CA/B Forum S/MIME BR 7.1.6.1 reserved OID for mailbox-validated, strict
#: certificates (the subject holds at most a commonName equal to a mailbox SAN,
#: S/MIME BR 7.1.4.2.2), asserted by e-mail profiles with ``cabf_policy`` only.
CABF_SMIME_MAILBOX_STRICT = ObjectIdentifier("2.23.140.1.5.1.3")

#: Every policy OID under this arc is the CA/B Forum's (2.23.140.1): a profile's own
#: ``policy_oids`` may not name one (they come from ``cabf_policy`` alone).
CABF_POLICY_ARC = "2.23.140.1."

#: RFC 5280 4.2.1.4 anyPolicy: meaningful in CA certificates, never a subscriber's policy.
ANY_POLICY_OID = "2.5.29.32.0"

#: pkilint (and some relying parties) refuse an OID arc above 32 bits, so the UUID form
#: 2.25.<UUID> of ITU-T X.667 does not work in practice: a private policy OID lives under
#: the operator's own arc (e.g. an IANA Private Enterprise Number, 1.3.6.1.4.1.<PEN>).
MAX_OID_ARC = 2**32 - 1

#: RFC 5280 names of the extended key usages a profile may carry (RFC 5280 4.2.1.12).
EXTENDED_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
}

#: Suffixes of names that can never be public (RFC 2606, RFC 6761, RFC 6762, RFC 8375 and
#: the ICANN name-collision list). A certificate naming one is for an internal name (BR 7.1.2.7.12,
#: BR 4.2.2): it never asserts a CA/B Forum policy OID.
INTERNAL_SUFFIXES = ("test", "example", "invalid", "localhost", "local", "internal", "lan", "home.arpa",
                     "corp", "home", "intranet", "private", "localdomain")

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
    """An end-entity issuance profile: plain data, so the crypto layer needs no database.

    The service layer builds one from a ``CertificateProfile`` row; :data:`PROFILES` holds
    the four built-ins as the data migration seeds them.

    ``key_usage`` applies to every key type; ``rsa_key_usage`` and ``ec_key_usage`` are
    added for RSA and EC keys respectively, because key usage must fit the key (RFC 5280
    4.2.1.3, BR 7.1.2.7.11): RSA keys may encipher keys, EC keys may agree keys, Ed25519
    keys only sign.

    SAN rules: every SAN's type is in ``allowed_san_types``; ``requires_san`` wants at least
    one SAN, ``required_san_types`` at least one of each listed type; DNS names (wildcards
    by their base) must lie in one of ``allowed_dns_suffixes`` and IP addresses in one of
    ``allowed_ip_networks`` when those are non-empty.
    """

    name: str
    key_usage: frozenset[str]
    extended_key_usages: tuple[ObjectIdentifier, ...]
    max_validity_hours: int
    allowed_san_types: frozenset[str]
    requires_san: bool
    allow_wildcard: bool
    rsa_key_usage: frozenset[str] = frozenset()
    ec_key_usage: frozenset[str] = frozenset()
    #: BR 7.1.4.3: a commonName, if present, must repeat one of the SANs (and is
    #: written as that SAN's normalised value).
    common_name_in_san: bool = False
    #: The private policy OIDs asserted (RFC 5280 4.2.1.4; :func:`check_policy_oid`).
    policy_oids: tuple[ObjectIdentifier, ...] = field(default_factory=tuple)
    #: Also assert the CA/B Forum reserved OID for the EKU (DV, or S/MIME mailbox strict),
    #: except for Ed25519 keys and internal names.
    cabf_policy: bool = False
    description: str = ""
    #: Empty: every key type the CA accepts.
    allowed_key_types: frozenset[str] = frozenset()
    required_san_types: frozenset[str] = frozenset()
    allowed_dns_suffixes: tuple[str, ...] = ()
    allowed_ip_networks: tuple[str, ...] = ()
    #: RFC 7633 TLS Feature extension with status_request ("OCSP Must-Staple").
    must_staple: bool = False
    #: Write the CRL distribution point (and freshest CRL) / the AIA OCSP URL.
    crl_distribution_point: bool = True
    ocsp_url: bool = True

    @property
    def max_days(self) -> int:
        """The longest validity in whole days (a profile of hours only: 0)."""
        return self.max_validity_hours // 24

    @property
    def max_validity(self) -> timedelta:
        return timedelta(hours=self.max_validity_hours)

    def key_usage_for(self, public_key: object) -> x509.KeyUsage:
        """Return the keyUsage extension value for a subject ``public_key``."""
        flags = set(self.key_usage)
        if isinstance(public_key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
            flags |= self.rsa_key_usage
        elif isinstance(public_key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
            flags |= self.ec_key_usage
        return key_usage_from_flags(frozenset(flags))


_SIGN = frozenset({"digital_signature"})

#: The four built-in profiles (CONTRACT: `server`, `client`, `server-client`, `email`).
PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            name="server",
            description="TLS server (serverAuth)",
            key_usage=_SIGN,
            rsa_key_usage=frozenset({"key_encipherment"}),
            extended_key_usages=(ExtendedKeyUsageOID.SERVER_AUTH,),
            max_validity_hours=398 * 24,  # BR 6.3.2 (then its schedule)
            allowed_san_types=frozenset({SAN_DNS, SAN_IP}),
            requires_san=True,
            allow_wildcard=True,
            common_name_in_san=True,
        ),
        Profile(
            name="client",
            description="TLS client (clientAuth)",
            key_usage=_SIGN,
            extended_key_usages=(ExtendedKeyUsageOID.CLIENT_AUTH,),
            max_validity_hours=825 * 24,
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
            max_validity_hours=398 * 24,
            allowed_san_types=frozenset({SAN_DNS, SAN_IP}),
            requires_san=True,
            allow_wildcard=True,
            common_name_in_san=True,
        ),
        Profile(
            name="email",
            description="S/MIME (emailProtection)",
            key_usage=_SIGN,
            rsa_key_usage=frozenset({"key_encipherment"}),
            ec_key_usage=frozenset({"key_agreement"}),
            extended_key_usages=(ExtendedKeyUsageOID.EMAIL_PROTECTION,),
            max_validity_hours=825 * 24,
            allowed_san_types=frozenset({SAN_EMAIL}),
            requires_san=True,
            allow_wildcard=False,
            common_name_in_san=True,
        ),
    )
}


def get_profile(name: str) -> Profile:
    """Return the built-in profile called ``name`` or raise InvalidRequestError."""
    profile = PROFILES.get(name) if isinstance(name, str) else None
    if profile is None:
        allowed = ", ".join(PROFILES)
        raise InvalidRequestError(f"unknown profile; expected one of: {allowed}", code="unknown_profile")
    return profile


def check_policy_oid(dotted: str) -> ObjectIdentifier:
    """A private certificate policy OID a profile or the installation may assert (RFC 5280 4.2.1.4).

    Refused with :class:`InvalidRequestError` (code ``policy_oid_invalid``): anything but a
    dotted OID, an arc above 32 bits, anyPolicy, and the CA/B Forum's reserved arc (those come
    from ``cabf_policy`` only, where the key and names allow them).
    """
    text = dotted.strip() if isinstance(dotted, str) else ""
    arcs = text.split(".")
    if (len(arcs) < 2 or not all(arc.isascii() and arc.isdigit() for arc in arcs) or arcs[0] not in "012"
            or any(len(arc) > 10 or int(arc) > MAX_OID_ARC for arc in arcs)):
        raise InvalidRequestError(f"{dotted!r} is not a policy OID such as 1.3.6.1.4.1.99999.1.1 "
                                  "(dotted numbers, each at most 32 bits)", code="policy_oid_invalid")
    if text == ANY_POLICY_OID:
        raise InvalidRequestError("anyPolicy belongs in CA certificates, not a subscriber's",
                                  code="policy_oid_invalid")
    if text.startswith(CABF_POLICY_ARC):
        raise InvalidRequestError("CA/B Forum policy OIDs are not listed by hand: set cabf_policy instead",
                                  code="policy_oid_invalid")
    try:
        return ObjectIdentifier(text)
    except ValueError:
        raise InvalidRequestError(f"{dotted!r} is not a valid OID", code="policy_oid_invalid") from None


def is_internal_name(name: x509.GeneralName) -> bool:
    """Whether a SAN can never be a public name (BR 7.1.2.7.12 "Internal Name", BR 4.2.2 "Reserved IP").

    A single-label DNS name, one under a reserved or name-collision suffix, or an IP address that
    is not globally routable. (Without the Public Suffix List this is a safe approximation: it
    only decides whether a CA/B Forum policy OID may be asserted.)
    """
    if isinstance(name, x509.DNSName):
        host = name.value.lower().rstrip(".").removeprefix("*.")
        if "." not in host:
            return True
        return any(host == suffix or host.endswith(f".{suffix}") for suffix in INTERNAL_SUFFIXES)
    if isinstance(name, x509.IPAddress):
        return not name.value.is_global
    if isinstance(name, x509.RFC822Name):
        return is_internal_name(x509.DNSName(name.value.rpartition("@")[2]))
    return False


def cabf_reserved_policy(profile: Profile) -> ObjectIdentifier | None:
    """The CA/B Forum reserved policy OID fitting the profile's EKU, if it opts in (else None)."""
    if not profile.cabf_policy:
        return None
    if ExtendedKeyUsageOID.SERVER_AUTH in profile.extended_key_usages:
        return CABF_DOMAIN_VALIDATED
    if ExtendedKeyUsageOID.EMAIL_PROTECTION in profile.extended_key_usages:
        return CABF_SMIME_MAILBOX_STRICT
    return None


def subscriber_policy_oids(profile: Profile, public_key: object,
                           sans: Sequence[x509.GeneralName]) -> tuple[ObjectIdentifier, ...]:
    """The certificatePolicies of a subscriber certificate (RFC 5280 4.2.1.4: each OID once).

    The profile's private OIDs, plus its CA/B Forum reserved OID where it opts in and no SAN is an
    internal name; the TLS one (DV) never for an Ed25519 key (TLS BR 6.1.5 allows RSA and ECDSA only).
    """
    oids = list(dict.fromkeys(profile.policy_oids))
    reserved = cabf_reserved_policy(profile)
    if reserved is None or reserved in oids or any(is_internal_name(name) for name in sans):
        return tuple(oids)
    if reserved == CABF_DOMAIN_VALIDATED and isinstance(public_key, Ed25519Types):
        return tuple(oids)  # the S/MIME BRs (6.1.5) allow Ed25519; the TLS BRs do not
    oids.append(reserved)
    return tuple(oids)


Ed25519Types = (ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey)


def asserted_policies(ca_certificate: x509.Certificate) -> frozenset[ObjectIdentifier] | None:
    """The policies a CA certificate vouches for; None when it asserts anyPolicy or names none.

    RFC 5280 6.1.3 (d): a relying party keeps a subordinate's policy only where every CA above
    asserts it or anyPolicy. A CA without certificatePolicies (a root, usually) is the trust
    anchor's business, not a restriction here.
    """
    try:
        policies = ca_certificate.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    oids = frozenset(info.policy_identifier for info in policies)
    return None if ObjectIdentifier(ANY_POLICY_OID) in oids else oids


def check_policies_covered(ca_certificate: x509.Certificate, oids: Sequence[ObjectIdentifier], *, what: str) -> None:
    """Refuse policy OIDs the CA does not assert (code ``policy_not_covered``): verifiers would drop them."""
    allowed = asserted_policies(ca_certificate)
    if allowed is None:
        return
    if missing := [oid.dotted_string for oid in oids if oid not in allowed]:
        raise PolicyError(
            f"{what} would assert {', '.join(missing)}, which its CA does not "
            f"(the CA asserts {', '.join(sorted(oid.dotted_string for oid in allowed))})",
            code="policy_not_covered",
        )


# CA/B Forum BR 6.3.2 as amended by ballot SC-081: the longest validity of a TLS
# subscriber certificate depends on when it is issued (398 -> 200 -> 100 -> 47 days).
SERVER_AUTH_VALIDITY_SCHEDULE: tuple[tuple[datetime, int], ...] = (
    (datetime(2026, 3, 15, tzinfo=UTC), 398),
    (datetime(2027, 3, 15, tzinfo=UTC), 200),
    (datetime(2029, 3, 15, tzinfo=UTC), 100),
)
SERVER_AUTH_FINAL_MAX_DAYS = 47


def max_validity(profile: Profile, issued_at: datetime) -> timedelta:
    """The longest validity ``profile`` allows for a certificate issued at ``issued_at``.

    Profiles with serverAuth follow the BR schedule (never more than the profile's
    own maximum); the others keep their fixed maximum.
    """
    own = profile.max_validity
    if ExtendedKeyUsageOID.SERVER_AUTH not in profile.extended_key_usages:
        return own
    for issued_before, days in SERVER_AUTH_VALIDITY_SCHEDULE:
        if issued_at < issued_before:
            return min(timedelta(days=days), own)
    return min(timedelta(days=SERVER_AUTH_FINAL_MAX_DAYS), own)


def max_validity_days(profile: Profile, issued_at: datetime) -> int:
    """:func:`max_validity` in whole days (0 for a profile shorter than a day)."""
    return max_validity(profile, issued_at).days
