"""Fixtures for backup tests: a small PKI (root and intermediate CA, their keys and audit events)."""

from __future__ import annotations

from pathlib import Path

import pytest

from certificates.models import CertificateAuthority
from tests.backups.helpers import make_backup
from tests.certificates import conftest as certificate_fixtures

ROOT_PASSWORD = certificate_fixtures.ROOT_PASSWORD
operator = certificate_fixtures.operator
root_ca = certificate_fixtures.root_ca
intermediate_ca = certificate_fixtures.intermediate_ca


@pytest.fixture
def populated_pki(intermediate_ca: CertificateAuthority) -> CertificateAuthority:
    """Root and intermediate CAs with their sealed keys, and their audit events."""
    return intermediate_ca


@pytest.fixture
def backup_file(populated_pki: CertificateAuthority, tmp_path: Path) -> Path:
    return make_backup(tmp_path / "backup.zip")
