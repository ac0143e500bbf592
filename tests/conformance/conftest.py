"""Fixtures of the judge matrix: the corpus, and each outside verifier once per test session.

A verifier that cannot be installed (see tests/debian.py: `PKI_BROWSER_INSTALL=1` lets the tests
apt-get it) skips the tests that need it, with a message naming the package.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.corpus import Corpus
from tests.conftest import running_on_postgres
from tests.debian import ensure_tool
from tests.judges import NssDatabase, build_go_verifier


@pytest.fixture(scope="session")
def corpus(django_db_setup, django_db_blocker) -> Corpus:
    if running_on_postgres():
        pytest.skip("The judges read the bytes the CA emits, which do not depend on the database: they run in the "
                    "SQLite pass (the corpus is made the same way on PostgreSQL).")
    return Corpus(django_db_blocker)


@pytest.fixture(scope="session")
def certtool() -> str:
    return ensure_tool("certtool")


@pytest.fixture(scope="session")
def go_verifier(tmp_path_factory) -> Path:
    go = ensure_tool("go")
    return build_go_verifier(go, tmp_path_factory.mktemp("goverify"))


class NssRoots:
    """One NSS database per session; each chain's root is added (trusted C,C,C) the first time it is used."""

    def __init__(self, directory: Path) -> None:
        self.certutil, self.vfychain = ensure_tool("certutil"), ensure_tool("vfychain")
        self.database = NssDatabase(self.certutil, self.vfychain, directory, [])
        self._added: set[bytes] = set()

    def trusting(self, root) -> NssDatabase:
        fingerprint = root.fingerprint(_sha256())
        if fingerprint not in self._added:
            self.database.add_root(root, f"root-{len(self._added)}")
            self._added.add(fingerprint)
        return self.database


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


@pytest.fixture(scope="session")
def nss(tmp_path_factory) -> NssRoots:
    return NssRoots(tmp_path_factory.mktemp("nssdb"))
