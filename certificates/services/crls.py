"""Signing and publishing CRLs: full CRLs and delta CRLs (RFC 5280 section 5).

A CRL is built from the serial, revocation date, reason and invalidity columns
alone: rows are streamed from the database and the whole list goes to
`cryptography` in one call, so memory stays flat and time linear in the number of
revoked certificates (no stored certificate is ever parsed here).

Numbers: full and delta CRLs of a CA share one cRLNumber sequence (RFC 5280 5.2.3,
5.2.4), taken from `CertificateAuthority.crl_number` under a row lock in a short
transaction of its own, so concurrent signers never share a number and the lock
is not held while a large CRL is built.

Lifetimes: `CertificateAuthority.crl_validity_hours` per CA (roots 90 days, since
their CRL is signed only when the operator gives the root password; intermediates
7 days); a delta CRL lives `DELTA_CRL_VALIDITY_HOURS` at most, never beyond its base.

Schedule (RFC 5280 5.2.4): an intermediate signs a full (base) CRL when it is created and
then every `PKI_CRL_FULL_INTERVAL_HOURS` (cron, `generate_crl --all`), each with a fresh
delta; a revocation signs only a new delta, which lists everything revoked since its base.
A relying party that reads deltas sees a revocation at once; one that reads only full CRLs
sees it with the next base. Roots publish no deltas: every root signature needs the operator,
so a root's full CRL is re-signed whenever its key is open (each revocation it makes, a CA
created below it, `generate_crl` with the password), and a delta signed then could not be
renewed before it expired.

Who may sign: `permissions` (an intermediate's CRL: managers and admins; a root's:
admins), asked before any key is opened, whichever channel asks.

This module signs CRLs with a signer it is given (`certificates.signers`); when to sign, and
what a root signs together with its CRL (its pre-signed OCSP answers), is `publication`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import connections, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.crl import RevokedEntry, build_crl, parse_reason
from certificates.crypto.signing import Signer
from certificates.keystore import publication_urls
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList, RevocationReason
from certificates.services.permissions import Action, require
from certificates.services.records import load_x509
from certificates.signers import intermediate_signer
from pki_project.actor import Actor

logger = logging.getLogger(__name__)

STREAM_CHUNK_ROWS = 5000
DELTA_CRL_VALIDITY_HOURS = 24
#: A delta lists revocations from this long before its base's thisUpdate: a revocation whose
#: transaction was still open while the base was read (its revocation time is earlier than the
#: base's thisUpdate, yet the base could not see it) is then on the delta. Entries that are on
#: the base as well are harmless (the client takes the union).
DELTA_OVERLAP = timedelta(hours=1)
#: `crls_due` re-signs a CRL once less than this share of its lifetime remains.
RESIGN_WHEN_REMAINING = 0.5
#: ... or at once when one of this many recent revocations is missing from it (a lost re-sign).
MISSING_REVOCATIONS_PROBE = 1000


def revoked_entries(ca: CertificateAuthority, now: datetime, since: datetime | None = None) -> Iterator[RevokedEntry]:
    """What `ca` has revoked and is still within its validity (RFC 5280 5.3: expired entries leave).

    `since` limits the list to revocations at or after that moment (a delta CRL's content).
    Rows come through a chunked cursor (a server-side cursor on PostgreSQL), four columns
    each, with no ORM model or converter per row: at 100,000 entries the per-row cost of
    the ORM would be as large as cryptography's own.
    """
    rows = Certificate.objects.filter(issuer=ca, revoked_at__isnull=False, not_after__gt=now)
    if since is not None:
        rows = rows.filter(revoked_at__gte=since)
    connection = connections[rows.db]
    flags, text_timestamps = _REASON_FLAGS, connection.vendor == "sqlite"
    if text_timestamps:  # as stored (UTC ISO text): Django's per-value converter is a Python regex
        columns = ("serial", Cast("revoked_at", TextField()), "revocation_reason", Cast("invalidity_date", TextField()))
    else:  # the driver converts in C
        columns = ("serial", "revoked_at", "revocation_reason", "invalidity_date")
    sql, params = rows.order_by().values_list(*columns).query.sql_with_params()
    with connection.chunked_cursor() as cursor:  # no transaction: on SQLite it would hold the write lock
        cursor.execute(sql, params)
        while chunk := cursor.fetchmany(STREAM_CHUNK_ROWS):
            if text_timestamps:
                for serial, revoked_at, reason, invalidity_date in chunk:
                    yield RevokedEntry(
                        int(serial, 16), _from_text(revoked_at), flags.get(reason) or parse_reason(reason),
                        None if invalidity_date is None else _from_text(invalidity_date),
                    )
            else:
                for serial, revoked_at, reason, invalidity_date in chunk:
                    yield RevokedEntry(int(serial, 16), _utc(revoked_at), flags.get(reason) or parse_reason(reason),
                                       _utc(invalidity_date))


_REASON_FLAGS: dict[str, x509.ReasonFlags] = {name: parse_reason(name) for name in RevocationReason.values}


def _from_text(value: str) -> datetime:
    return datetime.fromisoformat(value + "+00:00")  # straight to the UTC singleton, no replace()


def _utc(value: datetime | str | None) -> datetime | None:
    """A timestamp column as an aware UTC datetime (from any backend)."""
    if value is None:
        return None
    if isinstance(value, str):
        return _from_text(value)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _allocate_crl_number(ca: CertificateAuthority) -> int:
    """Take the next CRL number under a row lock, in a transaction of its own (committed at once).

    PostgreSQL: SELECT ... FOR UPDATE serialises the increment; SQLite: the IMMEDIATE
    transaction takes the write lock first. A number taken by a signer that then fails
    is simply skipped: numbers only have to grow (RFC 5280 5.2.3), not be dense.
    """
    with transaction.atomic():
        locked = CertificateAuthority.objects.select_for_update().only("crl_number").get(pk=ca.pk)
        locked.crl_number += 1
        locked.save(update_fields=["crl_number"])
    ca.crl_number = locked.crl_number
    return locked.crl_number


def crl_validity(ca: CertificateAuthority) -> timedelta:
    return timedelta(hours=ca.crl_validity_hours)


def full_crl_interval() -> timedelta:
    """How often an intermediate's full CRL is re-signed (`PKI_CRL_FULL_INTERVAL_HOURS`)."""
    return timedelta(hours=settings.PKI_CRL_FULL_INTERVAL_HOURS)


def delta_content_since(base: CertificateRevocationList) -> datetime:
    """The earliest revocation time a delta against `base` lists (see `DELTA_OVERLAP`)."""
    return base.this_update - DELTA_OVERLAP


def delta_crl_url(ca: CertificateAuthority) -> str | None:
    return publication_urls(ca).delta_crl_url


def _store_crl(
    ca: CertificateAuthority, actor: Actor, *, number: int, this_update: datetime, next_update: datetime,
    der: bytes, entry_count: int, delta_base_number: int | None = None,
) -> CertificateRevocationList:
    with transaction.atomic():
        row = CertificateRevocationList.objects.create(
            ca=ca, number=number, delta_base_number=delta_base_number, this_update=this_update,
            next_update=next_update, entry_count=entry_count, der=der,
        )
        details = {"crl_number": number, "entries": entry_count, "next_update": next_update.isoformat()}
        if delta_base_number is not None:
            details["delta_base"] = delta_base_number
        record_event(
            AuditAction.CRL_GENERATE, **actor.audit_kwargs(), organization_id=ca.organization_id,
            target_type="ca", target_id=str(ca.pk), target_serial=ca.certificate.serial, details=details,
        )
    return row


def sign_full_crl(
    ca: CertificateAuthority,
    *,
    actor: Actor,
    signer: Signer,
    now: datetime | None = None,
) -> CertificateRevocationList:
    """Sign and store a full CRL for `ca` with its open signer.

    Only the CRL: what else is signed while a root is open (its pre-signed OCSP answers) is
    `publication.generate_crl`'s, which is what callers use.
    """
    require(actor, Action.SIGN_CRL, ca)
    number = _allocate_crl_number(ca)
    # The time is read after the number, so a higher number never carries an earlier thisUpdate.
    now = (now or timezone.now()).replace(microsecond=0)
    next_update = now + crl_validity(ca)
    crl = build_crl(
        load_x509(ca.certificate), signer, revoked_entries(ca, now), number, now, next_update,
        freshest_crl_url=delta_crl_url(ca),  # RFC 5280 5.2.6: where the deltas of this base live
    )
    return _store_crl(ca, actor, number=number, this_update=now, next_update=next_update,
                      der=crl.public_bytes(Encoding.DER), entry_count=len(crl))


def generate_delta_crl(
    ca: CertificateAuthority,
    *,
    actor: Actor,
    signer: Signer | None = None,
    now: datetime | None = None,
) -> CertificateRevocationList | None:
    """Sign and store a delta CRL (RFC 5280 5.2.4) against the latest full CRL of an intermediate.

    It lists what was revoked since the base's thisUpdate, less `DELTA_OVERLAP` (so a few
    entries of the base may be listed again: harmless), and carries a critical
    deltaCRLIndicator naming the base's number. None for a root, or while there is no
    usable base.
    """
    require(actor, Action.SIGN_CRL, ca)
    if ca.is_root:
        return None
    given_now = now
    now = (now or timezone.now()).replace(microsecond=0)
    base = latest_crl(ca)
    if base is None or base.next_update <= now:
        return None
    signer = signer or intermediate_signer(ca)
    number = _allocate_crl_number(ca)
    # As for full CRLs: the time after the number, so numbers and thisUpdate grow together.
    now = (given_now or timezone.now()).replace(microsecond=0)
    next_update = min(now + timedelta(hours=DELTA_CRL_VALIDITY_HOURS), base.next_update)
    if next_update <= now:
        return None
    crl = build_crl(
        load_x509(ca.certificate), signer, revoked_entries(ca, now, since=delta_content_since(base)), number, now,
        next_update, delta_base_crl_number=base.number,
    )
    return _store_crl(ca, actor, number=number, this_update=now, next_update=next_update,
                      der=crl.public_bytes(Encoding.DER), entry_count=len(crl), delta_base_number=base.number)


def latest_crl(ca: CertificateAuthority) -> CertificateRevocationList | None:
    return ca.crls.filter(delta_base_number__isnull=True).order_by("-number").first()


def latest_delta_crl(ca: CertificateAuthority) -> CertificateRevocationList | None:
    return ca.crls.filter(delta_base_number__isnull=False).order_by("-number").first()


def _needs_resigning(crl: CertificateRevocationList | None, now: datetime) -> bool:
    if crl is None:
        return True
    lifetime = crl.next_update - crl.this_update
    return crl.next_update - now < lifetime * RESIGN_WHEN_REMAINING


def _past_full_interval(ca: CertificateAuthority, crl: CertificateRevocationList, now: datetime) -> bool:
    """An intermediate's full CRL is re-signed every `PKI_CRL_FULL_INTERVAL_HOURS` (roots: half their life)."""
    return not ca.is_root and now - crl.this_update >= full_crl_interval()


def _misses_revocations(ca: CertificateAuthority, crl: CertificateRevocationList, now: datetime,
                        since: datetime | None = None) -> bool:
    """True when a revocation made at or after `since` (default: the CRL's thisUpdate) is not on `crl`.

    The signature after a revocation runs once the revocation commits; a process killed
    in between leaves the revocation off the CRL (a root's full CRL, an intermediate's
    delta), and cron must catch up at once, not when the CRL nears nextUpdate. Only those
    few recent serials are looked up.
    """
    since = crl.this_update if since is None else since
    serials = (Certificate.objects.filter(issuer=ca, revoked_at__gte=since, not_after__gt=now)
               .values_list("serial", flat=True)[:MISSING_REVOCATIONS_PROBE])
    serials = list(serials)
    if not serials:
        return False
    listed = x509.load_der_x509_crl(bytes(crl.der))
    return any(listed.get_revoked_certificate_by_serial_number(int(serial, 16)) is None for serial in serials)


@dataclass(frozen=True)
class DueCRL:
    """A CA whose CRLs are due; `delta_only`: its full CRL is current, only its delta must be signed."""

    ca: CertificateAuthority
    latest: CertificateRevocationList | None
    misses_revocations: bool = False
    delta_only: bool = False
    delta: CertificateRevocationList | None = None
    past_interval: bool = False

    @property
    def reason(self) -> str:
        if self.latest is None:
            return "no CRL yet"
        if self.delta_only:
            if self.delta is None or self.delta.delta_base_number != self.latest.number:
                return f"no delta CRL against CRL #{self.latest.number} yet"
            if self.misses_revocations:
                return f"delta CRL #{self.delta.number} misses revocations made since its base"
            return f"delta CRL #{self.delta.number} nears nextUpdate"
        if self.misses_revocations:
            return f"CRL #{self.latest.number} misses revocations made after it"
        if self.past_interval:
            return f"CRL #{self.latest.number} is older than PKI_CRL_FULL_INTERVAL_HOURS"
        return f"CRL #{self.latest.number} nears nextUpdate"


def _due_delta(ca: CertificateAuthority, base: CertificateRevocationList, now: datetime) -> DueCRL | None:
    """An intermediate with a current base: is its delta missing, on another base, old or missing a revocation?"""
    delta = latest_delta_crl(ca)
    if delta is None or delta.delta_base_number != base.number or _needs_resigning(delta, now):
        return DueCRL(ca, base, delta_only=True, delta=delta)
    if _misses_revocations(ca, delta, now, since=delta_content_since(base)):
        return DueCRL(ca, base, misses_revocations=True, delta_only=True, delta=delta)
    return None


def crls_due(now: datetime | None = None, cas: list[CertificateAuthority] | None = None) -> list[DueCRL]:
    """CAs whose CRLs must be signed now (cron).

    A full CRL is due when it is missing, has less than half its lifetime left, or (an
    intermediate's) is older than `PKI_CRL_FULL_INTERVAL_HOURS`, or (a root's) misses a recent
    revocation. Otherwise an intermediate's delta alone is due when it is missing, names an
    older base, has less than half its lifetime left or misses a revocation made since its base.
    Revoked or expired CAs are left out: nothing relies on their CRLs any more.
    """
    now = now or timezone.now()
    candidates = cas if cas is not None else list(
        CertificateAuthority.objects.select_related("certificate").filter(
            certificate__revoked_at__isnull=True, certificate__not_after__gt=now
        )
    )
    due = []
    for ca in candidates:
        latest = latest_crl(ca)
        if _needs_resigning(latest, now):
            due.append(DueCRL(ca, latest))
        elif _past_full_interval(ca, latest, now):
            due.append(DueCRL(ca, latest, past_interval=True))
        elif ca.is_root:
            if _misses_revocations(ca, latest, now):
                due.append(DueCRL(ca, latest, misses_revocations=True))
        elif (delta_due := _due_delta(ca, latest, now)) is not None:
            due.append(delta_due)
    return due


def ensure_fresh_crl(
    ca: CertificateAuthority, *, delta: bool = False, now: datetime | None = None
) -> CertificateRevocationList | None:
    """The CRL to serve: the latest stored one, or, for an intermediate whose latest is
    missing or past nextUpdate, one signed now (the schedule's fallback, not per-request
    signing: the next request is served from storage). A root's CRL needs the operator;
    None when it has none.
    """
    now = now or timezone.now()
    latest = latest_delta_crl(ca) if delta else latest_crl(ca)
    base = latest_crl(ca) if delta else latest
    stale = latest is None or latest.next_update <= now or (
        delta and base is not None and latest.delta_base_number != base.number
    )
    if not stale or ca.is_root or ca.certificate.status_at(now) != "valid":
        return latest
    actor = Actor.operator("crl-schedule")
    try:
        if base is None or base.next_update <= now:
            base = sign_full_crl(ca, actor=actor, signer=intermediate_signer(ca), now=now)
        if not delta:
            return base
        return generate_delta_crl(ca, actor=actor, now=now) or latest
    except Exception:  # serving goes on with what is stored; the log and cron catch up
        logger.exception("Signing a CRL on demand for CA %s failed", ca.slug)
        return latest
