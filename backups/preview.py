"""What a restore would change, said before anything changes; and the facts the carry-forward uses.

A restore puts the database back to the backup's moment, but some things must not go back,
because relying parties and holders already saw them: a revocation (a certificate answers
`revoked` in OCSP and sits in published CRLs; a revoked API key was refused), a CRL number
(RFC 5280 5.2.3), and the audit trail (what happened happened). Everything else goes back.

`RestorePreview` compares the validated backup (`BackupFacts`, read from its staged rows) with
the live data (`LiveFacts`) and says, in numbers and words, what the restore would drop, what it
carries forward, and what it does with the audit trail:

- `kept`: the backup's trail is a prefix of the live one (a backup of this installation); the
  live trail stays as it is, events after the backup included, and the restore is appended;
- `adopted`: the live trail is a prefix of the backup's (an empty or younger installation); the
  backup's trail is loaded and the restore appended;
- `diverged`: neither (another installation's trail, or a live trail that no longer verifies):
  refused unless the operator explicitly replaces the trail, which the restore event records.

The operator confirms by typing `confirmation_phrase`; `digest` pins the numbers they saw, so a
confirmation given for one preview does not carry out a different restore.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from audit.canonical import GENESIS_HASH
from audit.keys import audit_keys
from audit.verification import BrokenLink, verify_chain, verify_records
from backups.archive import TableSpec, decode_row
from backups.validation import StagedBackup

AUDIT_KEPT, AUDIT_ADOPTED, AUDIT_DIVERGED = "kept", "adopted", "diverged"


# --------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class CertificateFact:
    revoked: bool
    valid: bool  # neither revoked nor outside its validity, at the moment the facts were read
    issuer_fingerprint: str | None  # the issuing CA's certificate fingerprint (None for a root)


@dataclass
class ChainFacts:
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    count: int = 0
    newest_at: datetime | None = None
    broken: BrokenLink | None = None


@dataclass
class Facts:
    """The comparable state of one side (the backup or the live data), keyed by identities that survive a
    restore on another machine: certificate fingerprints, API key prefixes, usernames, session ids."""

    certificates: dict[str, CertificateFact] = field(default_factory=dict)
    cas: dict[str, str] = field(default_factory=dict)  # CA certificate fingerprint -> CA name
    crl_numbers: dict[str, int] = field(default_factory=dict)  # CA certificate fingerprint -> CRL counter
    api_keys: dict[str, bool] = field(default_factory=dict)  # prefix -> revoked
    users: dict[str, bool] = field(default_factory=dict)  # username -> active
    sessions: dict[str, bool] = field(default_factory=dict)  # jti -> revoked
    organizations: set[str] = field(default_factory=set)  # slugs
    audit: ChainFacts = field(default_factory=ChainFacts)
    created_at: datetime | None = None


def staged_rows(staged: StagedBackup, label: str) -> Iterator[dict[str, Any]]:
    """The decoded rows of one staged table, as {column: value}."""
    spec: TableSpec = next(spec for spec in staged.tables if spec.label == label)
    with staged.member_path(spec.member).open("rb") as handle:
        for line in handle:
            yield dict(zip(spec.columns, decode_row(spec, line), strict=True))


def _fact(revoked_at: datetime | None, not_before: datetime, not_after: datetime, issuer: str | None,
          now: datetime) -> CertificateFact:
    revoked = revoked_at is not None
    return CertificateFact(revoked, not revoked and not_before <= now < not_after, issuer)


def backup_facts(staged: StagedBackup) -> Facts:
    """The backup's facts, from its validated staged rows; its audit chain verified under this installation's keys."""
    now = timezone.now()
    facts = Facts(created_at=_parse_time(staged.manifest.get("created_at")))
    fingerprint_of = {row["id"]: row["fingerprint_sha256"] for row in staged_rows(staged, "certificates.certificate")}
    ca_certificate = {}
    for row in staged_rows(staged, "certificates.certificateauthority"):
        fingerprint = fingerprint_of.get(row["certificate_id"], "")
        ca_certificate[row["id"]] = fingerprint
        facts.cas[fingerprint] = row["name"]
        facts.crl_numbers[fingerprint] = int(row["crl_number"])
    for row in staged_rows(staged, "certificates.certificate"):
        facts.certificates[row["fingerprint_sha256"]] = _fact(row["revoked_at"], row["not_before"], row["not_after"],
                                                              ca_certificate.get(row["issuer_id"]), now)
    facts.api_keys = {row["prefix"]: row["revoked_at"] is not None
                      for row in staged_rows(staged, "organizations.apikey")}
    facts.users = {row["username"]: bool(row["is_active"]) for row in staged_rows(staged, "auth.user")}
    facts.sessions = {row["jti"]: row["revoked_at"] is not None
                      for row in staged_rows(staged, "organizations.sessiontoken")}
    facts.organizations = {row["slug"] for row in staged_rows(staged, "organizations.organization")}
    chain = verify_records(backup_audit_records(staged), keys=audit_keys())
    facts.audit = ChainFacts(chain.head_seq, chain.head_hash, chain.count, broken=chain.broken)
    return facts


def backup_audit_records(staged: StagedBackup) -> Iterator[dict[str, Any]]:
    """The backup's audit events as the verifier reads them."""
    for row in staged_rows(staged, "audit.auditevent"):
        row["v"] = row.pop("version")
        yield row


def backup_hash_at(staged: StagedBackup, seq: int) -> str | None:
    if seq == 0:
        return GENESIS_HASH
    return next((str(row["hash"]) for row in staged_rows(staged, "audit.auditevent") if row["seq"] == seq), None)


def live_facts() -> Facts:
    """The live data's facts; its audit chain verified as `verify_audit_log` does (MACs and anchor)."""
    from django.contrib.auth import get_user_model

    from audit.models import AuditEvent
    from certificates.models import Certificate, CertificateAuthority
    from organizations.models import ApiKey, Organization, SessionToken

    now = timezone.now()
    facts = Facts()
    for fingerprint, name, number in CertificateAuthority.objects.values_list(
            "certificate__fingerprint_sha256", "name", "crl_number").iterator():
        facts.cas[fingerprint] = name
        facts.crl_numbers[fingerprint] = number
    rows = Certificate.objects.values_list("fingerprint_sha256", "revoked_at", "not_before", "not_after",
                                           "issuer__certificate__fingerprint_sha256")
    for fingerprint, revoked_at, not_before, not_after, issuer in rows.iterator(chunk_size=2000):
        facts.certificates[fingerprint] = _fact(revoked_at, not_before, not_after, issuer, now)
    facts.api_keys = {prefix: revoked is not None for prefix, revoked in ApiKey.objects.values_list("prefix",
                                                                                                    "revoked_at")}
    facts.users = dict(get_user_model().objects.values_list("username", "is_active"))
    facts.sessions = {jti: revoked is not None for jti, revoked in SessionToken.objects.values_list("jti",
                                                                                                    "revoked_at")}
    facts.organizations = set(Organization.objects.values_list("slug", flat=True))
    chain = verify_chain()
    facts.audit = ChainFacts(chain.head_seq, chain.head_hash, chain.count, broken=chain.broken,
                             newest_at=AuditEvent.objects.order_by("-seq").values_list("created_at", flat=True).first())
    return facts


def _parse_time(text: object) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- the decision and the preview


def audit_decision(live: ChainFacts, backup: ChainFacts, backup_hash_at: Callable[[int], str | None]) -> str:
    """`kept`, `adopted` or `diverged` (see the module docstring). The backup's chain has verified already."""
    if live.broken is not None:
        return AUDIT_DIVERGED
    if backup.head_seq <= live.head_seq and live_hash_at(backup.head_seq) == backup.head_hash:
        return AUDIT_KEPT
    if live.head_seq <= backup.head_seq and backup_hash_at(live.head_seq) == live.head_hash:
        return AUDIT_ADOPTED
    return AUDIT_DIVERGED


def live_hash_at(seq: int) -> str | None:
    if seq == 0:
        return GENESIS_HASH
    from audit.models import AuditEvent

    return AuditEvent.objects.filter(seq=seq).values_list("hash", flat=True).first()


@dataclass
class RestorePreview:
    backup_created_at: str
    hours_older: float | None  # the backup's age against the newest live audit event
    certificates_dropped: int  # live certificates the backup does not have, not revoked
    certificates_dropped_valid: int
    cas_dropped: list[str]
    revocations_carried: int  # certificates revoked since the backup
    revoked_certificates_kept: int  # certificates issued and revoked since the backup: kept, as revoked
    revoked_certificates_lost: int  # the same, under a CA the backup does not have (they cannot be listed)
    api_key_revocations_carried: int
    user_deactivations_carried: int
    session_revocations_carried: int
    crl_numbers_kept: int
    api_keys_dropped: int
    users_dropped: int
    organizations_dropped: int
    audit_trail: str  # kept | adopted | diverged
    audit_events_after_backup: int
    backup_audit_events: int
    live_audit_events: int
    live_audit_broken: str | None

    @property
    def confirmation_phrase(self) -> str:
        """What the operator types: the backup's day, read off the preview."""
        return f"restore {self.backup_created_at[:10] or 'backup'}"

    @property
    def digest(self) -> str:
        """Pins what the operator saw (everything but the age, which grows while they read)."""
        counted = {name: value for name, value in asdict(self).items() if name != "hours_older"}
        return hashlib.sha256(json.dumps(counted, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def revocations_total(self) -> int:
        return (self.revocations_carried + self.revoked_certificates_kept + self.api_key_revocations_carried
                + self.user_deactivations_carried + self.session_revocations_carried)

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "confirmation_phrase": self.confirmation_phrase, "digest": self.digest,
                "summary": self.lines()}

    def lines(self) -> list[str]:
        """The preview in words, for the page, the command and the API's `summary`."""
        age = f"{self.hours_older:g} hours older than the live data" if self.hours_older is not None else \
            "of unknown age"
        made = self.backup_created_at.replace("T", " ")[:16] + " UTC" if self.backup_created_at else "unknown date"
        lines = [f"This backup ({made}) is {age}: it would drop "
                 f"{self.certificates_dropped} certificates ({self.certificates_dropped_valid} still valid) and "
                 f"{self.audit_events_dropped} audit events; {self.revocations_total} revocations will be carried "
                 "forward."]
        if self.cas_dropped:
            lines.append(f"It drops {len(self.cas_dropped)} CAs created since ({', '.join(self.cas_dropped[:5])}): "
                         "their keys are lost, and what they issued can no longer be revoked here. Revoke them "
                         "first if they must not stay trusted.")
        carried = [f"{self.revocations_carried} certificate revocations",
                   f"{self.revoked_certificates_kept} certificates issued and revoked since (kept, as revoked)",
                   f"{self.api_key_revocations_carried} API key revocations",
                   f"{self.user_deactivations_carried} deactivated users",
                   f"{self.session_revocations_carried} ended sessions",
                   f"the CRL numbers of {self.crl_numbers_kept} CAs"]
        lines.append("Carried forward from the live data: " + "; ".join(carried) + ".")
        if self.revoked_certificates_lost:
            lines.append(f"{self.revoked_certificates_lost} certificates revoked since were issued by CAs the backup "
                         "does not have: they drop with their CA.")
        lines.append(f"Also dropped: {self.api_keys_dropped} API keys, {self.users_dropped} users and "
                     f"{self.organizations_dropped} organizations created since.")
        lines.append(self._audit_line())
        return lines

    @property
    def audit_events_dropped(self) -> int:
        return self.live_audit_events if self.audit_trail == AUDIT_DIVERGED else 0

    def _audit_line(self) -> str:
        if self.audit_trail == AUDIT_KEPT:
            return (f"Audit trail: kept. The backup's {self.backup_audit_events} events are the first of the live "
                    f"trail; the {self.audit_events_after_backup} events since stay, and the restore is recorded.")
        if self.audit_trail == AUDIT_ADOPTED:
            return (f"Audit trail: the backup's {self.backup_audit_events} events extend the live trail's "
                    f"{self.live_audit_events}; they are loaded and the restore is recorded.")
        why = (f"the live trail does not verify ({self.live_audit_broken})" if self.live_audit_broken
               else "the backup's trail and the live trail are not one history")
        return (f"Audit trail: DIVERGED: {why}. The restore is refused unless you replace the audit trail, an "
                f"override the restore records: the live trail's {self.live_audit_events} events would be replaced "
                f"by the backup's {self.backup_audit_events}.")


def build_preview(backup: Facts, live: Facts, backup_hash_at: Callable[[int], str | None]) -> RestorePreview:
    """Compare the two sides (nothing is written here)."""
    live_only = {fp: fact for fp, fact in live.certificates.items() if fp not in backup.certificates}
    revoked_since = [fact for fact in live_only.values() if fact.revoked]
    hours = None
    if backup.created_at is not None:
        newest = live.audit.newest_at or timezone.now()
        hours = round(max(0.0, (newest - backup.created_at).total_seconds() / 3600), 1)
    return RestorePreview(
        backup_created_at=backup.created_at.isoformat(timespec="seconds") if backup.created_at else "",
        hours_older=hours,
        certificates_dropped=sum(1 for fact in live_only.values() if not fact.revoked),
        certificates_dropped_valid=sum(1 for fact in live_only.values() if fact.valid),
        cas_dropped=sorted(name for fp, name in live.cas.items() if fp not in backup.cas),
        revocations_carried=sum(1 for fp, fact in live.certificates.items()
                                if fact.revoked and fp in backup.certificates and not backup.certificates[fp].revoked),
        revoked_certificates_kept=sum(1 for fact in revoked_since if fact.issuer_fingerprint in backup.cas),
        revoked_certificates_lost=sum(1 for fact in revoked_since if fact.issuer_fingerprint not in backup.cas),
        api_key_revocations_carried=sum(1 for prefix, revoked in live.api_keys.items()
                                        if revoked and backup.api_keys.get(prefix) is False),
        user_deactivations_carried=sum(1 for name, active in live.users.items()
                                       if not active and backup.users.get(name) is True),
        session_revocations_carried=sum(1 for jti, revoked in live.sessions.items()
                                        if revoked and backup.sessions.get(jti) is False),
        crl_numbers_kept=sum(1 for fp, number in live.crl_numbers.items()
                             if number > backup.crl_numbers.get(fp, number)),
        api_keys_dropped=sum(1 for prefix in live.api_keys if prefix not in backup.api_keys),
        users_dropped=sum(1 for name in live.users if name not in backup.users),
        organizations_dropped=len(live.organizations - backup.organizations),
        audit_trail=audit_decision(live.audit, backup.audit, backup_hash_at),
        audit_events_after_backup=max(0, live.audit.head_seq - backup.audit.head_seq),
        backup_audit_events=backup.audit.count,
        live_audit_events=live.audit.head_seq,
        live_audit_broken=live.audit.broken.message if live.audit.broken else None,
    )
