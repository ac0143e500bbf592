"""Signing CRLs (RFC 5280 section 5).

A CRL is built from the serial, revocation date, reason and invalidity columns
alone: rows are streamed from the database and the whole list goes to
`cryptography` in one call, so memory stays flat and time linear in the number of
revoked certificates (no stored certificate is ever parsed here).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.serialization import Encoding
from django.db import transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.services import record_event
from certificates.crypto.crl import RevokedEntry, build_crl, parse_reason
from certificates.crypto.keys import PrivateKey
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.services.authorities import signing_key
from certificates.services.records import load_x509
from pki_project.actor import Actor

STREAM_CHUNK_ROWS = 5000


def revoked_entries(ca: CertificateAuthority, now: datetime) -> Iterator[RevokedEntry]:
    """What `ca` has revoked and is still within its validity (RFC 5280 5.3: expired entries may leave)."""
    rows = (
        Certificate.objects.filter(issuer=ca, revoked_at__isnull=False, not_after__gt=now)
        .order_by()
        .values_list("serial", "revoked_at", "revocation_reason", "invalidity_date")
        .iterator(chunk_size=STREAM_CHUNK_ROWS)
    )
    for serial, revoked_at, reason, invalidity_date in rows:
        yield RevokedEntry(int(serial, 16), revoked_at, parse_reason(reason), invalidity_date)


def _allocate_crl_number(ca: CertificateAuthority) -> int:
    """Take the next CRL number under a row lock, so concurrent generations never share one."""
    locked = CertificateAuthority.objects.select_for_update().only("crl_number").get(pk=ca.pk)
    locked.crl_number += 1
    locked.save(update_fields=["crl_number"])
    ca.crl_number = locked.crl_number
    return locked.crl_number


def generate_crl(
    ca: CertificateAuthority,
    *,
    actor: Actor,
    root_password: str | None = None,
    key: PrivateKey | None = None,
    now: datetime | None = None,
) -> CertificateRevocationList:
    """Sign and store a full CRL for `ca`. A root needs its password (or a key already unlocked)."""
    now = (now or timezone.now()).replace(microsecond=0)
    key = key or signing_key(ca, root_password, actor)
    next_update = now + timedelta(hours=ca.crl_validity_hours)
    with transaction.atomic():
        number = _allocate_crl_number(ca)
        crl = build_crl(load_x509(ca.certificate), key, revoked_entries(ca, now), number, now, next_update)
        entry_count = len(crl)
        row = CertificateRevocationList.objects.create(
            ca=ca, number=number, this_update=now, next_update=next_update, entry_count=entry_count,
            der=crl.public_bytes(Encoding.DER),
        )
        record_event(
            AuditAction.CRL_GENERATE, **actor.audit_kwargs(), organization_id=ca.organization_id,
            target_type="ca", target_id=str(ca.pk), target_serial=ca.certificate.serial,
            details={"crl_number": number, "entries": entry_count, "next_update": next_update.isoformat()},
        )
    return row


def latest_crl(ca: CertificateAuthority) -> CertificateRevocationList | None:
    return ca.crls.filter(delta_base_number__isnull=True).order_by("-number").first()
