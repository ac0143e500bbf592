"""What a restore carries forward from the live data: nothing that was revoked comes back to life.

Inside the restore's transaction, `capture()` reads what must survive from the live rows before
they are deleted, and `apply()` writes it over the restored rows after they are inserted:

- certificate revocations (time, reason, invalidity date), matched by fingerprint;
- certificates issued *and* revoked after the backup, when their issuing CA is in the backup:
  inserted as revoked rows (public data only; their key artifacts went with the live data
  directory), so the next CRL still lists them and OCSP still answers `revoked` (RFC 5280
  3.3, 5.3; RFC 6960 2.2);
- the live CRLs numbered after the backup's, as they were published, so the latest CRL and
  the CRL counter never go back (RFC 5280 5.2.3);
- pre-signed OCSP answers newer than the backup's (a root's answers about a revoked intermediate);
- API key revocations (by prefix), ended sessions (by jti) and deactivated users (by username).

Matching is by identities that hold across machines and engines, never by database ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import F

from certificates.models import (
    Certificate,
    CertificateAuthority,
    CertificateRevocationList,
    PresignedOCSPResponse,
)
from organizations.models import ApiKey, SessionToken

# Columns of a certificate carried as a revoked row. It keeps its id where the restored table leaves it free
# (a row created after the backup has an id above every backed-up one), so the audit events that name it
# still do; artifact paths are left empty (its files went with the live data directory).
CERTIFICATE_COLUMNS = ("id", "kind", "profile", "serial", "common_name", "subject", "sans", "key_type", "key_source",
                       "not_before", "not_after", "fingerprint_sha256", "der", "revoked_at", "revocation_reason",
                       "invalidity_date", "created_by", "created_at")
CRL_COLUMNS = ("id", "number", "delta_base_number", "this_update", "next_update", "entry_count", "der", "created_at")
OCSP_COLUMNS = ("serial", "hash_algorithm", "status", "this_update", "next_update", "der", "created_at")


@dataclass
class LiveState:
    """What `capture` read: plain values, keyed by identities that survive the restore."""

    revocations: dict[str, tuple[datetime, str, datetime | None]] = field(default_factory=dict)
    revoked_rows: list[dict[str, Any]] = field(default_factory=list)  # with "issuer_fingerprint"
    crls: list[dict[str, Any]] = field(default_factory=list)  # with "ca_fingerprint"
    ocsp_answers: list[dict[str, Any]] = field(default_factory=list)  # with "ca_fingerprint"
    api_key_revocations: dict[str, datetime] = field(default_factory=dict)
    session_revocations: dict[str, datetime] = field(default_factory=dict)
    deactivated_users: set[str] = field(default_factory=set)


@dataclass
class CarriedForward:
    """How much `apply` changed in the restored rows (recorded in the restore's audit event)."""

    certificate_revocations: int = 0
    revoked_certificates_added: int = 0
    crls: int = 0
    ocsp_answers: int = 0
    api_key_revocations: int = 0
    session_revocations: int = 0
    user_deactivations: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


def capture(backup_fingerprints: set[str], backup_crl_numbers: dict[str, int]) -> LiveState:
    """Read, from the live rows about to be replaced, everything `apply` must put back."""
    state = LiveState()
    revoked = Certificate.objects.filter(revoked_at__isnull=False)
    for fingerprint, revoked_at, reason, invalidity in revoked.values_list(
            "fingerprint_sha256", "revoked_at", "revocation_reason", "invalidity_date").iterator(chunk_size=2000):
        if fingerprint in backup_fingerprints:
            state.revocations[fingerprint] = (revoked_at, reason, invalidity)
    state.revoked_rows = [row for row in revoked.values(*CERTIFICATE_COLUMNS, issuer_fingerprint=_issuer_fp())
                          if row["fingerprint_sha256"] not in backup_fingerprints]
    state.crls = [row for row in CertificateRevocationList.objects.values(
        *CRL_COLUMNS, ca_fingerprint=_ca_fp()).iterator(chunk_size=50)
        if row["number"] > backup_crl_numbers.get(row["ca_fingerprint"], row["number"])]
    state.ocsp_answers = list(PresignedOCSPResponse.objects.values(*OCSP_COLUMNS, ca_fingerprint=_ca_fp()))
    state.api_key_revocations = dict(ApiKey.objects.filter(revoked_at__isnull=False).values_list("prefix",
                                                                                                  "revoked_at"))
    state.session_revocations = dict(SessionToken.objects.filter(revoked_at__isnull=False).values_list(
        "jti", "revoked_at"))
    state.deactivated_users = set(get_user_model().objects.filter(is_active=False).values_list("username", flat=True))
    return state


def _issuer_fp() -> F:
    return F("issuer__certificate__fingerprint_sha256")


def _ca_fp() -> F:
    return F("ca__certificate__fingerprint_sha256")


def apply(state: LiveState) -> CarriedForward:
    """Write `state` over the restored rows (inside the restore's transaction, after the inserts)."""
    carried = CarriedForward()
    cas = _restored_cas()
    carried.certificate_revocations = _carry_revocations(state.revocations)
    carried.revoked_certificates_added = _add_revoked_rows(state.revoked_rows, cas)
    carried.crls = _add_crls(state.crls, cas)
    carried.ocsp_answers = _keep_newer_ocsp_answers(state.ocsp_answers, cas)
    carried.api_key_revocations = sum(
        ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).update(revoked_at=moment)
        for prefix, moment in state.api_key_revocations.items())
    carried.session_revocations = sum(
        SessionToken.objects.filter(jti=jti, revoked_at__isnull=True).update(revoked_at=moment)
        for jti, moment in state.session_revocations.items())
    carried.user_deactivations = get_user_model().objects.filter(
        username__in=state.deactivated_users, is_active=True).update(is_active=False)
    return carried


def _restored_cas() -> dict[str, CertificateAuthority]:
    """The restored CAs by their certificate's fingerprint."""
    return {ca.certificate.fingerprint_sha256: ca for ca in CertificateAuthority.objects.select_related("certificate")}


def _carry_revocations(revocations: dict[str, tuple[datetime, str, datetime | None]]) -> int:
    """Revoked live stays revoked restored; a revocation the backup already has is left as it is."""
    count = 0
    for fingerprint, (revoked_at, reason, invalidity) in revocations.items():
        count += Certificate.objects.filter(fingerprint_sha256=fingerprint, revoked_at__isnull=True).update(
            revoked_at=revoked_at, revocation_reason=reason, invalidity_date=invalidity)
    return count


def _add_revoked_rows(rows: Iterable[dict[str, Any]], cas: dict[str, CertificateAuthority]) -> int:
    """Certificates issued and revoked after the backup, under a CA the backup has: back, as revoked rows."""
    added = 0
    for row in rows:
        issuer = cas.get(row.pop("issuer_fingerprint"))
        if issuer is None:
            continue  # the CA went with the restore; the preview said so
        _insert_as_it_was(Certificate, {**row, "issuer": issuer, "organization_id": issuer.organization_id})
        added += 1
    return added


def _insert_as_it_was(model, row: dict[str, Any]) -> None:
    """Insert a live row into the restored table with its creation time, and its id unless a restored row holds
    it (ids reused after an earlier restore): then a new one."""
    row = dict(row)
    created_at = row.pop("created_at")
    if "id" in row and model.objects.filter(pk=row["id"]).exists():
        row["id"] = None
    instance = model.objects.create(**row)
    model.objects.filter(pk=instance.pk).update(created_at=created_at)  # auto_now_add set it to now


def _add_crls(rows: Iterable[dict[str, Any]], cas: dict[str, CertificateAuthority]) -> int:
    added = 0
    for row in rows:
        ca = cas.get(row.pop("ca_fingerprint"))
        if ca is None or CertificateRevocationList.objects.filter(ca=ca, number=row["number"]).exists():
            continue
        _insert_as_it_was(CertificateRevocationList, {**row, "ca": ca})
        added += 1
    return added


def _keep_newer_ocsp_answers(rows: Iterable[dict[str, Any]], cas: dict[str, CertificateAuthority]) -> int:
    """A pre-signed answer signed after the backup's wins (it may say `revoked` where the backup's says `good`)."""
    kept = 0
    for row in rows:
        ca = cas.get(row.pop("ca_fingerprint"))
        if ca is None:
            continue
        restored = PresignedOCSPResponse.objects.filter(ca=ca, serial=row["serial"],
                                                         hash_algorithm=row["hash_algorithm"]).first()
        if restored is not None and (restored.this_update > row["this_update"] or bytes(restored.der) == bytes(
                row["der"])):
            continue  # the backup's is newer, or the same answer; an answer of the same second was re-signed live
        if restored is not None:
            restored.delete()
        _insert_as_it_was(PresignedOCSPResponse, {**row, "ca": ca})
        kept += 1
    return kept
