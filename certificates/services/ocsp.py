"""The OCSP responder (RFC 6960, with the RFC 5019 lightweight profile for caching).

Who signs:

* an intermediate CA's answers are signed by a delegated responder certificate the CA
  issues to itself (RFC 6960 4.2.2.2: id-kp-OCSPSigning, id-pkix-ocsp-nocheck, a few
  days of validity), renewed automatically once less than half its life remains; its
  key is sealed by the vault like an intermediate key and cached in memory
  (`PKI_OCSP_DELEGATED=false` makes the CA sign itself);
* a root's key needs the operator's password, so the answers about its children are
  pre-signed whenever the root is unlocked (`presign_root_responses`, called by
  `publication` with the root's CRL) and served as they are until the root CRL's nextUpdate.

Validity: `PKI_OCSP_RESPONSE_VALIDITY` (a day by default, 8 hours to 10 days: BR 4.9.10); an
answer is re-signed once half its validity is gone (at most four days after its thisUpdate).

Caching: a signed answer without a nonce is kept in Django's cache (Redis when
`CACHE_URL` is set) for that time, under the CA, the responder, the CertID hash algorithm, the serial
and the *current revocation state read from the database* (one indexed query per
request). A revocation therefore changes the key and invalidates the cached answer
at once, in every worker, without any shared cache. A request with a nonce is
signed per request (the nonce must be echoed; RFC 5019 clients send none). Each worker
also keeps the answers it served lately in memory, under the same key, until their refresh
point (`_local_answers`): a hit costs the status query and no cache round trip.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.crl import parse_reason
from certificates.crypto.errors import CryptoError
from certificates.crypto.keys import KeyType
from certificates.crypto.names import build_subject
from certificates.crypto.ocsp import (
    MalformedOCSPRequest,
    OCSPCertId,
    build_ocsp_responder_certificate,
    build_ocsp_response,
    issuer_hashes,
    ocsp_error_response,
    parse_ocsp_request,
    request_nonce,
)
from certificates.crypto.policy import directory_subtree
from certificates.crypto.serials import serial_to_hex
from certificates.crypto.signing import Signer
from certificates.keystore import artifact_store, key_removed_on_failure
from certificates.models import (
    Certificate,
    CertificateAuthority,
    CertificateKind,
    CertificateStatus,
    KeySource,
    PresignedOCSPResponse,
)
from certificates.services.records import create_certificate_row, load_x509
from certificates.signers import fresh_responder_key, intermediate_signer, responder_signer
from certificates.vault.custody import delete_ca_key
from certificates.vault.storage import ArtifactStore
from pki_project.actor import Actor

logger = logging.getLogger(__name__)

RESPONDER_KEY_TYPE = KeyType.EC_P256  # fast to sign with, whatever the CA's own key type
ISSUER_CACHE_SECONDS = 60
#: CertID hash algorithms a root's answers are pre-signed for (openssl's default and SHA-256).
PRESIGNED_ALGORITHMS: tuple[hashes.HashAlgorithm, ...] = (hashes.SHA1(), hashes.SHA256())  # noqa: S303


# --- Signature counter (tests and benchmarks read it: a cache hit must cost none) -------

_signatures = 0
_signatures_lock = threading.Lock()


def _count_signature() -> None:
    global _signatures
    with _signatures_lock:
        _signatures += 1


def signature_count() -> int:
    """How many OCSP responses this process has signed so far."""
    return _signatures


# --- Answers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OCSPAnswer:
    """What the view sends: DER bytes, and for a successful answer its validity (for HTTP caching)."""

    der: bytes
    status: str  # good | revoked | unknown, or the error status (malformedRequest, unauthorized, ...)
    this_update: datetime | None = None
    next_update: datetime | None = None
    from_cache: bool = False
    nonce: bool = False  # signed for one request (its nonce echoed): not for shared caches

    @property
    def successful(self) -> bool:
        return self.this_update is not None

    @classmethod
    def error(cls, status: str) -> OCSPAnswer:
        return cls(ocsp_error_response(status), status)


@dataclass(frozen=True)
class _Issuer:
    """What answering needs about a CA, cached (DER and hashes: cheap to keep, cheap to compare)."""

    ca_id: int
    slug: str
    is_root: bool
    certificate_der: bytes
    fingerprint: str
    hashes: dict[str, tuple[bytes, bytes]]


_issuers: dict[tuple[str, str], tuple[float, _Issuer]] = {}


def _issuer(reference: str) -> _Issuer | None:
    """The CA named `reference`, memoised in this process for `ISSUER_CACHE_SECONDS` (CA rows never
    change their certificate; the data directory is part of the key so a restore or another
    test installation is never served another's CA)."""
    memo_key = (str(settings.PKI_DATA_DIR), reference)
    found = _issuers.get(memo_key)
    if found is not None and found[0] > time.monotonic():
        return found[1]
    ca = CertificateAuthority.objects.select_related("certificate").by_reference(reference).first()
    if ca is None:
        return None
    certificate = load_x509(ca.certificate)
    issuer = _Issuer(
        ca.pk, ca.slug, ca.is_root, bytes(ca.certificate.der), ca.certificate.fingerprint_sha256,
        {algorithm.name: issuer_hashes(certificate, algorithm) for algorithm in PRESIGNED_ALGORITHMS},
    )
    if len(_issuers) > 1024:  # bounded: references come from URLs
        _issuers.clear()
    _issuers[memo_key] = (time.monotonic() + ISSUER_CACHE_SECONDS, issuer)
    return issuer


def _names_issuer(request: ocsp.OCSPRequest, issuer: _Issuer) -> bool:
    """RFC 6960 4.1.1: the CertID's issuerNameHash and issuerKeyHash, in the request's own algorithm."""
    algorithm = request.hash_algorithm
    expected = issuer.hashes.get(algorithm.name)
    if expected is None:
        expected = issuer_hashes(x509.load_der_x509_certificate(issuer.certificate_der), algorithm)
    return expected == (request.issuer_name_hash, request.issuer_key_hash)


@dataclass(frozen=True)
class _Status:
    status: str
    revoked_at: datetime | None = None
    reason: str = ""

    @property
    def token(self) -> str:
        """Part of the cache key: changes whenever the answer must change."""
        if self.revoked_at is None:
            return self.status
        return f"revoked-{int(self.revoked_at.timestamp())}-{self.reason}"


def _status(ca_id: int, serial: int) -> _Status:
    """One indexed query on (issuer, serial): the revocation columns say it all.

    Plain SQL on the hot path: building the equivalent ORM query costs more than running it.
    """
    if serial <= 0 or serial.bit_length() > 160:
        return _Status("unknown")
    table = Certificate._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT revoked_at, revocation_reason FROM {table} WHERE issuer_id = %s AND serial = %s",  # noqa: S608
            [ca_id, serial_to_hex(serial)],
        )
        row = cursor.fetchone()
    if row is None:
        return _Status("unknown")  # RFC 6960 2.2: we never issued it
    revoked_at, reason = row
    if revoked_at is None:
        return _Status("good")
    return _Status("revoked", _aware_utc(revoked_at), reason)


def _aware_utc(value: datetime | str) -> datetime:
    """A timestamp column read with plain SQL: SQLite gives naive UTC (or text), PostgreSQL aware."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def answer_ocsp_request(reference: str, data: bytes) -> OCSPAnswer:
    """Answer the DER OCSP request `data` sent to the responder of CA `reference` (slug or id).

    Never raises for a client's input: malformed data gets malformedRequest, a CA that
    is not ours (or a CertID naming another CA) unauthorized (RFC 6960 2.3), anything
    unexpected internalError, logged.
    """
    try:
        request = parse_ocsp_request(data)
    except MalformedOCSPRequest:
        return OCSPAnswer.error("malformedRequest")
    return answer_parsed_ocsp_request(reference, request)


def answer_parsed_ocsp_request(reference: str, request: ocsp.OCSPRequest) -> OCSPAnswer:
    """`answer_ocsp_request` for a request already parsed (the GET form decodes it first)."""
    try:
        return _answer(reference, request)
    except ResponderUnavailable as reason:
        logger.warning("OCSP request for CA %s refused: %s", reference, reason)
        return OCSPAnswer.error("unauthorized")
    except Exception:
        logger.exception("OCSP answer for CA %s failed", reference)
        return OCSPAnswer.error("internalError")


def _answer(reference: str, request: ocsp.OCSPRequest, now: datetime | None = None) -> OCSPAnswer:
    issuer = _issuer(reference)
    if issuer is None or not _names_issuer(request, issuer):
        return OCSPAnswer.error("unauthorized")
    if issuer.is_root:
        return _presigned_answer(issuer, request, now or timezone.now())
    status = _status(issuer.ca_id, request.serial_number)
    nonce = request_nonce(request)
    if nonce is not None:  # the nonce must come back: sign this one (RFC 6960 4.4.1)
        return _signed_answer(issuer, request, status, now, nonce=True)
    cache_key = (f"pki:ocsp:resp:{issuer.ca_id}:{issuer.fingerprint[:16]}:{request.hash_algorithm.name}:"
                 f"{request.serial_number:x}:{status.token}")
    cached = _cache_get(cache_key)
    if cached is not None and (now or timezone.now()) < cached.this_update + refresh_after():
        return OCSPAnswer(cached.der, cached.status, cached.this_update, cached.next_update, from_cache=True)
    answer = _signed_answer(issuer, request, status, now)
    _cache_set(cache_key, answer, int(refresh_after().total_seconds()))
    return answer


#: Each worker keeps the answers it served lately in front of the shared cache (a dictionary read
#: instead of a Redis round trip). Safe for the same reason the shared cache is: the key carries the
#: revocation state read from the database, and `_answer` re-signs past the refresh point either way.
LOCAL_ANSWERS_MAX = 4096
_local_answers: dict[str, tuple[float, OCSPAnswer]] = {}


def _cache_get(key: str) -> OCSPAnswer | None:
    """The response cache is an optimisation: when it is unreachable, answers are signed instead."""
    local = _local_answers.get(key)
    if local is not None and local[0] > time.monotonic():
        return local[1]
    try:
        answer = cache.get(key)
    except Exception:
        logger.warning("OCSP response cache unavailable; signing instead", exc_info=True)
        return None
    if answer is not None:
        _keep_locally(key, answer)
    return answer


def _cache_set(key: str, answer: OCSPAnswer, timeout: int) -> None:
    try:
        cache.set(key, answer, timeout)
    except Exception:
        logger.warning("OCSP response cache unavailable; answer not kept", exc_info=True)
        return
    _keep_locally(key, answer)


def _keep_locally(key: str, answer: OCSPAnswer) -> None:
    """Until the answer's refresh point (in this process's monotonic clock); bounded, oldest out first."""
    remaining = (answer.this_update + refresh_after() - timezone.now()).total_seconds()
    if remaining <= 0:
        return
    if len(_local_answers) >= LOCAL_ANSWERS_MAX:
        _local_answers.pop(next(iter(_local_answers)), None)
    _local_answers[key] = (time.monotonic() + remaining, answer)


def _response_validity() -> timedelta:
    return timedelta(seconds=settings.PKI_OCSP_RESPONSE_VALIDITY)


#: BR 4.9.10: an answer valid 16 hours or more is replaced no later than four days after its thisUpdate.
MAX_REFRESH_AFTER = timedelta(days=4)


def refresh_after() -> timedelta:
    """How long after its thisUpdate a cached answer is still served: half its validity, at most four days.

    BR 4.9.10: an answer valid less than 16 hours is replaced before half its validity is gone; one
    valid 16 hours or more at least 8 hours before its nextUpdate and no later than four days after its
    thisUpdate. Half the validity (at least 4 of the 8 to 240 hours allowed) with a four-day cap
    meets all three.
    """
    return min(_response_validity() / 2, MAX_REFRESH_AFTER)


def _signed_answer(issuer: _Issuer, request: ocsp.OCSPRequest, status: _Status, now: datetime | None,
                   nonce: bool = False) -> OCSPAnswer:
    now = (now or timezone.now()).replace(microsecond=0)
    issuer_certificate = x509.load_der_x509_certificate(issuer.certificate_der)
    responder_certificate, responder = current_responder(issuer, now)
    next_update = now + _response_validity()
    der = build_ocsp_response(
        request, issuer_certificate, responder_certificate, responder, status.status,
        revoked_at=status.revoked_at, reason=parse_reason(status.reason) if status.reason else None,
        this_update=now, next_update=next_update,
    )
    _count_signature()
    return OCSPAnswer(der, status.status, now, next_update, nonce=nonce)


# --- Delegated responders ------------------------------------------------------------------


class ResponderUnavailable(Exception):
    """No responder may sign for this CA now (it is revoked or expired): the answer is unauthorized."""


@dataclass(frozen=True)
class _Responder:
    certificate: x509.Certificate
    fingerprint: str
    key_directory: str
    renew_after: datetime
    checked_at: float  # time.monotonic() of the database read; re-read after RESPONDER_RECHECK_SECONDS

    def fresh(self, now: datetime) -> bool:
        return self.renew_after > now and time.monotonic() - self.checked_at < RESPONDER_RECHECK_SECONDS


#: How long a worker trusts its memo of the current responder before reading the row again
#: (a responder revoked with its CA stops signing in every worker within this time).
RESPONDER_RECHECK_SECONDS = 60


_responders: dict[tuple[str, int, str], _Responder] = {}
_responders_lock = threading.Lock()


def _responder_memo_key(issuer: _Issuer) -> tuple[str, int, str]:
    return (str(settings.PKI_DATA_DIR), issuer.ca_id, issuer.fingerprint)


def _renew_after(row: Certificate) -> datetime:
    return row.not_before + (row.not_after - row.not_before) / 2


def _usable_responder_row(ca_id: int, now: datetime) -> Certificate | None:
    """The newest responder of the CA with more than half its life left (renewal point)."""
    for row in (Certificate.objects.filter(issuer_id=ca_id, kind=CertificateKind.OCSP_RESPONDER,
                                           revoked_at__isnull=True, not_after__gt=now)
                .order_by("-not_after")[:1]):
        if _renew_after(row) > now:
            return row
    return None


def current_responder(issuer: _Issuer, now: datetime) -> tuple[x509.Certificate, Signer]:
    """The (certificate, signer) that signs the CA's answers: a delegated responder, or the CA itself."""
    if not settings.PKI_OCSP_DELEGATED:
        ca = CertificateAuthority.objects.select_related("certificate").get(pk=issuer.ca_id)
        return x509.load_der_x509_certificate(issuer.certificate_der), intermediate_signer(ca)
    memo_key = _responder_memo_key(issuer)
    responder = _responders.get(memo_key)
    if responder is None or not responder.fresh(now):
        row = _usable_responder_row(issuer.ca_id, now)
        if row is None:
            row = issue_responder_certificate(
                CertificateAuthority.objects.select_related("certificate", "organization").get(pk=issuer.ca_id),
                now=now,
            )
        responder = _Responder(load_x509(row), row.fingerprint_sha256, row.key_path, _renew_after(row),
                               time.monotonic())
        with _responders_lock:
            _responders[memo_key] = responder
    return responder.certificate, responder_signer(responder.fingerprint, responder.key_directory)


def _responder_subject(ca: CertificateAuthority) -> x509.Name:
    """C and O as in the CA's own subject (so they fall in a directoryName constraint of the CA), then CN."""
    common_name = build_subject(f"OCSP Responder {ca.name}"[:64])
    organization = directory_subtree(load_x509(ca.certificate).subject)
    if organization is None:
        return build_subject(f"OCSP Responder {ca.name}"[:64], organization=ca.organization.name[:64],
                             country=settings.PKI_DEFAULT_COUNTRY)
    return x509.Name([*organization.rdns, *common_name.rdns])


def issue_responder_certificate(ca: CertificateAuthority, *, now: datetime | None = None) -> Certificate:
    """Issue (or, if another worker just did, return) a delegated OCSP responder certificate for `ca`.

    RFC 6960 4.2.2.2 and 4.2.2.2.1: EKU id-kp-OCSPSigning, ocsp-nocheck, short validity
    (`PKI_OCSP_RESPONDER_DAYS`). The key is sealed in the vault like an intermediate key.
    """
    now = (now or timezone.now()).replace(microsecond=0)
    if ca.certificate.status_at(now) != CertificateStatus.VALID:
        raise ResponderUnavailable(f"the CA '{ca.slug}' is {ca.certificate.status_at(now)} and certifies no responder")
    key = fresh_responder_key(RESPONDER_KEY_TYPE)
    try:
        certificate = build_ocsp_responder_certificate(
            load_x509(ca.certificate), intermediate_signer(ca), key.public_key(), _responder_subject(ca),
            days=settings.PKI_OCSP_RESPONDER_DAYS, now=now,
        )
    except CryptoError:
        logger.exception("Building the OCSP responder certificate of CA %s failed", ca.slug)
        raise
    key_directory = f"ocsp/{uuid.uuid4().hex}"
    store = artifact_store()
    key.seal(store, key_directory)
    with key_removed_on_failure(store, key_directory):
        return _record_responder(ca, certificate, key_directory, now, store)


def _record_responder(ca: CertificateAuthority, certificate: x509.Certificate, key_directory: str, now: datetime,
                      store: ArtifactStore) -> Certificate:
    """Store the new responder unless another worker stored one first (then drop our unused key)."""
    with transaction.atomic():
        CertificateAuthority.objects.select_for_update().only("pk").get(pk=ca.pk)  # one issuer at a time
        existing = _usable_responder_row(ca.pk, now)
        if existing is None:
            row = create_certificate_row(
                certificate, organization=ca.organization, issuer=ca, kind=CertificateKind.OCSP_RESPONDER,
                key_source=KeySource.SERVER, created_by="ocsp-responder", key_path=key_directory,
            )
            record_event(
                AuditAction.CERTIFICATE_ISSUE, **Actor.operator("ocsp-responder").audit_kwargs(),
                organization_id=ca.organization_id, target_type="certificate", target_id=str(row.pk),
                target_serial=row.serial, details={"kind": CertificateKind.OCSP_RESPONDER, "ca": ca.slug,
                                                   "not_after": row.not_after.isoformat()},
            )
            return row
    delete_ca_key(store, key_directory)  # another worker won the race: our sealed key is not needed
    return existing


def forget_responders() -> None:
    """Drop the in-memory responder and CA records and the answers kept in this process (tests; restore)."""
    with _responders_lock:
        _responders.clear()
    _issuers.clear()
    _local_answers.clear()


# --- A root's pre-signed answers --------------------------------------------------------------


def presign_root_responses(root: CertificateAuthority, signer: Signer, *, until: datetime,
                           now: datetime | None = None) -> int:
    """Sign, with the open root signer, the answers about every unexpired child of `root`.

    One answer per child and CertID hash algorithm, valid until `until` (the root CRL's
    nextUpdate); they replace the previous set in one transaction. Returns the count.
    """
    now = (now or timezone.now()).replace(microsecond=0)
    root_certificate = load_x509(root.certificate)
    children = (Certificate.objects.filter(issuer=root, not_after__gt=now).order_by()
                .values_list("serial", "revoked_at", "revocation_reason"))
    rows = []
    for serial_hex, revoked_at, reason in children:
        status = "good" if revoked_at is None else "revoked"
        for algorithm in PRESIGNED_ALGORITHMS:
            cert_id = OCSPCertId.for_serial(root_certificate, int(serial_hex, 16), algorithm)
            der = build_ocsp_response(
                cert_id, root_certificate, root_certificate, signer, status, revoked_at=revoked_at,
                reason=parse_reason(reason) if reason else None, this_update=now, next_update=until,
            )
            _count_signature()
            rows.append(PresignedOCSPResponse(ca=root, serial=serial_hex, hash_algorithm=algorithm.name,
                                              status=status, this_update=now, next_update=until, der=der))
    with transaction.atomic():
        PresignedOCSPResponse.objects.filter(ca=root).delete()
        PresignedOCSPResponse.objects.bulk_create(rows)
    return len(rows)


def _presigned_answer(issuer: _Issuer, request: ocsp.OCSPRequest, now: datetime) -> OCSPAnswer:
    """A root's answer as it was signed; none (unauthorized, RFC 5019 2.2.3) for what it never signed."""
    row = (
        PresignedOCSPResponse.objects.filter(
            ca_id=issuer.ca_id, serial=serial_to_hex(request.serial_number) if request.serial_number > 0 else "-",
            hash_algorithm=request.hash_algorithm.name, next_update__gt=now,
        )
        .values_list("der", "status", "this_update", "next_update")
        .first()
    )
    if row is None:
        return OCSPAnswer.error("unauthorized")
    der, status, this_update, next_update = row
    return OCSPAnswer(bytes(der), status, this_update, next_update, from_cache=True)
