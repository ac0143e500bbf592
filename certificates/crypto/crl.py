"""Certificate revocation lists (RFC 5280 section 5).

All revoked entries are built first and handed to the CRL builder in one call:
``CertificateRevocationListBuilder.add_revoked_certificate`` copies its list on
every call, which would make a CRL of n entries cost O(n^2).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

from cryptography import x509

from ._common import authority_key_identifier, distribution_point, require_key_matches
from .errors import InvalidRequestError, PolicyError
from .policy import ensure_utc
from .signing import IssuerKey, as_signer

#: RFC 5280 5.3.1 reason names offered to operators and API clients.
#: certificateHold and removeFromCRL are deliberately absent: this CA never
#: suspends certificates (BR 4.9.13 forbids suspension for TLS certificates).
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}

_REASONS_FOLDED = {name.lower(): flag for name, flag in REASONS.items()}


def parse_reason(name: str) -> x509.ReasonFlags:
    """Map an RFC 5280 reason name (case-insensitive) to :class:`x509.ReasonFlags`."""
    flag = _REASONS_FOLDED.get(name.strip().lower()) if isinstance(name, str) else None
    if flag is None:
        raise InvalidRequestError(
            f"unknown revocation reason; expected one of: {', '.join(REASONS)}", code="reason_invalid"
        )
    return flag


def reason_name(flag: x509.ReasonFlags | None) -> str:
    """The RFC 5280 name of ``flag`` (``unspecified`` for None)."""
    if flag is None:
        return "unspecified"
    for name, value in REASONS.items():
        if value is flag:
            return name
    raise InvalidRequestError("revocation reason is not offered by this CA", code="reason_invalid")


class RevokedEntry(NamedTuple):
    """One revoked certificate as stored by the service layer.

    Immutable; a NamedTuple rather than a frozen dataclass because a CRL of 100,000
    entries creates 100,000 of them and a tuple is built in half the time.
    """

    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None
    invalidity_date: datetime | None = None


def _utc_second(moment: datetime, label: str) -> datetime:
    """:func:`ensure_utc`, with no work for what the database hands over (UTC, whole seconds):
    this runs once or twice per CRL entry, and at 100,000 entries every microsecond shows."""
    if isinstance(moment, datetime) and moment.tzinfo is UTC and not moment.microsecond:
        return moment
    return ensure_utc(moment, label)


#: UTCTime cannot say anything earlier (RFC 5280 4.1.2.5.1); cryptography refuses it too.
_EARLIEST_TIME = datetime(1950, 1, 1, tzinfo=UTC)
#: One immutable reasonCode extension per reason, shared by every entry that carries it.
_REASON_EXTENSIONS = {
    flag: x509.Extension(x509.CRLReason.oid, False, x509.CRLReason(flag))
    for flag in REASONS.values()
    if flag is not x509.ReasonFlags.unspecified
}


def _revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    """Build one CRL entry.

    The reasonCode entry extension is omitted for ``unspecified`` (RFC 5280
    5.3.1 says it SHOULD be absent rather than unspecified; BR 7.2.2.1 says
    MUST NOT be unspecified). invalidityDate (RFC 5280 5.3.2) is added when
    known.

    The builder gets every field in its constructor: the fluent methods copy the
    builder at each step, which doubles the per-entry cost of a large CRL. Their
    checks are made here instead (positive serial of at most 20 octets, RFC 5280
    4.1.2.2; a revocation date UTCTime can express).
    """
    reason = entry.reason
    if reason in (x509.ReasonFlags.certificate_hold, x509.ReasonFlags.remove_from_crl):
        raise InvalidRequestError("certificate suspension is not supported", code="reason_invalid")
    serial = entry.serial
    if isinstance(serial, bool) or not isinstance(serial, int) or serial <= 0 or serial.bit_length() >= 160:
        raise InvalidRequestError("a revoked serial must be positive and fit in 20 octets", code="crl_invalid")
    revoked_at = _utc_second(entry.revoked_at, "revocation date")
    if revoked_at < _EARLIEST_TIME:
        raise InvalidRequestError("the revocation date must be on or after 1950-01-01", code="crl_invalid")
    extensions: list[x509.Extension[x509.ExtensionType]] = []
    if reason is not None and reason is not x509.ReasonFlags.unspecified:
        extensions.append(_REASON_EXTENSIONS[reason])
    if entry.invalidity_date is not None:
        invalidity = x509.InvalidityDate(_utc_second(entry.invalidity_date, "invalidity date"))
        extensions.append(x509.Extension(invalidity.oid, False, invalidity))
    return x509.RevokedCertificateBuilder(serial, revoked_at, extensions).build()


def _require_crl_signer(issuer_cert: x509.Certificate, issuer_key: IssuerKey) -> None:
    require_key_matches(issuer_cert, issuer_key)
    try:
        usage = issuer_cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.crl_sign:
        raise PolicyError("the issuer's key usage does not allow CRL signing", code="issuer_not_crl_signer")


def build_crl(
    issuer_cert: x509.Certificate,
    issuer_key: IssuerKey,
    entries: Iterable[RevokedEntry],
    crl_number: int,
    this_update: datetime,
    next_update: datetime,
    delta_base_crl_number: int | None = None,
    freshest_crl_url: str | None = None,
) -> x509.CertificateRevocationList:
    """Build and sign a full CRL, or a delta CRL when ``delta_base_crl_number`` is set.

    Extensions: authorityKeyIdentifier (RFC 5280 5.2.1, from the issuer's
    SKI), cRLNumber (5.2.3), deltaCRLIndicator critical (5.2.4) for a delta
    CRL, whose own ``crl_number`` must exceed the base's, and, on a full CRL,
    freshestCRL pointing at the delta CRL (5.2.6) when ``freshest_crl_url``
    is given.
    """
    _require_crl_signer(issuer_cert, issuer_key)
    this_update = ensure_utc(this_update, "this_update")
    next_update = ensure_utc(next_update, "next_update")
    if next_update <= this_update:
        raise InvalidRequestError("next_update must be after this_update", code="crl_invalid")
    if crl_number < 0 or crl_number.bit_length() > 159:  # RFC 5280 5.2.3: at most 20 octets
        raise InvalidRequestError("CRL number must be a non-negative integer of at most 20 octets", code="crl_invalid")

    revoked: list[x509.RevokedCertificate] = []
    seen: set[int] = set()
    for entry in entries:
        if entry.serial in seen:
            raise InvalidRequestError("duplicate serial in the revocation list", code="crl_invalid")
        seen.add(entry.serial)
        revoked.append(_revoked_certificate(entry))

    aki = authority_key_identifier(issuer_cert)
    extensions = [
        x509.Extension(aki.oid, False, aki),
        x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(crl_number)),
    ]
    if delta_base_crl_number is not None:
        if not 0 <= delta_base_crl_number < crl_number:
            raise InvalidRequestError("a delta CRL's number must exceed its base CRL number", code="crl_invalid")
        indicator = x509.DeltaCRLIndicator(delta_base_crl_number)
        extensions.append(x509.Extension(indicator.oid, True, indicator))
    elif freshest_crl_url:
        freshest = x509.FreshestCRL([distribution_point(freshest_crl_url)])
        extensions.append(x509.Extension(freshest.oid, False, freshest))

    builder = x509.CertificateRevocationListBuilder(
        issuer_name=issuer_cert.subject,
        last_update=this_update,
        next_update=next_update,
        extensions=extensions,
        revoked_certificates=revoked,
    )
    return as_signer(issuer_key).sign_crl(builder)
