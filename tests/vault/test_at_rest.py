"""Outer layer: master key derivation and the path-bound AES-256-GCM artifact format."""

from __future__ import annotations

import pickle
import threading

import pytest

from certificates.vault.at_rest import (
    HEADER_SIZE,
    MAGIC,
    PBKDF2_ITERATIONS,
    ArtifactCipher,
    clear_master_key_cache,
    compute_key_id,
    derive_master_key,
    master_key_cache_info,
    parse_header,
)
from certificates.vault.errors import (
    ArtifactCorrupt,
    ArtifactTampered,
    InvalidArtifactPath,
    InvalidEncryptionSettings,
    VaultError,
    WrongEncryptionKey,
)

from .helpers import PASSPHRASE, SALT, assert_no_secret

RELPATHS = ["cas/1234/key.pem.enc", "certs/abcd/bundle.p12.enc", "cas/1234/.pwd.enc"]


def test_pbkdf2_parameters_are_the_documented_ones(master_key: bytes) -> None:
    assert PBKDF2_ITERATIONS == 600_000
    assert len(master_key) == 32


def test_derivation_runs_once_per_passphrase_and_salt() -> None:
    passphrase = "a passphrase used only by the memoisation test!"
    salt = "memo-salt-0123456789"
    clear_master_key_cache()
    before = master_key_cache_info()
    first = derive_master_key(passphrase, salt)
    for _ in range(5):
        assert derive_master_key(passphrase, salt) == first
    ArtifactCipher.from_settings_values(passphrase, salt)
    after = master_key_cache_info()
    assert after.derivations - before.derivations == 1
    assert after.hits - before.hits == 6
    assert after.entries == 1
    # a different salt is a different key, derived once more
    other = derive_master_key(passphrase, salt + "x")
    assert other != first
    assert master_key_cache_info().derivations - before.derivations == 2
    clear_master_key_cache()
    assert master_key_cache_info().entries == 0
    derive_master_key(passphrase, salt)
    assert master_key_cache_info().derivations - before.derivations == 3
    assert_no_secret(master_key_cache_info(), extra=[passphrase, first])


def test_str_and_bytes_salt_are_the_same(master_key: bytes) -> None:
    assert derive_master_key(PASSPHRASE, SALT.encode()) == master_key


@pytest.mark.parametrize(
    ("passphrase", "salt"),
    [("short", SALT), ("x" * 31, SALT), (PASSPHRASE, "short-salt"), (PASSPHRASE, b"\x00" * 15)],
)
def test_weak_settings_are_refused(passphrase: str, salt: str | bytes) -> None:
    with pytest.raises(InvalidEncryptionSettings) as exc:
        derive_master_key(passphrase, salt)
    assert_no_secret(exc.value, extra=[passphrase])


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(InvalidEncryptionSettings):
        ArtifactCipher(b"\x01" * 16)


@pytest.mark.parametrize("relpath", RELPATHS)
def test_round_trip(cipher: ArtifactCipher, relpath: str) -> None:
    plaintext = b"-----BEGIN PRIVATE KEY-----\n" + bytes(range(256))
    blob = cipher.encrypt(plaintext, relpath)
    assert blob.startswith(MAGIC)
    assert plaintext not in blob
    assert cipher.decrypt(blob, relpath) == plaintext


def test_empty_plaintext_round_trips(cipher: ArtifactCipher) -> None:
    assert cipher.decrypt(cipher.encrypt(b"", "a/.pwd.enc"), "a/.pwd.enc") == b""


def test_header_layout(cipher: ArtifactCipher, master_key: bytes) -> None:
    blob = cipher.encrypt(b"secret", "a/key.pem.enc")
    assert blob[:4] == b"PKIV"
    assert blob[4] == 1
    assert blob[5:13] == cipher.key_id == compute_key_id(master_key)
    assert len(blob) == HEADER_SIZE + len(b"secret") + 16
    header = parse_header(blob)
    assert header.key_id == cipher.key_id
    assert header.nonce == blob[13:25]


def test_nonce_is_fresh_per_write(cipher: ArtifactCipher) -> None:
    blobs = {cipher.encrypt(b"same", "a/key.pem.enc") for _ in range(20)}
    assert len(blobs) == 20
    assert len({parse_header(blob).nonce for blob in blobs}) == 20


def test_equivalent_spellings_of_a_path_are_the_same_path(cipher: ArtifactCipher) -> None:
    blob = cipher.encrypt(b"x", "./cas//1/key.pem.enc")
    assert cipher.decrypt(blob, "cas/1/key.pem.enc") == b"x"


@pytest.mark.parametrize(
    "other_path",
    ["cas/9999/key.pem.enc", "cas/1234/key2.pem.enc", "cas/1234/.pwd.enc", "1234/key.pem.enc"],
)
def test_copied_to_another_path_fails(cipher: ArtifactCipher, other_path: str) -> None:
    blob = cipher.encrypt(b"key", "cas/1234/key.pem.enc")
    with pytest.raises(ArtifactTampered) as exc:
        cipher.decrypt(blob, other_path)
    assert_no_secret(exc.value)


def test_every_flipped_bit_fails(cipher: ArtifactCipher) -> None:
    blob = cipher.encrypt(b"some private key bytes", "a/key.pem.enc")
    for index in range(len(blob)):
        for bit in (0, 7):
            damaged = bytearray(blob)
            damaged[index] ^= 1 << bit
            with pytest.raises(VaultError) as exc:
                cipher.decrypt(bytes(damaged), "a/key.pem.enc")
            # a flipped key-id bit is reported as another key, magic/version as corrupt
            if index < 5:
                assert isinstance(exc.value, ArtifactCorrupt)
            elif index < 13:
                assert isinstance(exc.value, WrongEncryptionKey)
            else:
                assert isinstance(exc.value, ArtifactTampered)


@pytest.mark.parametrize(
    "blob",
    [b"", b"PKIV", b"PKIV\x01" + b"\x00" * 35, b"garbage" * 10, b"-----BEGIN PRIVATE KEY-----" * 3],
)
def test_truncated_or_garbage_is_corrupt(cipher: ArtifactCipher, blob: bytes) -> None:
    with pytest.raises(ArtifactCorrupt) as exc:
        cipher.decrypt(blob, "a/key.pem.enc")
    assert_no_secret(exc.value)


def test_truncated_real_blob_is_corrupt_or_tampered(cipher: ArtifactCipher) -> None:
    blob = cipher.encrypt(b"0123456789", "a/key.pem.enc")
    for size in range(len(blob)):
        with pytest.raises((ArtifactCorrupt, ArtifactTampered)):
            cipher.decrypt(blob[:size], "a/key.pem.enc")
    with pytest.raises(ArtifactCorrupt):
        cipher.decrypt(blob[: HEADER_SIZE + 15], "a/key.pem.enc")


def test_unknown_version_is_corrupt(cipher: ArtifactCipher) -> None:
    blob = bytearray(cipher.encrypt(b"x", "a/key.pem.enc"))
    blob[4] = 2
    with pytest.raises(ArtifactCorrupt, match="version 2"):
        cipher.decrypt(bytes(blob), "a/key.pem.enc")


def test_other_master_key_is_reported_as_wrong_key(cipher: ArtifactCipher, other_cipher: ArtifactCipher) -> None:
    blob = cipher.encrypt(b"x", "a/key.pem.enc")
    with pytest.raises(WrongEncryptionKey) as exc:
        other_cipher.decrypt(blob, "a/key.pem.enc")
    message = str(exc.value)
    assert "PKI_ENCRYPTION_KEY" in message
    assert cipher.key_id.hex() in message
    assert exc.value.found_key_id == cipher.key_id
    assert exc.value.expected_key_id == other_cipher.key_id
    assert_no_secret(exc.value)


def test_key_ids_differ_and_are_stable(master_key: bytes, cipher: ArtifactCipher, other_cipher: ArtifactCipher) -> None:
    assert cipher.key_id != other_cipher.key_id
    assert ArtifactCipher(master_key).key_id == cipher.key_id
    assert len(cipher.key_id) == 8


def test_cipher_repr_shows_only_the_key_id(cipher: ArtifactCipher) -> None:
    assert repr(cipher) == f"ArtifactCipher(key_id={cipher.key_id.hex()!r})"
    assert_no_secret(cipher)


def test_cipher_cannot_be_pickled(cipher: ArtifactCipher) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(cipher)


@pytest.mark.parametrize(
    "relpath", ["", "/abs/key.pem.enc", "../x/key.pem.enc", "a/../../key.pem.enc", "a\\key.pem.enc", "a\x00b", "C:/x"]
)
def test_cipher_refuses_unsafe_paths(cipher: ArtifactCipher, relpath: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        cipher.encrypt(b"x", relpath)


def test_concurrent_first_calls_derive_once() -> None:
    passphrase, salt = "a passphrase used only by the threading test!!", "thread-salt-0123456789"
    before = master_key_cache_info().derivations
    barrier = threading.Barrier(8)
    results: list[bytes] = []

    def worker() -> None:
        barrier.wait()
        results.append(derive_master_key(passphrase, salt))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1
    assert len(results) == 8
    assert master_key_cache_info().derivations - before == 1
