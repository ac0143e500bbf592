"""Vault benchmark: prints figures, asserts nothing (not collected by pytest).

Run: .venv/bin/python -m tests.vault.bench_vault
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from certificates.vault.at_rest import ArtifactCipher, clear_master_key_cache, derive_master_key
from certificates.vault.custody import (
    IntermediateKeyCache,
    ScryptParams,
    load_intermediate_key,
    seal_intermediate_key,
    seal_root_key,
    unlock_root_key,
)
from certificates.vault.rotation import rotate_artifacts
from certificates.vault.storage import ArtifactStore


def _time(label: str, action: Callable[[], object], repeat: int) -> None:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    print(f"{label:<48} median {statistics.median(samples):8.3f} ms  (n={repeat})")


def main() -> None:
    passphrase, salt = "benchmark passphrase, at least 32 characters", "benchmark-salt-0123"
    clear_master_key_cache()
    _time("PBKDF2 master key, first call", lambda: derive_master_key(passphrase, salt), 1)
    _time("PBKDF2 master key, memoised", lambda: derive_master_key(passphrase, salt), 1000)
    cipher = ArtifactCipher.from_settings_values(passphrase, salt)
    payload = b"x" * 4096
    blob = cipher.encrypt(payload, "a/key.pem.enc")
    _time("encrypt 4 KiB", lambda: cipher.encrypt(payload, "a/key.pem.enc"), 1000)
    _time("decrypt 4 KiB", lambda: cipher.decrypt(blob, "a/key.pem.enc"), 1000)
    with tempfile.TemporaryDirectory() as tmp:
        store = ArtifactStore(Path(tmp), cipher)
        _time("atomic write (fsync x2)", lambda: store.write("a/key.pem.enc", payload), 100)
        _time("read", lambda: store.read("a/key.pem.enc"), 1000)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        seal_intermediate_key(store, "cas/ec", ec_key)
        seal_intermediate_key(store, "cas/rsa", rsa_key)
        _time("load intermediate EC P-256", lambda: load_intermediate_key(store, "cas/ec"), 50)
        _time("load intermediate RSA-3072", lambda: load_intermediate_key(store, "cas/rsa"), 20)
        cache = IntermediateKeyCache()
        cache.get_or_load("rsa", lambda: load_intermediate_key(store, "cas/rsa"))
        _time("intermediate key cache hit", lambda: cache.get_or_load("rsa", lambda: None), 10000)
        seal_root_key(store, "cas/root", ec_key, "benchmark root password")
        _time(
            "unlock root (scrypt n=2**17, r=8, p=1)",
            lambda: unlock_root_key(store, "cas/root", "benchmark root password"),
            5,
        )
        seal_root_key(store, "cas/root-cheap", ec_key, "benchmark root password", ScryptParams(n=2**12))
        for index in range(500):
            store.write(f"certs/{index}/bundle.p12.enc", payload)
        new = ArtifactCipher(derive_master_key(passphrase + " rotated", salt))
        start = time.perf_counter()
        report = rotate_artifacts(Path(tmp), cipher, new)
        elapsed = (time.perf_counter() - start) * 1000
        print(f"{f'rotate {report.rotated} artifacts':<48} total  {elapsed:8.1f} ms")


if __name__ == "__main__":
    main()
