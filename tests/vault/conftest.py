"""Shared fixtures for the vault tests.

PBKDF2 costs ~75 ms, so the two master keys are derived once per session; the
ciphers are cheap to rebuild from them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from certificates.vault.at_rest import ArtifactCipher, derive_master_key
from certificates.vault.storage import ArtifactStore

PASSPHRASE = "vault-test passphrase: correct horse battery staple"
SALT = "installation-salt-0123456789"
OTHER_PASSPHRASE = "another installation's passphrase, also long enough"
OTHER_SALT = b"other-salt-bytes-0123456789"


@pytest.fixture(scope="session")
def master_key() -> bytes:
    return derive_master_key(PASSPHRASE, SALT)


@pytest.fixture(scope="session")
def other_master_key() -> bytes:
    return derive_master_key(OTHER_PASSPHRASE, OTHER_SALT)


@pytest.fixture
def cipher(master_key: bytes) -> ArtifactCipher:
    return ArtifactCipher(master_key)


@pytest.fixture
def other_cipher(other_master_key: bytes) -> ArtifactCipher:
    return ArtifactCipher(other_master_key)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path, cipher: ArtifactCipher) -> ArtifactStore:
    return ArtifactStore(data_dir, cipher)
