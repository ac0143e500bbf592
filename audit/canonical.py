"""The canonical serialization of an audit event and its chain hash (format version 1).

This module imports nothing from Django on purpose: it is the recipe an outside
party re-implements to check an export, so it must stay small and obvious.

    payload = every hashed field of the event (HASHED_FIELDS), with
              created_at as UTC ISO-8601 with microseconds and a `Z` suffix,
              prev_hash the previous event's hash (64 zeros for seq 1),
              v the format version (1)
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))  (ASCII, UTF-8 bytes)
    hash = SHA-256(canonical).hexdigest()

Because `prev_hash` and `seq` are inside the payload, the hash covers both the
previous event's hash and this event's content and position.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime

FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
HASH_LENGTH = 64

# Every field that goes into the hash, in the order they are documented.
HASHED_FIELDS: tuple[str, ...] = (
    "v",
    "seq",
    "prev_hash",
    "created_at",
    "action",
    "outcome",
    "actor_user_id",
    "actor_username",
    "actor_api_key_id",
    "actor_role",
    "actor_label",
    "organization_id",
    "organization_slug",
    "target_type",
    "target_id",
    "target_serial",
    "source_ip",
    "user_agent",
    "details",
)


# The recipe's json.dumps arguments, as one encoder: json.dumps builds a new encoder on each
# Call that passes any of them, a few microseconds on every append.
_CANONICAL_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False)


def format_timestamp(moment: datetime) -> str:
    """UTC, microseconds always present, `Z` suffix: one spelling per instant.

    The same text as `strftime("%Y-%m-%dT%H:%M:%S.%fZ")`; `isoformat` writes it in half the
    time, and for a UTC value always ends in "+00:00". Years before 1000, which `%Y` does not
    pad on every platform, take strftime.
    """
    if moment.tzinfo is None:
        raise ValueError("audit timestamps must be timezone-aware")
    utc = moment.astimezone(UTC)
    if utc.year < 1000:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def canonical_payload(record: Mapping[str, object]) -> dict[str, object]:
    """The hashed subset of `record` (a model's values or an export line), timestamps as text."""
    payload = {name: record[name] for name in HASHED_FIELDS}
    created_at = payload["created_at"]
    if isinstance(created_at, datetime):
        payload["created_at"] = format_timestamp(created_at)
    return payload


def canonical_bytes(record: Mapping[str, object]) -> bytes:
    payload = canonical_payload(record)
    return _CANONICAL_ENCODER.encode(payload).encode("utf-8")


def compute_hash(record: Mapping[str, object]) -> str:
    """SHA-256 over the canonical serialization (which contains `prev_hash` and `seq`)."""
    return hashlib.sha256(canonical_bytes(record)).hexdigest()
