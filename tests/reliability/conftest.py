"""Fixtures for the reliability tests: a small CA hierarchy built by the services, and subprocess helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# The in-process hierarchy is the certificates tests' (one definition for every suite).
from tests.certificates.conftest import (  # noqa: F401
    ROOT_PASSWORD,
    intermediate_ca,
    operator,
    organization,
    root_ca,
)
from tests.reliability.installations import Installation, installation_for


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def installation(request, tmp_path_factory) -> Iterator[Installation]:
    """One real installation per engine and test module (PostgreSQL: a throw-away database; skipped if none)."""
    with installation_for(request.param, tmp_path_factory.mktemp(f"installation-{request.param}")) as instance:
        yield instance
