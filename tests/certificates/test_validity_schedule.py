"""TLS server validity follows the CA/B Forum schedule (BR 6.3.2, ballot SC-081) by issuance date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from certificates.crypto.profiles import PROFILES, max_validity_days


@pytest.mark.parametrize(
    ("issued_at", "server_days"),
    [
        (datetime(2026, 3, 14, 23, 59, tzinfo=UTC), 398),
        (datetime(2026, 3, 15, tzinfo=UTC), 200),
        (datetime(2027, 3, 15, tzinfo=UTC), 100),
        (datetime(2029, 3, 15, tzinfo=UTC), 47),
    ],
)
def test_server_profiles_follow_the_schedule(issued_at: datetime, server_days: int) -> None:
    assert max_validity_days(PROFILES["server"], issued_at) == server_days
    assert max_validity_days(PROFILES["server-client"], issued_at) == server_days


def test_profiles_without_server_auth_keep_their_own_maximum() -> None:
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert max_validity_days(PROFILES["client"], later) == PROFILES["client"].max_days
    assert max_validity_days(PROFILES["email"], later) == PROFILES["email"].max_days
