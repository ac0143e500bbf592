"""Certificate builders for root CAs, intermediate CAs and end entities.

Extension choices follow RFC 5280 section 4.2 and the CA/Browser Forum
Baseline Requirements (BR) 7.1.2; the tests lint every output with pkilint.

Time: ``now`` defaults to the current UTC second. ``not_before`` is backdated
by ``_common.BACKDATE`` (one minute) to absorb clock skew between the CA and
relying parties; BR 7.1.2.7 tolerates backdating far beyond that, but more
is never needed. The validity is then clamped inside the issuer's
(:func:`certificates.crypto.policy.clamp_validity`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, ObjectIdentifier

from ._common import (
    authority_key_identifier,
    checked_serial,
    distribution_point,
    extension,
    require_key_matches,
    require_public_key_matches,
    sign_certificate,
    start_time,
)
from .errors import InvalidRequestError, PolicyError
from .keys import KeyType, PublicKey, key_type_of
from .names import dedupe_sans
from .policy import (
    NameConstraintSpec,
    ca_name_constraints,
    check_common_name_in_sans,
    check_directory_subtrees,
    check_general_subtrees,
    check_issuer_name_constraints,
    clamp_validity,
    validate_sans_for_profile,
)
from .profiles import Profile, check_policies_covered, key_usage_from_flags, subscriber_policy_oids
from .purposes import certificate_extended_key_usages, check_ca_covers, purpose_names, uncovered_usages
from .signing import IssuerKey

#: anyPolicy (RFC 5280 4.2.1.4). BR 7.1.2.10.5 lets a CA affiliated with the
#: root's operator assert it in a subordinate CA certificate, which is what a
#: private PKI's intermediates are; pkilint wants certificatePolicies present.
ANY_POLICY = ObjectIdentifier("2.5.29.32.0")

_CA_KEY_USAGE = key_usage_from_flags(frozenset({"digital_signature", "key_cert_sign", "crl_sign"}))


@dataclass(frozen=True)
class PublicationUrls:
    """Where a CA publishes its CRL, OCSP responder and certificate.

    These go into the CRL distribution points (RFC 5280 4.2.1.13), freshest
    CRL (4.2.1.15) and authority information access (4.2.2.1) extensions of
    the certificates the CA issues. BR 7.1.2.11.2 / 7.1.2.7.7 want plain
    ``http`` URLs (CRLs and OCSP responses are signed, and validating an https
    URL would need the very revocation data being fetched): ``https`` URLs are
    accepted but pkilint reports them (``crldp_dpname_prohibited_uri_scheme``,
    ERROR). :attr:`all_plain_http` lets a start-up check warn about that.
    """

    crl_url: str
    ocsp_url: str
    ca_issuers_url: str
    delta_crl_url: str | None = None

    def __post_init__(self) -> None:
        for label, url in (
            ("CRL", self.crl_url),
            ("OCSP", self.ocsp_url),
            ("CA issuers", self.ca_issuers_url),
            ("delta CRL", self.delta_crl_url),
        ):
            if url is None and label == "delta CRL":
                continue
            _check_url(label, url)

    @property
    def all_plain_http(self) -> bool:
        """True when every URL uses the ``http`` scheme BR 7.1.2.11.2 asks for."""
        urls = [self.crl_url, self.ocsp_url, self.ca_issuers_url, self.delta_crl_url]
        return all(urlsplit(url).scheme == "http" for url in urls if url is not None)


def _check_url(label: str, url: object) -> None:
    if not isinstance(url, str):
        raise InvalidRequestError(f"{label} URL must be text", code="url_invalid")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.isascii() or " " in url:
        raise InvalidRequestError(f"{label} URL must be an absolute http(s) URL", code="url_invalid")


# --------------------------------------------------------------------------
# Shared pieces
# --------------------------------------------------------------------------


def publication_extensions(urls: PublicationUrls, *, crl: bool = True,
                            ocsp: bool = True) -> list[x509.Extension[x509.ExtensionType]]:
    """CRLDP, freshestCRL (if a delta CRL URL is set) and AIA for ``urls`` (a new list each call).

    ``crl=False`` leaves out the CRL pointers, ``ocsp=False`` the AIA OCSP URL (a profile's
    choice); the AIA caIssuers URL is always written.
    """
    return list(_publication_extensions(urls, crl, ocsp))


@functools.lru_cache(maxsize=1024)
def _publication_extensions(urls: PublicationUrls, crl: bool = True,
                            ocsp: bool = True) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    """Built once per set of URLs: the extension objects are immutable, so issuances share them."""
    extensions: list[x509.Extension[x509.ExtensionType]] = []
    if crl:
        extensions.append(extension(x509.CRLDistributionPoints([distribution_point(urls.crl_url)]), False))
    if crl and urls.delta_crl_url:
        # RFC 5280 4.2.1.15: freshestCRL MUST be non-critical.
        extensions.append(extension(x509.FreshestCRL([distribution_point(urls.delta_crl_url)]), False))
    access = []
    if ocsp:
        access.append(x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                             x509.UniformResourceIdentifier(urls.ocsp_url)))
    access.append(x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                         x509.UniformResourceIdentifier(urls.ca_issuers_url)))
    extensions.append(extension(x509.AuthorityInformationAccess(access), False))
    return tuple(extensions)


def _policies(oids: Sequence[ObjectIdentifier]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, None) for oid in oids])


def require_ca_issuer(issuer_cert: x509.Certificate, *, for_ca: bool = False) -> None:
    """Check that ``issuer_cert`` may sign certificates (and CAs, if ``for_ca``).

    RFC 5280 4.2.1.9: a certificate signer must assert cA=TRUE and, when a
    pathLenConstraint of 0 is present, may not certify further CAs. RFC 5280
    4.2.1.3: keyCertSign must be set. Raises :class:`PolicyError`.
    """
    try:
        constraints = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise PolicyError("the issuer is not a CA certificate", code="issuer_not_ca")
    try:
        usage = issuer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_cert_sign:
        raise PolicyError("the issuer's key usage does not allow certificate signing", code="issuer_not_ca")
    if for_ca and constraints.path_length == 0:
        raise PolicyError(
            "the issuer's path length constraint (0) does not allow another CA below it", code="path_length"
        )


# --------------------------------------------------------------------------
# Root CA
# --------------------------------------------------------------------------


def build_root_ca_certificate(
    private_key: IssuerKey,
    subject: x509.Name,
    days: int,
    serial: int | None = None,
    path_length: int | None = None,
    now: datetime | None = None,
) -> x509.Certificate:
    """Build a self-signed root CA certificate (BR 7.1.2.1).

    basicConstraints critical cA=TRUE (pathLen as given), keyUsage critical
    keyCertSign + cRLSign + digitalSignature (the latter lets the root sign
    OCSP responses itself), SKI, and AKI with the keyIdentifier equal to the
    SKI (BR 7.1.2.1.3). No CRLDP, AIA, EKU or certificatePolicies: BR 7.1.2.1.2
    forbids or discourages them in roots, and nothing could be revoked or
    fetched for a trust anchor anyway.
    """
    key_type_of(private_key.public_key())
    _check_path_length(path_length)
    if not list(subject):
        raise InvalidRequestError("a root CA needs a non-empty subject name", code="subject_invalid")
    start, end = clamp_validity(start_time(now), days, None, None)
    public_key = private_key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)  # type: ignore[arg-type]
    extensions = [
        extension(x509.BasicConstraints(ca=True, path_length=path_length), True),
        extension(_CA_KEY_USAGE, True),
        extension(ski, False),
        extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False),
    ]
    return sign_certificate(
        issuer_name=subject,
        subject=subject,
        public_key=public_key,
        serial=checked_serial(serial),
        not_before=start,
        not_after=end,
        extensions=extensions,
        issuer_key=private_key,
    )


def _check_path_length(path_length: int | None) -> None:
    if path_length is not None and (isinstance(path_length, bool) or path_length < 0):
        raise InvalidRequestError("path length must be a non-negative integer", code="path_length")


# --------------------------------------------------------------------------
# Intermediate CA
# --------------------------------------------------------------------------


def _effective_path_length(issuer_cert: x509.Certificate, requested: int | None) -> int | None:
    """Derive the new CA's pathLenConstraint from the issuer's (RFC 5280 4.2.1.9).

    If the issuer has pathLen N, the new CA gets at most N-1: an explicit
    larger request is refused, ``None`` becomes N-1 so the certificate states
    the limit that applies to it anyway.
    """
    issuer_limit = issuer_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    if issuer_limit is None:
        return requested
    allowed = issuer_limit - 1
    if requested is None:
        return allowed
    if requested > allowed:
        raise PolicyError(
            f"the issuer's path length constraint allows at most {allowed} for a subordinate CA",
            code="path_length",
        )
    return requested


def build_intermediate_ca_certificate(
    issuer_cert: x509.Certificate,
    issuer_key: IssuerKey,
    public_key: PublicKey,
    subject: x509.Name,
    days: int,
    path_length: int | None,
    urls: PublicationUrls,
    permitted: Sequence[str] | None = None,
    excluded: Sequence[str] | None = None,
    serial: int | None = None,
    now: datetime | None = None,
    extended_key_usages: Sequence[ObjectIdentifier] | None = None,
    policy_oids: Sequence[ObjectIdentifier] = (ANY_POLICY,),
) -> x509.Certificate:
    """Build a subordinate CA certificate signed by ``issuer_cert``/``issuer_key``.

    ``urls`` are the *issuer's* publication URLs (its CRL, OCSP responder and
    certificate). ``permitted``/``excluded`` are name-constraint strings (see
    :class:`certificates.crypto.policy.NameConstraintSpec`); when given, a
    critical nameConstraints extension is added (RFC 5280 4.2.1.10).

    Name constraints (:func:`certificates.crypto.policy.ca_name_constraints`): with
    permitted names, a CA that may issue TLS certificates also gets the CA's own C and O
    as a directoryName permitted subtree and excluded subtrees for the name forms it
    does not permit (BR 7.1.2.5.2); a CA whose EKU has no emailProtection gets no
    rfc822Name subtree.

    ``extended_key_usages`` restricts the CA (BR 7.1.2.10.6 requires
    serverAuth [+ clientAuth] and nothing else in a TLS subordinate CA); the
    default ``None`` leaves the CA unrestricted so it can issue every profile,
    including e-mail. Verifiers intersect the EKUs along a path, so the issuer
    must cover them (:mod:`.purposes`). ``policy_oids`` default to anyPolicy
    (BR 7.1.2.10.5).
    """
    require_key_matches(issuer_cert, issuer_key)
    require_ca_issuer(issuer_cert, for_ca=True)
    if extended_key_usages:
        check_ca_covers(issuer_cert, list(extended_key_usages), what="A subordinate CA with these purposes")
    if ANY_POLICY not in policy_oids:
        check_policies_covered(issuer_cert, policy_oids, what="The subordinate CA")
    key_type_of(public_key)
    if subject == issuer_cert.subject or not list(subject):
        # RFC 5280 4.1.2.6 / 6.1: a CA needs its own, non-empty name; reusing the
        # issuer's would make the certificate self-issued and confuse path building.
        raise InvalidRequestError("a subordinate CA needs its own non-empty subject name", code="subject_invalid")
    _check_path_length(path_length)
    check_directory_subtrees(subject, [_name_constraints_of(issuer_cert)])  # RFC 5280 4.2.1.10
    effective_path_length = _effective_path_length(issuer_cert, path_length)
    start, end = clamp_validity(
        start_time(now), days, None, issuer_cert.not_valid_after_utc, issuer_cert.not_valid_before_utc
    )
    extensions = [
        extension(x509.BasicConstraints(ca=True, path_length=effective_path_length), True),
        extension(_CA_KEY_USAGE, True),
        extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False),
        extension(authority_key_identifier(issuer_cert), False),
        *publication_extensions(urls),
    ]
    if extended_key_usages:
        extensions.append(extension(x509.ExtendedKeyUsage(list(extended_key_usages)), False))
    if policy_oids:
        extensions.append(extension(_policies(policy_oids), False))
    if permitted or excluded:
        # RFC 5280 6.1.4 (g): relying parties intersect the constraints of every
        # CA on the path, so a subordinate cannot widen its issuer's subtrees.
        # BR 7.1.2.5.2: a directoryName subtree and the excluded forms of a
        # technically constrained TLS CA; no rfc822Name on a CA without e-mail.
        usages = set(extended_key_usages or ())
        unrestricted = not usages or ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
        constraints = ca_name_constraints(
            permitted, excluded, subject=subject,
            email=unrestricted or ExtendedKeyUsageOID.EMAIL_PROTECTION in usages,
            tls=unrestricted or ExtendedKeyUsageOID.SERVER_AUTH in usages,
        )
        extensions.append(extension(constraints, True))
    return sign_certificate(
        issuer_name=issuer_cert.subject,
        subject=subject,
        public_key=public_key,
        serial=checked_serial(serial),
        not_before=start,
        not_after=end,
        extensions=extensions,
        issuer_key=issuer_key,
    )


# --------------------------------------------------------------------------
# End entity
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckedIssuer:
    """What signing below a CA certificate reads from it, read once per certificate.

    Every value comes from the certificate alone (nothing of the private key is kept), and
    only a certificate that passed :func:`require_ca_issuer` is remembered.
    """

    subject: x509.Name
    public_key: PublicKey
    authority_key_identifier: x509.Extension[x509.AuthorityKeyIdentifier]
    name_constraints: x509.NameConstraints | None
    not_valid_before: datetime
    not_valid_after: datetime
    #: The CA's EKU (``None``: none, so no restriction); see :mod:`.purposes`.
    extended_key_usages: frozenset[ObjectIdentifier] | None = None


@functools.lru_cache(maxsize=256)
def _ca_certificate_facts(issuer_cert: x509.Certificate) -> CheckedIssuer:
    require_ca_issuer(issuer_cert)  # raises for a certificate that may not sign: not cached
    try:
        constraints = issuer_cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    return CheckedIssuer(
        subject=issuer_cert.subject,
        public_key=issuer_cert.public_key(),  # type: ignore[arg-type]
        authority_key_identifier=extension(authority_key_identifier(issuer_cert), False),
        name_constraints=constraints,
        not_valid_before=issuer_cert.not_valid_before_utc,
        not_valid_after=issuer_cert.not_valid_after_utc,
        extended_key_usages=certificate_extended_key_usages(issuer_cert),
    )


def _name_constraints_of(certificate: x509.Certificate) -> x509.NameConstraints | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None


def checked_issuer(issuer_cert: x509.Certificate, issuer_key: IssuerKey) -> CheckedIssuer:
    """:func:`require_key_matches` and :func:`require_ca_issuer`, in that order, then the issuer's facts."""
    try:
        issuer = _ca_certificate_facts(issuer_cert)
    except PolicyError:
        require_key_matches(issuer_cert, issuer_key)  # a key of another certificate is reported first
        raise
    require_public_key_matches(issuer.public_key, issuer_key)
    return issuer


def check_key_type_for_profile(profile: Profile, key_type: KeyType | str) -> None:
    """Refuse a key type the profile does not list (an empty list allows every type)."""
    if profile.allowed_key_types and str(key_type) not in profile.allowed_key_types:
        allowed = ", ".join(sorted(profile.allowed_key_types))
        raise InvalidRequestError(
            f"profile {profile.name!r} does not allow {key_type} keys (allowed: {allowed})",
            code="key_type_not_allowed",
        )


def _require_purposes_covered(issuer: CheckedIssuer, profile: Profile, ca_chain: Sequence[x509.Certificate]) -> None:
    """Every CA on the path must vouch for the profile's EKUs, or verifiers refuse the leaf (EKU chaining)."""
    missing = uncovered_usages(issuer.extended_key_usages, profile.extended_key_usages)
    if missing:
        raise PolicyError(
            f"The '{profile.name}' profile needs {', '.join(purpose_names(missing))}, which the issuing CA's "
            f"extended key usage ({', '.join(purpose_names(issuer.extended_key_usages or ()))}) does not cover.",
            code="issuer_purpose",
        )
    for ca_cert in ca_chain:
        check_ca_covers(ca_cert, profile.extended_key_usages, what=f"The '{profile.name}' profile")


def build_end_entity_certificate(
    issuer_cert: x509.Certificate,
    issuer_key: IssuerKey,
    public_key: PublicKey,
    subject: x509.Name,
    sans: Sequence[x509.GeneralName],
    profile: Profile,
    days: int | timedelta,
    urls: PublicationUrls,
    serial: int | None = None,
    now: datetime | None = None,
    name_constraints: NameConstraintSpec | None = None,
    ca_chain: Sequence[x509.Certificate] = (),
) -> x509.Certificate:
    """Build a subscriber certificate for ``profile``.

    Checks: the issuer is a CA and matches ``issuer_key``; the EKU of the issuer
    and of every CA in ``ca_chain`` covers the profile's; the subject key is
    acceptable; SAN types/presence/wildcards fit the profile; the commonName
    repeats a SAN where the profile requires (BR 7.1.4.3); the SANs satisfy the
    nameConstraints of the issuer and of every CA in ``ca_chain`` (the CAs
    above the issuer, if the caller has them) and the optional extra
    ``name_constraints``; the validity fits the profile and the issuer.

    Extensions: basicConstraints critical cA=FALSE (BR 7.1.2.7.8 allows it and
    pkilint accepts it; stating it makes misuse as a CA impossible even for
    sloppy relying parties), keyUsage critical per profile and key type, EKU,
    SAN (critical iff the subject is empty, RFC 5280 4.2.1.6), SKI, AKI,
    CRLDP (+ freshestCRL) and the AIA OCSP URL where the profile keeps them, AIA caIssuers,
    certificatePolicies (:func:`subscriber_policy_oids`), TLS Feature status_request for a
    Must-Staple profile (RFC 7633). ``days`` is a number of days or a :class:`timedelta`.
    """
    issuer = checked_issuer(issuer_cert, issuer_key)
    check_key_type_for_profile(profile, key_type_of(public_key))
    _require_purposes_covered(issuer, profile, ca_chain)
    if public_key == issuer.public_key:
        raise InvalidRequestError("the request reuses the issuing CA's own key", code="key_reuse")
    sans = dedupe_sans(sans)
    validate_sans_for_profile(profile, sans)
    if profile.common_name_in_san:
        subject = check_common_name_in_sans(subject, sans)
    # RFC 5280 6.1.4 (g): the constraints of every CA on the path apply.
    if issuer.name_constraints is not None:
        check_general_subtrees(issuer.name_constraints.permitted_subtrees, issuer.name_constraints.excluded_subtrees,
                               sans)
    for ca_cert in ca_chain:
        check_issuer_name_constraints(ca_cert, sans)
    # RFC 5280 4.2.1.10: directoryName subtrees bind the subject (callers prefix it with
    # `subject_within_directory_subtrees`; this refuses what relying parties would refuse).
    check_directory_subtrees(subject, [issuer.name_constraints, *(_name_constraints_of(c) for c in ca_chain)])
    if name_constraints is not None:
        spec = name_constraints.to_extension()
        check_general_subtrees(spec.permitted_subtrees, spec.excluded_subtrees, sans)
    if not sans and not list(subject):
        raise InvalidRequestError("a certificate needs a subject or a subject alternative name", code="subject_invalid")
    start, end = clamp_validity(start_time(now), days, profile, issuer.not_valid_after, issuer.not_valid_before)
    extensions = [
        extension(x509.BasicConstraints(ca=False, path_length=None), True),
        extension(profile.key_usage_for(public_key), True),
        extension(x509.ExtendedKeyUsage(list(profile.extended_key_usages)), False),
    ]
    if sans:
        extensions.append(extension(x509.SubjectAlternativeName(sans), not list(subject)))
    extensions += [
        extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False),
        issuer.authority_key_identifier,
        *publication_extensions(urls, crl=profile.crl_distribution_point, ocsp=profile.ocsp_url),
    ]
    if policy_oids := subscriber_policy_oids(profile, public_key, sans):
        check_policies_covered(issuer_cert, policy_oids, what=f"A {profile.name!r} certificate")
        extensions.append(extension(_policies(policy_oids), False))
    if profile.must_staple:
        # RFC 7633 section 4: the TLS Feature extension with status_request (5), non-critical.
        extensions.append(extension(x509.TLSFeature([x509.TLSFeatureType.status_request]), False))
    return sign_certificate(
        issuer_name=issuer.subject,
        subject=subject,
        public_key=public_key,
        serial=checked_serial(serial),
        not_before=start,
        not_after=end,
        extensions=extensions,
        issuer_key=issuer_key,
    )
