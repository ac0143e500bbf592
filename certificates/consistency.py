"""Is the installation consistent? The database against the data directory, the chains, the CRLs, the audit trail.

`check_consistency()` (behind `manage.py check_consistency`, meant for cron) reports findings;
it changes nothing. What it checks:

1. artifacts: every path the database refers to (a CA's `key.pem.enc` and `.pwd.enc`, a
   delegated OCSP responder's key directory, a certificate's PKCS#12 and its password)
   exists and its outer layer opens with the configured key. Root keys stay sealed: only
   the outer layer is opened, never the root's two-part inner envelope.
2. orphans: artifact files that no row refers to (a process killed between sealing a file
   and committing its row leaves one; harmless, reported as a warning), temporary files
   left by a crash, an unfinished key rotation or restore.
3. chains: every CA certificate verifies against its parent's key (a root against its own)
   with validity nested in the parent's; every other certificate verifies against its
   issuer's; the stored serial and fingerprint match the stored DER.
4. CRLs: every usable CA has a latest full CRL, signed by it, not past nextUpdate, listing
   every revocation made before it; the CA's CRL counter is not behind its CRLs.
5. audit: the hash chain verifies, every certificate, CA and revocation has its event, and every
   revocation the trail records still stands.

Large tables are streamed (`.iterator()` and value lists); only sets of ids and paths are
kept, never certificates.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from django.db.models import Q
from django.utils import timezone

from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.verification import verify_chain
from certificates.keystore import artifact_store
from certificates.models import (
    Certificate,
    CertificateAuthority,
    CertificateKind,
    CertificateRevocationList,
)
from certificates.notification_models import NotificationTarget
from certificates.vault.custody import KEY_FILENAME
from certificates.vault.errors import ArtifactNotFound, VaultError, WrongEncryptionKey
from certificates.vault.paths import PASSWORD_FILENAME, TEMP_PREFIX, join_relpath
from certificates.vault.rotation import JOURNAL_FILENAME as ROTATION_JOURNAL
from certificates.vault.storage import ArtifactStore

logger = logging.getLogger(__name__)

ERROR, WARNING = "error", "warning"
#: Files younger than this may belong to an operation still in flight (sealed, row not yet committed).
DEFAULT_GRACE_SECONDS = 120.0
CHUNK_ROWS = 500
RESTORE_MARKER = ".pki-restore-marker"


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    code: str
    message: str
    object: str  # what it is about: "certificate:12", "ca:example-root", "artifact:certs/…/bundle.p12.enc"


@dataclass
class ConsistencyReport:
    findings: list[Finding] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

    def add(self, severity: str, code: str, message: str, obj: str) -> None:
        self.findings.append(Finding(severity, code, message, obj))

    def count(self, what: str, amount: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + amount

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings),
                "checked": dict(sorted(self.checked.items())), "findings": [asdict(f) for f in self.findings]}


def check_consistency(*, now: datetime | None = None, grace_seconds: float = DEFAULT_GRACE_SECONDS,
                      audit: bool = True) -> ConsistencyReport:
    """Run every check; raises only when a check cannot run at all (database or data directory gone)."""
    now = now or timezone.now()
    report = ConsistencyReport()
    store = artifact_store()
    referenced = check_referenced_artifacts(store, report)
    check_orphans(store, referenced, report, grace_seconds=grace_seconds)
    check_chains(report)
    check_crls(report, now)
    check_profiles(report, now)
    if audit:
        check_audit(report)
    return report


# --- 1. artifacts the database refers to --------------------------------------------------------


def _key_directory_paths(directory: str) -> list[str]:
    return [join_relpath(directory, KEY_FILENAME), join_relpath(directory, PASSWORD_FILENAME)]


def _referenced_paths() -> Iterator[tuple[str, str]]:
    """(object, relpath) for every artifact a row refers to, streamed."""
    for slug, directory in CertificateAuthority.objects.exclude(key_directory="").order_by("pk").values_list(
            "slug", "key_directory").iterator(chunk_size=CHUNK_ROWS):
        for relpath in _key_directory_paths(directory):
            yield f"ca:{slug}", relpath
    rows = (Certificate.objects.exclude(key_path="", pkcs12_path="", pkcs12_password_path="")
            .order_by("pk").values_list("pk", "key_path", "pkcs12_path", "pkcs12_password_path"))
    for pk, key_directory, bundle, password in rows.iterator(chunk_size=CHUNK_ROWS):
        paths = _key_directory_paths(key_directory) if key_directory else []
        for relpath in [*paths, bundle, password]:
            if relpath:
                yield f"certificate:{pk}", relpath
    for pk, relpath in NotificationTarget.objects.exclude(secret_path="").order_by("pk").values_list(
            "pk", "secret_path").iterator(chunk_size=CHUNK_ROWS):
        yield f"notification_target:{pk}", relpath
    from acme_server.models import ExternalAccountKey  # EAB HMAC keys are sealed artifacts too

    for key_id, relpath in ExternalAccountKey.objects.order_by("pk").values_list("key_id", "hmac_key_path").iterator(
            chunk_size=CHUNK_ROWS):
        yield f"acme_eab:{key_id}", relpath


def _artifact_problem(store: ArtifactStore, relpath: str) -> tuple[str, str] | None:
    try:
        store.read(relpath)  # the outer layer only: a root key's inner envelope stays sealed
    except ArtifactNotFound:
        return "artifact_missing", f"{relpath} is referenced by the database but missing from the data directory"
    except WrongEncryptionKey:
        return "artifact_wrong_key", f"{relpath} is sealed under another PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT"
    except VaultError as error:
        return "artifact_unreadable", f"{relpath} does not open: {error}"
    except OSError as error:
        return "artifact_unreadable", f"{relpath} cannot be read: {error.strerror or error}"
    return None


def check_referenced_artifacts(store: ArtifactStore, report: ConsistencyReport) -> set[str]:
    """Every referenced artifact exists and opens; returns the set of referenced paths."""
    referenced: set[str] = set()
    for obj, relpath in _referenced_paths():
        referenced.add(relpath)
        report.count("artifacts_referenced")
        problem = _artifact_problem(store, relpath)
        if problem:
            report.add(ERROR, problem[0], problem[1], obj)
    return referenced


# --- 2. orphans, temporary files, unfinished rotations and restores -------------------------------


def _age_seconds(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def _still_unreferenced(relpath: str) -> bool:
    """Ask the database again about one candidate: its row may have committed since the first pass."""
    from acme_server.models import ExternalAccountKey

    directory = relpath.rsplit("/", 1)[0]
    return not (
        ExternalAccountKey.objects.filter(hmac_key_path=relpath).exists()
        or CertificateAuthority.objects.filter(key_directory=directory).exists()
        or Certificate.objects.filter(Q(key_path=directory) | Q(pkcs12_path=relpath)
                                      | Q(pkcs12_password_path=relpath)).exists()
        or NotificationTarget.objects.filter(secret_path=relpath).exists()
    )


def _temp_files(data_dir: Path) -> Iterator[Path]:
    if not data_dir.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(data_dir, followlinks=False):
        for name in filenames:
            if name.startswith(TEMP_PREFIX):
                yield Path(dirpath) / name


def check_orphans(store: ArtifactStore, referenced: set[str], report: ConsistencyReport, *,
                  grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
    data_dir = store.data_dir
    if not data_dir.is_dir():
        report.add(ERROR, "data_dir_missing", f"The data directory {data_dir} does not exist.", "data_dir")
        return
    for relpath in store.iter_artifacts():
        report.count("artifacts_on_disk")
        if relpath in referenced or _age_seconds(data_dir / relpath) < grace_seconds:
            continue
        if _still_unreferenced(relpath):
            report.add(WARNING, "orphan_artifact",
                       f"{relpath} is not referenced by any row (left by an interrupted operation?)",
                       f"artifact:{relpath}")
    for path in _temp_files(data_dir):
        if _age_seconds(path) >= grace_seconds:
            relpath = path.relative_to(data_dir).as_posix()
            report.add(WARNING, "stale_temp_file", f"{relpath} is a temporary file left by an interrupted write",
                       f"artifact:{relpath}")
    if (data_dir / ROTATION_JOURNAL).exists():
        report.add(ERROR, "rotation_in_progress",
                   "An encryption key rotation has not finished: run rotate_encryption_key again.", "data_dir")
    _check_restore_leftovers(data_dir, report)


def _check_restore_leftovers(data_dir: Path, report: ConsistencyReport) -> None:
    journal = data_dir.parent / f".{data_dir.name}.restore-journal.json"
    if journal.exists() or (data_dir / RESTORE_MARKER).exists():
        report.add(ERROR, "restore_interrupted",
                   "A restore did not finish: run restore_database --recover.", "data_dir")


# --- 3. chains -----------------------------------------------------------------------------------


def _load(der: bytes) -> x509.Certificate:
    return x509.load_der_x509_certificate(bytes(der))


def _signature_problem(certificate: x509.Certificate, issuer: x509.Certificate) -> str | None:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as error:
        return str(error) or error.__class__.__name__
    return None


def _validity_nested(child: x509.Certificate, parent: x509.Certificate) -> bool:
    return (child.not_valid_before_utc >= parent.not_valid_before_utc
            and child.not_valid_after_utc <= parent.not_valid_after_utc)


def _row_problem(pk: int, serial: str, fingerprint: str, der: bytes, certificate: x509.Certificate) -> str | None:
    if hashlib.sha256(bytes(der)).hexdigest() != fingerprint:
        return f"certificate {pk}: the stored fingerprint does not match its DER"
    if int(serial, 16) != certificate.serial_number:
        return f"certificate {pk}: the stored serial does not match its DER"
    return None


def _ca_certificates() -> dict[int, x509.Certificate]:
    """The certificate of every CA, by CA id (a handful of rows)."""
    rows = CertificateAuthority.objects.values_list("pk", "certificate__der")
    return {pk: _load(der) for pk, der in rows}


def check_chains(report: ConsistencyReport) -> None:
    issuers = _ca_certificates()
    parents = dict(CertificateAuthority.objects.values_list("pk", "parent_id"))
    for ca_id, slug in CertificateAuthority.objects.values_list("pk", "slug"):
        report.count("ca_chains")
        parent_id = parents[ca_id]
        certificate = issuers[ca_id]
        parent = issuers[parent_id] if parent_id else certificate
        problem = _signature_problem(certificate, parent)
        if problem:
            report.add(ERROR, "chain_invalid", f"The certificate of CA '{slug}' does not verify against its "
                                               f"{'parent' if parent_id else 'own key'}: {problem}", f"ca:{slug}")
        elif parent_id and not _validity_nested(certificate, parent):
            report.add(ERROR, "validity_not_nested", f"The validity of CA '{slug}' reaches outside its parent's.",
                       f"ca:{slug}")
    rows = (Certificate.objects.order_by("pk")
            .values_list("pk", "issuer_id", "serial", "fingerprint_sha256", "der", "kind"))
    for pk, issuer_id, serial, fingerprint, der, kind in rows.iterator(chunk_size=CHUNK_ROWS):
        report.count("certificates")
        _check_certificate_row(report, issuers, pk, issuer_id, serial, fingerprint, der, kind)


def _check_certificate_row(report: ConsistencyReport, issuers: dict[int, x509.Certificate], pk: int,
                           issuer_id: int | None, serial: str, fingerprint: str, der: bytes, kind: str) -> None:
    try:
        certificate = _load(der)
    except ValueError:
        report.add(ERROR, "certificate_unparsable", f"certificate {pk}: the stored DER does not parse",
                   f"certificate:{pk}")
        return
    problem = _row_problem(pk, serial, fingerprint, der, certificate)
    if problem:
        report.add(ERROR, "certificate_mismatch", problem, f"certificate:{pk}")
    if issuer_id is None or kind in (CertificateKind.ROOT_CA, CertificateKind.INTERMEDIATE_CA):
        return  # CA certificates were checked with their CA
    problem = _signature_problem(certificate, issuers[issuer_id])
    if problem:
        report.add(ERROR, "chain_invalid", f"certificate {pk} does not verify against its issuer: {problem}",
                   f"certificate:{pk}")


# --- Certificate profiles -------------------------------------------------------------


def check_profiles(report: ConsistencyReport, now: datetime) -> None:
    """The built-ins exist (the CONTRACT's four names), and every valid certificate's profile is a row
    (renewal looks it up by name: a missing one refuses to renew)."""
    from certificates.crypto.profiles import PROFILES
    from certificates.models import CertificateKind, CertificateProfile

    known = set(CertificateProfile.objects.values_list("name", flat=True))
    report.count("profiles", len(known))
    for name in sorted(set(PROFILES) - known):
        report.add(ERROR, "builtin_profile_missing", f"The built-in profile '{name}' is missing: run migrate.",
                   f"profile:{name}")
    used = (Certificate.objects.valid(now).filter(kind=CertificateKind.END_ENTITY).exclude(profile="")
            .values_list("profile", flat=True).distinct())
    for name in sorted(set(used) - known):
        report.add(WARNING, "profile_missing", f"Valid certificates name the profile '{name}', which does not "
                   "exist: they cannot be renewed.", f"profile:{name}")


# --- 4. CRLs -------------------------------------------------------------------------------------


def _usable_cas(now: datetime) -> Iterator[CertificateAuthority]:
    yield from CertificateAuthority.objects.select_related("certificate").usable(now).order_by("pk")


def check_crls(report: ConsistencyReport, now: datetime) -> None:
    for ca in _usable_cas(now):
        report.count("crls")
        latest = ca.crls.filter(delta_base_number__isnull=True).order_by("-number").first()
        if latest is None:
            how = ("sign it with generate_crl --ca {0} and the root password" if ca.is_root
                   else "generate_crl --all signs it")
            report.add(WARNING, "crl_missing", f"CA '{ca.slug}' has no CRL yet: {how.format(ca.slug)}.",
                       f"ca:{ca.slug}")
            continue
        _check_latest_crl(report, ca, latest, now)
        highest = ca.crls.order_by("-number").values_list("number", flat=True).first() or 0
        if ca.crl_number < highest:
            report.add(ERROR, "crl_number_behind",
                       f"CA '{ca.slug}' would reuse CRL numbers: its counter is {ca.crl_number}, its highest CRL "
                       f"#{highest}.", f"ca:{ca.slug}")


def _check_latest_crl(report: ConsistencyReport, ca: CertificateAuthority, latest: CertificateRevocationList,
                      now: datetime) -> None:
    obj = f"crl:{ca.slug}#{latest.number}"
    crl = x509.load_der_x509_crl(bytes(latest.der))
    if not crl.is_signature_valid(_load(ca.certificate.der).public_key()):
        report.add(ERROR, "crl_bad_signature", f"CRL #{latest.number} of '{ca.slug}' is not signed by the CA.", obj)
    if latest.next_update <= now:
        report.add(ERROR, "crl_expired", f"CRL #{latest.number} of '{ca.slug}' is past its nextUpdate "
                                         f"({latest.next_update:%Y-%m-%d %H:%M:%S}Z): run generate_crl.", obj)
    # An intermediate publishes revocations in delta CRLs between two full CRLs (RFC 5280 5.2.4):
    # what the full CRL lacks must be on the latest delta against it.
    delta_row = None if ca.is_root else ca.crls.filter(delta_base_number=latest.number).order_by("-number").first()
    delta = x509.load_der_x509_crl(bytes(delta_row.der)) if delta_row is not None else None
    missing = [serial for serial in _revoked_since(ca, latest.this_update, now)
               if crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is None
               and (delta is None or delta.get_revoked_certificate_by_serial_number(int(serial, 16)) is None)]
    if missing:
        which = f"CRL #{latest.number} of '{ca.slug}' " + ("does" if ca.is_root else "and its latest delta do")
        report.add(WARNING, "crl_outdated", f"{which} not list {len(missing)} "
                                            f"revocation(s) made after it (e.g. {missing[0]}): run generate_crl.",
                   obj)


def _revoked_since(ca: CertificateAuthority, since: datetime, now: datetime) -> Iterator[str]:
    rows = Certificate.objects.filter(issuer=ca, revoked_at__gte=since, not_after__gt=now).values_list(
        "serial", flat=True)
    yield from rows.iterator(chunk_size=CHUNK_ROWS)


# --- 5. audit ------------------------------------------------------------------------------------


def _audited_targets(actions: tuple[str, ...], target_type: str) -> set[str]:
    rows = AuditEvent.objects.filter(action__in=actions, target_type=target_type, outcome="success")
    return set(rows.values_list("target_id", flat=True).iterator(chunk_size=5000))


def check_audit(report: ConsistencyReport) -> None:
    result = verify_chain()
    report.count("audit_events", result.count)
    if not result.ok:
        report.add(ERROR, "audit_chain_broken", result.broken.message, f"audit:seq {result.broken.seq}")
        return
    issued = _audited_targets((AuditAction.CERTIFICATE_ISSUE, AuditAction.CERTIFICATE_RENEW), "certificate")
    created = _audited_targets((AuditAction.CA_CREATE,), "ca")
    revoked = _audited_targets((AuditAction.CERTIFICATE_REVOKE,), "certificate")
    for pk, slug in CertificateAuthority.objects.values_list("pk", "slug"):
        if str(pk) not in created:
            report.add(ERROR, "audit_event_missing", f"CA '{slug}' has no ca.create audit event.", f"ca:{slug}")
    rows = Certificate.objects.order_by("pk").values_list("pk", "kind", "revoked_at")
    for pk, kind, revoked_at in rows.iterator(chunk_size=5000):
        if kind in (CertificateKind.END_ENTITY, CertificateKind.OCSP_RESPONDER) and str(pk) not in issued:
            report.add(ERROR, "audit_event_missing", f"certificate {pk} has no issuance audit event.",
                       f"certificate:{pk}")
        if revoked_at is not None and str(pk) not in revoked:
            report.add(ERROR, "audit_event_missing", f"certificate {pk} is revoked without a revocation audit event.",
                       f"certificate:{pk}")
    check_revocations_stand(report)


def check_revocations_stand(report: ConsistencyReport) -> None:
    """Every revocation the trail records still stands: a revocation is final (RFC 5280 3.3), so a certificate
    that a `certificate.revoke` event names (by id and serial) and whose row is not revoked was un-revoked
    behind the application's back, e.g. with SQL."""
    events = AuditEvent.objects.filter(action=AuditAction.CERTIFICATE_REVOKE, outcome="success",
                                       target_type="certificate").values_list("target_id", "target_serial")
    named = {(target_id, serial) for target_id, serial in events.iterator(chunk_size=5000)}
    ids = [int(target_id) for target_id, _ in named if target_id.isascii() and target_id.isdigit()]
    for start in range(0, len(ids), 5000):
        rows = Certificate.objects.filter(pk__in=ids[start:start + 5000], revoked_at__isnull=True)
        for pk, serial in rows.values_list("pk", "serial"):
            if (str(pk), serial) in named:
                report.add(ERROR, "revocation_undone", f"certificate {pk} (serial {serial}) has a revocation audit "
                           "event but is not revoked: a revocation was undone outside the application.",
                           f"certificate:{pk}")
