"""The canonical serialization is exactly the recipe its module documents, for every input.

`audit.canonical` writes timestamps with `isoformat` and serializes through one shared
encoder; an outside verifier follows the documented recipe (`strftime`,
`json.dumps`), so the two must agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from audit.canonical import HASHED_FIELDS, canonical_bytes, compute_hash, format_timestamp

DOCUMENTED_TIMESTAMP = "%Y-%m-%dT%H:%M:%S.%fZ"

MOMENTS = [
    datetime(2026, 11, 22, 10, 30, 5, 123456, tzinfo=UTC),
    datetime(2026, 11, 22, 10, 30, 5, tzinfo=UTC),  # zero microseconds are still written
    datetime(2026, 1, 1, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-11))),  # crosses a year
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),  # before 1000: strftime's own spelling
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


def documented_bytes(record: dict[str, object]) -> bytes:
    """The recipe of the module docstring, written out as an outside verifier would."""
    payload = {name: record[name] for name in HASHED_FIELDS}
    if isinstance(payload["created_at"], datetime):
        payload["created_at"] = payload["created_at"].astimezone(UTC).strftime(DOCUMENTED_TIMESTAMP)
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def record(**overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "v": 1, "seq": 7, "prev_hash": "a" * 64, "created_at": MOMENTS[0], "action": "certificate.issue",
        "outcome": "success", "actor_user_id": None, "actor_username": "zoë", "actor_api_key_id": 3,
        "actor_role": "manager", "actor_label": "", "organization_id": 1, "organization_slug": "acme",
        "target_type": "certificate", "target_id": "12", "target_serial": "0a1b", "source_ip": "::1",
        "user_agent": "curl/8 \"quoted\" \\ tab\t", "details": {"z": [1, 2.5, None], "a": {"ü": True}},
    }
    return {**values, **overrides}


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda moment: moment.isoformat())
def test_timestamps_are_spelled_as_the_documented_strftime(moment: datetime) -> None:
    assert format_timestamp(moment) == moment.astimezone(UTC).strftime(DOCUMENTED_TIMESTAMP)


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_timestamp(datetime(2026, 1, 1))


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda moment: moment.isoformat())
def test_the_bytes_and_hash_are_the_documented_recipes(moment: datetime) -> None:
    values = record(created_at=moment)
    assert canonical_bytes(values) == documented_bytes(values)
    assert compute_hash(values) == hashlib.sha256(documented_bytes(values)).hexdigest()


def test_an_export_line_with_text_timestamps_hashes_the_same() -> None:
    values = record()
    line = {**values, "created_at": format_timestamp(MOMENTS[0])}
    assert canonical_bytes(line) == canonical_bytes(values)


def test_a_non_finite_number_is_refused_as_before() -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_bytes(record(details={"x": float("nan")}))
