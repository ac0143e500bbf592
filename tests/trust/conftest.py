"""Fixtures for the attack tests: one live installation per engine and test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.trust.live import LivePKI, live_pki


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request, tmp_path_factory) -> Iterator[LivePKI]:
    """gunicorn serving a built installation (PostgreSQL: a throw-away database; skipped when none answers)."""
    with live_pki(request.param, tmp_path_factory.mktemp(f"live-{request.param}")) as instance:
        yield instance
