"""Fixtures for the approval tests: the API tests' CA hierarchy and clients, and a profile that needs approval."""

from __future__ import annotations

import pytest

from certificates.models import CertificateProfile
from certificates.services.profiles import update_profile
from pki_project.actor import Actor
from tests.api.conftest import (  # noqa: F401  (fixtures shared with the API tests)
    clients,
    hierarchy,
    intermediate_ca,
    operator,
    other_hierarchy,
    root_ca,
)


@pytest.fixture
def guarded(db):
    """The built-in `server` profile, made to require approval (as a global admin would)."""
    row = CertificateProfile.objects.get(name="server")
    return update_profile(row, {"requires_approval": True}, actor=Actor.operator("tests"))
