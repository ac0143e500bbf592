"""Shared fixtures for the vault tests.

PBKDF2 costs ~75 ms, so the two master keys are derived once per session; the
ciphers are cheap to rebuild from them.

Every test also runs under a leak guard: each ``VaultError`` created during the
test and everything logged (captured at DEBUG) is checked for the known test
secrets (passphrases, master keys, root passwords, in raw, hex and repr forms).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from certificates.vault.at_rest import ArtifactCipher, derive_master_key
from certificates.vault.errors import VaultError
from certificates.vault.storage import ArtifactStore

from .helpers import OTHER_PASSPHRASE, OTHER_SALT, PASSPHRASE, SALT, assert_no_secret, assert_no_secret_in_text


@pytest.fixture(autouse=True)
def _no_secret_leaks(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    created: list[VaultError] = []

    def recording_init(self: VaultError, *args: object) -> None:
        created.append(self)
        Exception.__init__(self, *args)

    # instrumentation of our own base class (not a mock): every vault error passes here
    monkeypatch.setattr(VaultError, "__init__", recording_init)
    caplog.set_level(logging.DEBUG)
    yield
    assert_no_secret(*created)
    assert_no_secret_in_text(caplog.text)


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
