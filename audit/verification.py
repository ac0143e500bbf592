"""Walking the chain: find the first broken link, and prove a checkpoint still holds.

`verify_records` works on any iterable of records in seq order (database rows or the
lines of an export) and holds one record at a time, so memory stays flat for
millions of events. It stops at the first break and says what kind it is:

- `missing`: a seq number is skipped: events were deleted;
- `edited`: the event's content no longer matches its own hash;
- `relinked`: the event is intact but its `prev_hash` is not the previous event's
  hash: an event before it was inserted, deleted and renumbered, or edited and re-hashed;
- `moved`: both its link and its own hash disagree: events were swapped, or one
  was inserted and the rest renumbered;
- `forged`: content, hash and link agree but the event's MAC (`audit.keys`) does not:
  the chain from here on was re-hashed by someone without this installation's
  audit key (a database owner, or an edited backup);
- `checkpoint_mismatch` / `truncated`: the chain no longer ends in, or no longer
  reaches, the head a checkpoint recorded (a consistent rewrite, or deleted tail);
- `checkpoint_signature`: a signed checkpoint whose signature does not verify, or
  whose key this installation never had.

Checkpoints (format 2) are signed with the installation's Ed25519 checkpoint key, so
an off-site copy proves what the chain held and cannot be forged; format 1 files
(unsigned, from earlier releases) are still checked, with a note. The installation
keeps its own latest checkpoint, the *anchor*, beside the data directory
(`audit.anchor`), and every database verification also checks against it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection, transaction

from audit.canonical import FORMAT_VERSION, GENESIS_HASH, HASHED_FIELDS, compute_hash, format_timestamp
from audit.keys import AuditKeys, verify_signature

CHECKPOINT_FORMAT = "pki-audit-checkpoint/2"
UNSIGNED_CHECKPOINT_FORMAT = "pki-audit-checkpoint/1"
CHECKPOINT_FORMATS = (CHECKPOINT_FORMAT, UNSIGNED_CHECKPOINT_FORMAT)
PROGRESS_EVERY = 10_000
DATABASE_FIELDS = ("id", "hash", "mac", "version", *(name for name in HASHED_FIELDS if name != "v"))
# Actions whose details the verifier reads: a key rotation names the checkpoint keys it moved
# between, a restore that replaced the trail names the head of the trail it replaced.
ROTATION_ACTION = "encryption_key.rotate"
RESTORE_ACTION = "backup.restore"


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or is not a checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """What an outside party keeps: the chain's head at a moment, signed by the installation."""

    head_seq: int
    head_hash: str
    count: int
    created_at: str
    format: str = CHECKPOINT_FORMAT
    public_key: str = ""  # base64 raw Ed25519 key that signed it (format 2)
    signature: str = ""  # base64 Ed25519 signature over `signed_bytes()` (format 2)

    @classmethod
    def signed(cls, keys: AuditKeys, *, head_seq: int, head_hash: str, count: int,
               created_at: str | None = None) -> Checkpoint:
        unsigned = cls(head_seq=head_seq, head_hash=head_hash, count=count,
                       created_at=created_at or format_timestamp(datetime.now(UTC)), public_key=keys.public_key)
        return replace(unsigned, signature=keys.sign(unsigned.signed_bytes()))

    @property
    def is_signed(self) -> bool:
        return self.format == CHECKPOINT_FORMAT

    def signed_bytes(self) -> bytes:
        """What the signature covers: every other field, canonical JSON (sorted keys, no spaces)."""
        fields = {name: value for name, value in asdict(self).items() if name != "signature"}
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")

    def signature_valid(self) -> bool:
        return self.is_signed and verify_signature(self.public_key, self.signature, self.signed_bytes())

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, indent=2) + "\n"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        if not self.is_signed:
            del data["public_key"], data["signature"]
        return data

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise CheckpointError(f"not an audit checkpoint: {error}") from None
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Checkpoint:
        """A checkpoint from its JSON object: a file's content, or the `checkpoint` of an API request."""
        try:
            checkpoint = cls(head_seq=int(data["head_seq"]), head_hash=str(data["head_hash"]),
                             count=int(data["count"]), created_at=str(data["created_at"]),
                             format=str(data.get("format", UNSIGNED_CHECKPOINT_FORMAT)),
                             public_key=str(data.get("public_key") or ""), signature=str(data.get("signature") or ""))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise CheckpointError(f"not an audit checkpoint: {error}") from None
        if checkpoint.format not in CHECKPOINT_FORMATS:
            raise CheckpointError(f"unknown checkpoint format {checkpoint.format!r}")
        if checkpoint.head_seq < 0 or len(checkpoint.head_hash) != len(GENESIS_HASH):
            raise CheckpointError("not an audit checkpoint: bad head_seq or head_hash")
        if checkpoint.is_signed and not (checkpoint.public_key and checkpoint.signature):
            raise CheckpointError("not an audit checkpoint: a format 2 checkpoint needs public_key and signature")
        return checkpoint

    @classmethod
    def read(cls, path: Path) -> Checkpoint:
        try:
            return cls.from_json(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror}") from None


@dataclass(frozen=True)
class BrokenLink:
    kind: str
    seq: int
    event_id: int | None
    message: str


@dataclass
class VerificationResult:
    count: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    broken: BrokenLink | None = None
    checkpoint: Checkpoint | None = None
    macs_checked: bool = False
    notes: list[str] = field(default_factory=list)
    # Checkpoint public keys the chain vouches for (rotation events), and restores that replaced it.
    vouched_keys: set[str] = field(default_factory=set)
    replacements: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None

    def make_checkpoint(self, keys: AuditKeys) -> Checkpoint:
        if not self.ok:
            raise ValueError("a broken chain has no checkpoint")
        return Checkpoint.signed(keys, head_seq=self.head_seq, head_hash=self.head_hash, count=self.count)

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "macs_checked": self.macs_checked,
            "broken": asdict(self.broken) if self.broken else None,
            "checkpoint": self.checkpoint.as_dict() if self.checkpoint else None,
            "notes": list(self.notes),
        }


def verify_records(
    records: Iterable[Mapping[str, object]],
    *,
    keys: AuditKeys | None,
    checkpoints: Iterable[Checkpoint] = (),
    progress: Callable[[int], None] | None = None,
) -> VerificationResult:
    """Check `records` (seq order, each with the hashed fields plus `id`, `hash` and `mac`).

    With `keys`, every event's MAC is checked too; `keys=None` checks the hash chain only
    (what an outside party without the secrets can do). Every checkpoint must still be
    reached and matched; the first one is reported as `checkpoint` in the result.
    """
    checkpoints = list(checkpoints)
    result = VerificationResult(checkpoint=checkpoints[0] if checkpoints else None, macs_checked=keys is not None)
    pending: dict[int, list[Checkpoint]] = {}
    for checkpoint in checkpoints:
        pending.setdefault(checkpoint.head_seq, []).append(checkpoint)
    for record in records:
        broken = _check_record(record, expected_seq=result.head_seq + 1, prev_hash=result.head_hash, keys=keys)
        for checkpoint in pending.get(record["seq"], ()):  # type: ignore[call-overload]
            broken = broken or _check_checkpoint_head(record, checkpoint, result)
        if broken is not None:
            result.broken = broken
            return result
        _note_vouching_details(record, result)
        result.count += 1
        result.head_seq = int(record["seq"])  # type: ignore[call-overload]
        result.head_hash = str(record["hash"])
        if progress is not None and result.count % PROGRESS_EVERY == 0:
            progress(result.count)
    result.broken = _check_checkpoints_reached(checkpoints, result) or _check_checkpoint_keys(checkpoints, keys,
                                                                                             result)
    return result


def _replaced_note(result: VerificationResult, seq: int) -> str:
    """Why a checkpoint of an older trail no longer matches, when a recorded restore replaced that trail."""
    for replacement in result.replacements:
        if int(replacement.get("replaced_head_seq") or 0) >= seq:  # type: ignore[call-overload]
            return (f" (the restore recorded at seq {replacement['seq']} replaced the audit trail that reached seq "
                    f"{replacement['replaced_head_seq']}, by an explicit, audited override)")
    return ""


def _check_checkpoint_head(record: Mapping[str, object], checkpoint: Checkpoint,
                           result: VerificationResult) -> BrokenLink | None:
    if record["hash"] == checkpoint.head_hash:
        return None
    return BrokenLink("checkpoint_mismatch", checkpoint.head_seq, _event_id(record),
                      f"event seq {checkpoint.head_seq} has hash {record['hash']} but the checkpoint of "
                      f"{checkpoint.created_at} says {checkpoint.head_hash}: the chain up to it was rewritten"
                      + _replaced_note(result, checkpoint.head_seq))


def _check_checkpoints_reached(checkpoints: list[Checkpoint], result: VerificationResult) -> BrokenLink | None:
    for checkpoint in checkpoints:
        if result.head_seq < checkpoint.head_seq:
            return BrokenLink("truncated", result.head_seq + 1, None,
                              f"the chain ends at seq {result.head_seq} but the checkpoint of "
                              f"{checkpoint.created_at} reaches seq {checkpoint.head_seq}: events were deleted"
                              + _replaced_note(result, checkpoint.head_seq))
    return None


def _check_checkpoint_keys(checkpoints: list[Checkpoint], keys: AuditKeys | None,
                           result: VerificationResult) -> BrokenLink | None:
    """A signed checkpoint must verify, under the installation's key or one its chain vouches for."""
    trusted = set(result.vouched_keys) | ({keys.public_key} if keys is not None else set())
    for checkpoint in checkpoints:
        if not checkpoint.is_signed:
            result.notes.append(f"the checkpoint of {checkpoint.created_at} is unsigned (format 1): it shows the "
                                "chain matches it, not who made it")
            continue
        if not checkpoint.signature_valid():
            return BrokenLink("checkpoint_signature", checkpoint.head_seq, None,
                              f"the checkpoint of {checkpoint.created_at} has a signature that does not verify: "
                              "it was edited, or not made by a PKI")
        if keys is not None and checkpoint.public_key not in trusted:
            return BrokenLink("checkpoint_signature", checkpoint.head_seq, None,
                              f"the checkpoint of {checkpoint.created_at} was signed by a key this installation "
                              "never had")
    return None


def _note_vouching_details(record: Mapping[str, object], result: VerificationResult) -> None:
    """Keep what rotation and replacing-restore events say, once their own event has verified."""
    details = record.get("details")
    if not isinstance(details, Mapping):
        return
    if record.get("action") == ROTATION_ACTION:
        for name in ("audit_public_key_old", "audit_public_key_new"):
            if isinstance(details.get(name), str):
                result.vouched_keys.add(details[name])
    elif record.get("action") == RESTORE_ACTION and details.get("audit_trail") == "replaced":
        result.replacements.append({"seq": record["seq"], "replaced_head_seq": details.get("replaced_head_seq")})


def _event_id(record: Mapping[str, object]) -> int | None:
    value = record.get("id")
    return int(value) if value is not None else None  # type: ignore[call-overload]


def _check_record(record: Mapping[str, object], *, expected_seq: int, prev_hash: str,
                  keys: AuditKeys | None) -> BrokenLink | None:
    seq = record["seq"]
    event_id = _event_id(record)
    where = f"event seq {seq} (id {event_id})"
    if isinstance(seq, int) and seq > expected_seq:
        return BrokenLink("missing", expected_seq, event_id,
                          f"seq {expected_seq} is missing: {where} follows seq {expected_seq - 1}; "
                          "events were deleted")
    if seq != expected_seq:
        return BrokenLink("moved", expected_seq, event_id,
                          f"{where} appears where seq {expected_seq} belongs: events are out of order or duplicated")
    if record.get("v") != FORMAT_VERSION:
        return BrokenLink("edited", expected_seq, event_id, f"{where} has unknown format version {record.get('v')!r}")
    linked = record["prev_hash"] == prev_hash
    intact = _hash_matches(record)
    if linked and intact:
        if keys is None or keys.mac_matches(str(record["hash"]), record.get("mac")):
            return None
        return BrokenLink("forged", expected_seq, event_id,
                          f"{where}: its MAC does not match: the event was written, or the chain re-hashed from "
                          "here on, by someone without this installation's audit key")
    if linked:
        return BrokenLink("edited", expected_seq, event_id,
                          f"{where}: its content does not match its hash: the event was edited")
    if intact:
        return BrokenLink("relinked", expected_seq, event_id,
                          f"{where}: prev_hash does not match the hash of seq {expected_seq - 1}: an event before "
                          "it was inserted, removed or edited and re-hashed")
    return BrokenLink("moved", expected_seq, event_id,
                      f"{where}: neither its prev_hash nor its own hash match: events were reordered, or one was "
                      "inserted and the rest renumbered")


def _hash_matches(record: Mapping[str, object]) -> bool:
    """False also when a hashed field is missing or not serializable (a hand-edited export line)."""
    try:
        return compute_hash(record) == record["hash"]
    except (KeyError, TypeError, ValueError):
        return False


def database_records(chunk_size: int = 2000) -> Iterator[dict[str, object]]:
    """Every event in seq order, streamed, as the records `verify_records` checks."""
    from audit.models import AuditEvent

    rows = AuditEvent.objects.order_by("seq").values(*DATABASE_FIELDS).iterator(chunk_size=chunk_size)
    for row in rows:
        row["v"] = row.pop("version")
        yield row


def verify_chain(
    *,
    checkpoint: Checkpoint | None = None,
    chunk_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    use_anchor: bool = True,
    keys: AuditKeys | None = None,
) -> VerificationResult:
    """Verify the whole chain in the database: links, hashes, MACs, `checkpoint` and the local anchor."""
    from audit.anchor import read_anchor
    from audit.keys import audit_keys

    checkpoints = [checkpoint] if checkpoint is not None else []
    try:
        anchor = read_anchor() if use_anchor else None
    except CheckpointError as error:
        return VerificationResult(checkpoint=checkpoint, broken=BrokenLink("checkpoint_signature", 0, None, str(error)))
    if anchor is not None:
        checkpoints.append(anchor)
    with read_only_snapshot():
        result = verify_records(database_records(chunk_size), keys=keys or audit_keys(), checkpoints=checkpoints,
                                progress=progress)
    result.checkpoint = checkpoint
    _explain_replaced_trail(result)
    if anchor is not None and result.ok:
        result.notes.append(f"matches the installation's anchor at seq {anchor.head_seq} ({anchor.created_at})")
    return result


def _explain_replaced_trail(result: VerificationResult) -> None:
    """A checkpoint of a trail that a recorded, overriding restore replaced: say so (it still fails)."""
    from audit.models import AuditEvent

    if result.broken is None or result.broken.kind not in ("checkpoint_mismatch", "truncated"):
        return
    restores = AuditEvent.objects.filter(action=RESTORE_ACTION, outcome="success",
                                         details__audit_trail="replaced").values("seq", "details")
    result.replacements = [{"seq": row["seq"], "replaced_head_seq": row["details"].get("replaced_head_seq")}
                           for row in restores]
    note = _replaced_note(result, result.broken.seq)
    if note and note not in result.broken.message:
        result.broken = replace(result.broken, message=result.broken.message + note)


def database_report(checkpoint: Checkpoint | None = None) -> dict[str, object]:
    """`verify_audit_log --json` as one dict (the API's verify): the chain, whether the append-only
    triggers are in place, and, when intact, a signed checkpoint of the head (`new_checkpoint`) to keep
    elsewhere; the installation's anchor moves up to it."""
    from audit.anchor import advance_anchor
    from audit.keys import audit_keys
    from audit.triggers import triggers_installed

    result = verify_chain(checkpoint=checkpoint)
    new_checkpoint = result.make_checkpoint(audit_keys()) if result.ok else None
    if new_checkpoint is not None:
        advance_anchor(new_checkpoint)
    return {**result.as_dict(), "triggers_installed": triggers_installed(connection),
            "new_checkpoint": new_checkpoint.as_dict() if new_checkpoint else None}


@contextmanager
def read_only_snapshot() -> Iterator[None]:
    """Stream a long read efficiently.

    On PostgreSQL the read runs in one read-only transaction, so the server-side cursor
    streams from a single snapshot instead of materializing the table (as a cursor
    WITH HOLD outside a transaction would). On SQLite it runs without one: a
    transaction there would be BEGIN IMMEDIATE and hold off every writer meanwhile.
    Inside a caller's transaction (a restore verifying what it loaded) it just reads.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION READ ONLY")
        yield
