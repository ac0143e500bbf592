"""Rotation of the master key: crash-safe, resumable, never loses an artifact."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from certificates.vault.at_rest import ArtifactCipher, derive_master_key
from certificates.vault.custody import (
    ScryptParams,
    load_intermediate_key,
    seal_intermediate_key,
    seal_root_key,
    store_secret,
    unlock_root_key,
)
from certificates.vault.errors import (
    RotationError,
    RotationInProgress,
    RotationInterrupted,
    VaultError,
    WrongEncryptionKey,
)
from certificates.vault.paths import TEMP_PREFIX
from certificates.vault.rotation import JOURNAL_FILENAME, read_rotation_journal, rotate_artifacts
from certificates.vault.storage import ArtifactStore

from .helpers import ROOT_PASSWORD, assert_no_secret

CHEAP = ScryptParams(n=2**12)
THIRD_PASSPHRASE = "a third passphrase for the refused-rotation tests"
THIRD_SALT = "third-salt-0123456789"


@pytest.fixture(scope="module")
def third_master_key() -> bytes:
    return derive_master_key(THIRD_PASSPHRASE, THIRD_SALT)


@pytest.fixture
def third_cipher(third_master_key: bytes) -> ArtifactCipher:
    return ArtifactCipher(third_master_key)


@pytest.fixture(scope="module")
def root_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def intermediate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def populated(store: ArtifactStore, root_key: object, intermediate_key: object) -> dict[str, bytes]:
    """A data dir with every kind of artifact; returns {relpath: plaintext} for the plain secrets."""
    seal_root_key(store, "cas/root", root_key, ROOT_PASSWORD, CHEAP)
    seal_intermediate_key(store, "cas/int", intermediate_key)
    plain = {f"certs/{index:02d}/bundle.p12.enc": f"pkcs12 #{index}".encode() for index in range(5)}
    plain["certs/02/key.pem.enc"] = b"generated key bundle"
    for relpath, data in plain.items():
        store_secret(store, relpath, data)
    return plain


def _relpaths(store: ArtifactStore) -> list[str]:
    return list(store.iter_artifacts())


def _assert_fully_rotated(
    data_dir: Path,
    old: ArtifactCipher,
    new: ArtifactCipher,
    plain: dict[str, bytes],
    root_key: object,
    intermediate_key: object,
) -> None:
    new_store, old_store = ArtifactStore(data_dir, new), ArtifactStore(data_dir, old)
    for relpath in _relpaths(new_store):
        assert new_store.header(relpath).key_id == new.key_id
        new_store.read(relpath)
        with pytest.raises(WrongEncryptionKey):
            old_store.read(relpath)
    for relpath, data in plain.items():
        assert new_store.read(relpath) == data
    assert unlock_root_key(new_store, "cas/root", ROOT_PASSWORD).public_key() == root_key.public_key()  # type: ignore[attr-defined]
    assert load_intermediate_key(new_store, "cas/int").public_key() == intermediate_key.public_key()  # type: ignore[attr-defined]
    assert not (data_dir / JOURNAL_FILENAME).exists()
    assert read_rotation_journal(data_dir) is None


def test_full_rotation(
    store: ArtifactStore,
    cipher: ArtifactCipher,
    other_cipher: ArtifactCipher,
    populated: dict[str, bytes],
    root_key: object,
    intermediate_key: object,
) -> None:
    data_dir = store.data_dir
    inner_before = {relpath: store.read(relpath) for relpath in _relpaths(store)}
    seen: list[tuple[int, int, str]] = []
    report = rotate_artifacts(data_dir, cipher, other_cipher, progress=lambda *args: seen.append(args))
    total = len(inner_before)
    assert (report.rotated, report.already_done, report.total, report.resumed) == (total, 0, total, False)
    assert report.new_key_id == other_cipher.key_id.hex()
    assert [(done, of) for done, of, _ in seen] == [(index, total) for index in range(1, total + 1)]
    assert [relpath for *_, relpath in seen] == sorted(inner_before)
    _assert_fully_rotated(data_dir, cipher, other_cipher, populated, root_key, intermediate_key)
    # the inner layers are byte-for-byte untouched
    new_store = ArtifactStore(data_dir, other_cipher)
    assert {relpath: new_store.read(relpath) for relpath in _relpaths(new_store)} == inner_before
    assert_no_secret(report)


def test_files_stay_0600_after_rotation(
    store: ArtifactStore, cipher: ArtifactCipher, other_cipher: ArtifactCipher, populated: dict[str, bytes]
) -> None:
    rotate_artifacts(store.data_dir, cipher, other_cipher)
    for relpath in _relpaths(store):
        assert (store.data_dir / relpath).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("crash_point", ["zero", "one", "three", "all-but-one"])
def test_crash_and_resume(
    store: ArtifactStore,
    cipher: ArtifactCipher,
    other_cipher: ArtifactCipher,
    populated: dict[str, bytes],
    root_key: object,
    intermediate_key: object,
    crash_point: str,
) -> None:
    data_dir = store.data_dir
    total = len(_relpaths(store))
    k = {"zero": 0, "one": 1, "three": 3, "all-but-one": total - 1}[crash_point]
    with pytest.raises(RotationInterrupted):
        rotate_artifacts(data_dir, cipher, other_cipher, fail_after=k)
    journal = read_rotation_journal(data_dir)
    assert journal is not None
    assert (journal.old_key_id, journal.new_key_id) == (cipher.key_id.hex(), other_cipher.key_id.hex())
    assert journal.total == total
    key_ids = [store.header(relpath).key_id for relpath in _relpaths(store)]
    assert key_ids.count(other_cipher.key_id) == k
    assert key_ids.count(cipher.key_id) == total - k

    report = rotate_artifacts(data_dir, cipher, other_cipher)
    assert (report.rotated, report.already_done, report.resumed) == (total - k, k, True)
    _assert_fully_rotated(data_dir, cipher, other_cipher, populated, root_key, intermediate_key)


def test_repeated_crashes_then_resume(
    store: ArtifactStore,
    cipher: ArtifactCipher,
    other_cipher: ArtifactCipher,
    populated: dict[str, bytes],
    root_key: object,
    intermediate_key: object,
) -> None:
    data_dir = store.data_dir
    total = len(_relpaths(store))
    for _ in range(3):
        with pytest.raises(RotationInterrupted):
            rotate_artifacts(data_dir, cipher, other_cipher, fail_after=2)
    report = rotate_artifacts(data_dir, cipher, other_cipher)
    assert (report.rotated, report.already_done) == (total - 6, 6)
    _assert_fully_rotated(data_dir, cipher, other_cipher, populated, root_key, intermediate_key)


def test_crash_leaving_a_temp_file_and_no_journal_removal(
    store: ArtifactStore,
    cipher: ArtifactCipher,
    other_cipher: ArtifactCipher,
    populated: dict[str, bytes],
    root_key: object,
    intermediate_key: object,
) -> None:
    """Killed mid-write (a temp file is left) or after the last file but before removing the journal."""
    data_dir = store.data_dir
    total = len(_relpaths(store))
    rotate_artifacts(data_dir, cipher, other_cipher)
    # simulate a kill after the last file but before the journal was removed, and during a write
    (data_dir / JOURNAL_FILENAME).write_text(
        json.dumps(
            {
                "format": "pki-vault-rotation/1",
                "old_key_id": cipher.key_id.hex(),
                "new_key_id": other_cipher.key_id.hex(),
                "started_at": "2026-01-01T00:00:00+00:00",
                "updated_at": "2026-01-01T00:00:00+00:00",
                "total": total,
                "rotated": total,
                "already_done": 0,
            }
        )
    )
    (data_dir / f"cas/int/{TEMP_PREFIX}0123456789abcdef").write_bytes(b"half-written")
    report = rotate_artifacts(data_dir, cipher, other_cipher)
    assert (report.rotated, report.already_done, report.resumed) == (0, total, True)
    _assert_fully_rotated(data_dir, cipher, other_cipher, populated, root_key, intermediate_key)


def test_a_different_rotation_is_refused_while_one_is_in_progress(
    store: ArtifactStore,
    cipher: ArtifactCipher,
    other_cipher: ArtifactCipher,
    third_cipher: ArtifactCipher,
    populated: dict[str, bytes],
    root_key: object,
    intermediate_key: object,
) -> None:
    data_dir = store.data_dir
    with pytest.raises(RotationInterrupted):
        rotate_artifacts(data_dir, cipher, other_cipher, fail_after=2)
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    with pytest.raises(RotationInProgress, match=other_cipher.key_id.hex()) as exc:
        rotate_artifacts(data_dir, cipher, third_cipher)
    assert_no_secret(exc.value)
    with pytest.raises(RotationInProgress):
        rotate_artifacts(data_dir, third_cipher, other_cipher)  # right target, wrong origin
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before
    rotate_artifacts(data_dir, cipher, other_cipher)
    _assert_fully_rotated(data_dir, cipher, other_cipher, populated, root_key, intermediate_key)
    # once finished, the next rotation may start
    report = rotate_artifacts(data_dir, other_cipher, third_cipher)
    assert report.rotated == len(before) - 1  # minus the journal


def test_a_file_under_neither_key_stops_with_its_path(
    store: ArtifactStore,
    data_dir: Path,
    cipher: ArtifactCipher,
    other_cipher: ArtifactCipher,
    third_cipher: ArtifactCipher,
    populated: dict[str, bytes],
) -> None:
    ArtifactStore(data_dir, third_cipher).write("certs/03/bundle.p12.enc", b"foreign")
    with pytest.raises(RotationError, match=re.escape("certs/03/bundle.p12.enc")) as exc:
        rotate_artifacts(data_dir, cipher, other_cipher)
    assert "neither" in str(exc.value)
    assert read_rotation_journal(data_dir) is not None
    assert_no_secret(exc.value)
    # the operator restores the file from a backup under the old key, re-runs, done
    store.write("certs/03/bundle.p12.enc", populated["certs/03/bundle.p12.enc"])
    rotate_artifacts(data_dir, cipher, other_cipher)
    assert ArtifactStore(data_dir, other_cipher).read("certs/03/bundle.p12.enc") == b"pkcs12 #3"


def test_a_corrupt_file_stops_with_its_path(
    store: ArtifactStore, data_dir: Path, cipher: ArtifactCipher, other_cipher: ArtifactCipher
) -> None:
    store.write("a/key.pem.enc", b"x")
    (data_dir / "b").mkdir(mode=0o700)
    (data_dir / "b/key.pem.enc").write_bytes(b"garbage, not an artifact")
    with pytest.raises(RotationError, match=re.escape("b/key.pem.enc")):
        rotate_artifacts(data_dir, cipher, other_cipher)
    assert ArtifactStore(data_dir, other_cipher).read("a/key.pem.enc") == b"x"


def test_same_key_and_missing_dir_are_refused(tmp_path: Path, cipher: ArtifactCipher) -> None:
    with pytest.raises(RotationError, match="same"):
        rotate_artifacts(tmp_path, cipher, cipher)
    with pytest.raises(RotationError, match="does not exist"):
        rotate_artifacts(tmp_path / "absent", cipher, cipher)


def test_empty_data_dir(tmp_path: Path, cipher: ArtifactCipher, other_cipher: ArtifactCipher) -> None:
    report = rotate_artifacts(tmp_path, cipher, other_cipher)
    assert (report.rotated, report.already_done) == (0, 0)
    assert not (tmp_path / JOURNAL_FILENAME).exists()


def test_unreadable_journal_is_an_error(tmp_path: Path, cipher: ArtifactCipher, other_cipher: ArtifactCipher) -> None:
    (tmp_path / JOURNAL_FILENAME).write_text("{not json")
    with pytest.raises(RotationError, match="unreadable"):
        rotate_artifacts(tmp_path, cipher, other_cipher)
    assert issubclass(RotationError, VaultError)
