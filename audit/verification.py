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
- `checkpoint_mismatch` / `truncated`: the chain no longer ends in, or no longer
  reaches, the head a checkpoint recorded (a consistent rewrite, or deleted tail).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection, transaction

from audit.canonical import FORMAT_VERSION, GENESIS_HASH, HASHED_FIELDS, compute_hash, format_timestamp

CHECKPOINT_FORMAT = "pki-audit-checkpoint/1"
PROGRESS_EVERY = 10_000
DATABASE_FIELDS = ("id", "hash", "version", *(name for name in HASHED_FIELDS if name != "v"))


class CheckpointError(ValueError):
    """A checkpoint file cannot be read or is not a checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    """What an outside party keeps: the chain's head at a moment."""

    head_seq: int
    head_hash: str
    count: int
    created_at: str
    format: str = CHECKPOINT_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2) + "\n"

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
                             format=str(data.get("format", CHECKPOINT_FORMAT)))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as error:
            raise CheckpointError(f"not an audit checkpoint: {error}") from None
        if checkpoint.format != CHECKPOINT_FORMAT:
            raise CheckpointError(f"unknown checkpoint format {checkpoint.format!r}")
        if checkpoint.head_seq < 0 or len(checkpoint.head_hash) != len(GENESIS_HASH):
            raise CheckpointError("not an audit checkpoint: bad head_seq or head_hash")
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
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None

    def make_checkpoint(self) -> Checkpoint:
        if not self.ok:
            raise ValueError("a broken chain has no checkpoint")
        return Checkpoint(head_seq=self.head_seq, head_hash=self.head_hash, count=self.count,
                          created_at=format_timestamp(datetime.now(UTC)))

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "broken": asdict(self.broken) if self.broken else None,
            "checkpoint": asdict(self.checkpoint) if self.checkpoint else None,
        }


def verify_records(
    records: Iterable[Mapping[str, object]],
    *,
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
) -> VerificationResult:
    """Check `records` (seq order, each with the hashed fields plus `id` and `hash`)."""
    result = VerificationResult(checkpoint=checkpoint)
    for record in records:
        broken = _check_record(record, expected_seq=result.head_seq + 1, prev_hash=result.head_hash)
        if broken is None and checkpoint is not None and record["seq"] == checkpoint.head_seq \
                and record["hash"] != checkpoint.head_hash:
            broken = BrokenLink("checkpoint_mismatch", checkpoint.head_seq, _event_id(record),
                                f"event seq {checkpoint.head_seq} has hash {record['hash']} but the checkpoint of "
                                f"{checkpoint.created_at} says {checkpoint.head_hash}: the chain up to it was "
                                "rewritten")
        if broken is not None:
            result.broken = broken
            return result
        result.count += 1
        result.head_seq = int(record["seq"])  # type: ignore[call-overload]
        result.head_hash = str(record["hash"])
        if progress is not None and result.count % PROGRESS_EVERY == 0:
            progress(result.count)
    if checkpoint is not None and result.head_seq < checkpoint.head_seq:
        result.broken = BrokenLink("truncated", result.head_seq + 1, None,
                                   f"the chain ends at seq {result.head_seq} but the checkpoint of "
                                   f"{checkpoint.created_at} reaches seq {checkpoint.head_seq}: events were deleted")
    return result


def _event_id(record: Mapping[str, object]) -> int | None:
    value = record.get("id")
    return int(value) if value is not None else None  # type: ignore[call-overload]


def _check_record(record: Mapping[str, object], *, expected_seq: int, prev_hash: str) -> BrokenLink | None:
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
        return None
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
) -> VerificationResult:
    """Verify the whole chain in the database."""
    with read_only_snapshot():
        return verify_records(database_records(chunk_size), checkpoint=checkpoint, progress=progress)


def database_report(checkpoint: Checkpoint | None = None) -> dict[str, object]:
    """`verify_audit_log --json` as one dict (the API's verify): the chain, whether the append-only
    triggers are in place, and, when intact, a checkpoint of the head (`new_checkpoint`) to keep elsewhere."""
    from audit.triggers import triggers_installed

    result = verify_chain(checkpoint=checkpoint)
    return {**result.as_dict(), "triggers_installed": triggers_installed(connection),
            "new_checkpoint": asdict(result.make_checkpoint()) if result.ok else None}


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
