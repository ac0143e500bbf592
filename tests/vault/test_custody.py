"""Key custody: the root CA's two-part key, intermediate keys, other secrets."""

from __future__ import annotations

import hmac
import json
import logging
import pickle
import unicodedata
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.custody import (
    MIN_ROOT_PASSWORD_LENGTH,
    RootKeyParams,
    ScryptParams,
    check_root_password,
    delete_ca_key,
    load_intermediate_key,
    load_secret,
    seal_intermediate_key,
    seal_root_key,
    store_secret,
    unlock_root_key,
    unlocked_root_key,
)
from certificates.vault.errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTampered,
    InvalidKdfParameters,
    UnlockFailed,
    VaultError,
    WeakPassword,
    WrongEncryptionKey,
)
from certificates.vault.storage import ArtifactStore

from .helpers import ROOT_PASSWORD, WRONG_PASSWORD, assert_no_secret

CHEAP = ScryptParams(n=2**12, r=8, p=1)
CA_DIR = "cas/7d3f0c2e-root"
GENERIC = "The CA key could not be unlocked."


@pytest.fixture(scope="module")
def keys() -> dict[str, object]:
    return {
        "ec-p256": ec.generate_private_key(ec.SECP256R1()),
        "rsa-2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }


def _der(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _assert_same_key(a: object, b: object) -> None:
    assert _public(a) == _public(b)
    assert _der(a) == _der(b)


def _assert_generic_unlock_failure(exc: UnlockFailed) -> None:
    assert str(exc) == GENERIC
    assert exc.args == (GENERIC,)
    assert exc.__cause__ is None
    assert exc.__context__ is None
    assert_no_secret(exc)


@pytest.fixture
def sealed_root(store: ArtifactStore, keys: dict[str, object]) -> RootKeyParams:
    return seal_root_key(store, CA_DIR, keys["ec-p256"], ROOT_PASSWORD, CHEAP)


# --------------------------------------------------------------------------- root: round trip


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_root_round_trip(store: ArtifactStore, keys: dict[str, object], kind: str) -> None:
    params = seal_root_key(store, f"cas/{kind}", keys[kind], ROOT_PASSWORD, CHEAP)
    assert params.scrypt == CHEAP
    assert sorted(store.iter_artifacts()) == [f"cas/{kind}/.pwd.enc", f"cas/{kind}/key.pem.enc"]
    _assert_same_key(unlock_root_key(store, f"cas/{kind}", ROOT_PASSWORD), keys[kind])


def test_root_context_manager(store: ArtifactStore, keys: dict[str, object], sealed_root: RootKeyParams) -> None:
    with unlocked_root_key(store, CA_DIR, ROOT_PASSWORD) as key:
        _assert_same_key(key, keys["ec-p256"])
    with pytest.raises(UnlockFailed) as exc, unlocked_root_key(store, CA_DIR, WRONG_PASSWORD):
        pytest.fail("must not enter the block")
    _assert_generic_unlock_failure(exc.value)


def test_default_scrypt_parameters_are_owasp(store: ArtifactStore, keys: dict[str, object]) -> None:
    defaults = ScryptParams()
    assert (defaults.n, defaults.r, defaults.p) == (2**17, 8, 1)
    assert defaults.memory_bytes == 128 * 2**20
    params = seal_root_key(store, "cas/defaults", keys["ed25519"], ROOT_PASSWORD)
    assert params.scrypt == defaults
    _assert_same_key(unlock_root_key(store, "cas/defaults", ROOT_PASSWORD), keys["ed25519"])


# --------------------------------------------------------------------------- root: two parts


def test_disk_and_master_key_without_operator_password_are_not_enough(
    store: ArtifactStore, keys: dict[str, object], sealed_root: RootKeyParams
) -> None:
    """An attacker holding the data dir and PKI_ENCRYPTION_KEY peels the outer layer only."""
    secret_der = _der(keys["ec-p256"])
    system_password = store.read(f"{CA_DIR}/.pwd.enc")
    inner = store.read(f"{CA_DIR}/key.pem.enc")
    assert len(system_password) == 32
    for blob in (system_password, inner, *(p.read_bytes() for p in store.data_dir.rglob("*") if p.is_file())):
        assert secret_der not in blob
    # the intermediate path (system password only) does not open a root key
    with pytest.raises(ArtifactCorrupt):
        load_intermediate_key(store, CA_DIR)
    # nor does the system password used directly, or with an empty operator password
    header_size = 6 + 1 + 4 + 4 + 16 + 12
    nonce, ciphertext = inner[header_size - 12 : header_size], inner[header_size:]
    aad = inner[:header_size] + b"pki-vault/v1/ca-key/root" + f"{CA_DIR}/key.pem.enc".encode()
    empty_stretch = Scrypt(salt=sealed_root.salt, length=32, n=CHEAP.n, r=CHEAP.r, p=CHEAP.p).derive(b"")
    for kek in (system_password, hmac.digest(system_password, empty_stretch, "sha256")):
        with pytest.raises(InvalidTag):
            AESGCM(kek).decrypt(nonce, ciphertext, aad)
    # ... while the right password does: the format is what the module docstring says
    stretched = Scrypt(salt=sealed_root.salt, length=32, n=CHEAP.n, r=CHEAP.r, p=CHEAP.p).derive(ROOT_PASSWORD.encode())
    assert AESGCM(hmac.digest(system_password, stretched, "sha256")).decrypt(nonce, ciphertext, aad) == secret_der


def test_operator_password_without_system_password_is_not_enough(
    store: ArtifactStore, sealed_root: RootKeyParams
) -> None:
    store.delete(f"{CA_DIR}/.pwd.enc")
    with pytest.raises(UnlockFailed) as exc:
        unlock_root_key(store, CA_DIR, ROOT_PASSWORD)
    _assert_generic_unlock_failure(exc.value)
    # a forged system password (written with the right master key) does not help either
    store.write(f"{CA_DIR}/.pwd.enc", b"\x00" * 32)
    with pytest.raises(UnlockFailed) as exc:
        unlock_root_key(store, CA_DIR, ROOT_PASSWORD)
    _assert_generic_unlock_failure(exc.value)


def test_wrong_password_gives_exactly_the_generic_message(store: ArtifactStore, sealed_root: RootKeyParams) -> None:
    with pytest.raises(UnlockFailed) as exc:
        unlock_root_key(store, CA_DIR, WRONG_PASSWORD)
    _assert_generic_unlock_failure(exc.value)
    assert repr(exc.value) == f"UnlockFailed({GENERIC!r})"


def test_every_unlock_failure_looks_the_same(
    store: ArtifactStore,
    data_dir: Path,
    other_cipher: ArtifactCipher,
    keys: dict[str, object],
    sealed_root: RootKeyParams,
) -> None:
    seal_intermediate_key(store, "cas/intermediate", keys["ec-p256"])
    key_file = f"{CA_DIR}/key.pem.enc"
    failures = {
        "wrong password": lambda: unlock_root_key(store, CA_DIR, WRONG_PASSWORD),
        "too short": lambda: unlock_root_key(store, CA_DIR, "short"),
        "not text": lambda: unlock_root_key(store, CA_DIR, None),  # type: ignore[arg-type]
        "missing dir": lambda: unlock_root_key(store, "cas/absent", ROOT_PASSWORD),
        "unsafe dir": lambda: unlock_root_key(store, "../etc", ROOT_PASSWORD),
        "other master key": lambda: unlock_root_key(ArtifactStore(data_dir, other_cipher), CA_DIR, ROOT_PASSWORD),
        "intermediate": lambda: unlock_root_key(store, "cas/intermediate", ROOT_PASSWORD),
    }
    messages = set()
    for name, attempt in failures.items():
        with pytest.raises(UnlockFailed) as exc:
            attempt()
        _assert_generic_unlock_failure(exc.value)
        messages.add((name, str(exc.value)))
    assert {message for _, message in messages} == {GENERIC}
    # tamper with the inner envelope (re-sealed correctly by the outer layer)
    inner = bytearray(store.read(key_file))
    inner[-1] ^= 0x01
    store.write(key_file, bytes(inner))
    with pytest.raises(UnlockFailed) as exc:
        unlock_root_key(store, CA_DIR, ROOT_PASSWORD)
    _assert_generic_unlock_failure(exc.value)
    # tamper with the outer layer
    raw = bytearray((data_dir / key_file).read_bytes())
    raw[-1] ^= 0x01
    (data_dir / key_file).write_bytes(bytes(raw))
    with pytest.raises(UnlockFailed) as exc:
        unlock_root_key(store, CA_DIR, ROOT_PASSWORD)
    _assert_generic_unlock_failure(exc.value)


def test_tampered_scrypt_parameters_fail(store: ArtifactStore, sealed_root: RootKeyParams) -> None:
    key_file = f"{CA_DIR}/key.pem.enc"
    original = store.read(key_file)
    for offset, value in ((6, 13), (6, 40), (6, 9), (10, 9), (20, original[20] ^ 1)):  # log2 n, r, salt
        inner = bytearray(original)
        inner[offset] = value
        store.write(key_file, bytes(inner))
        with pytest.raises(UnlockFailed):
            unlock_root_key(store, CA_DIR, ROOT_PASSWORD)
    store.write(key_file, original)
    assert unlock_root_key(store, CA_DIR, ROOT_PASSWORD) is not None


def test_key_files_swapped_between_cas_fail(store: ArtifactStore, keys: dict[str, object]) -> None:
    """Even re-sealed correctly by the outer layer, an inner envelope is bound to its own path."""
    seal_root_key(store, "cas/a", keys["ec-p256"], ROOT_PASSWORD, CHEAP)
    seal_root_key(store, "cas/b", keys["ed25519"], ROOT_PASSWORD, CHEAP)
    store.write("cas/b/key.pem.enc", store.read("cas/a/key.pem.enc"))
    store.write("cas/b/.pwd.enc", store.read("cas/a/.pwd.enc"))
    with pytest.raises(UnlockFailed):
        unlock_root_key(store, "cas/b", ROOT_PASSWORD)
    _assert_same_key(unlock_root_key(store, "cas/a", ROOT_PASSWORD), keys["ec-p256"])


def test_seal_refuses_to_overwrite(store: ArtifactStore, keys: dict[str, object], sealed_root: RootKeyParams) -> None:
    before = {p: p.read_bytes() for p in store.data_dir.rglob("*.enc")}
    with pytest.raises(ArtifactExists) as exc:
        seal_root_key(store, CA_DIR, keys["ed25519"], ROOT_PASSWORD, CHEAP)
    assert_no_secret(exc.value)
    with pytest.raises(ArtifactExists):
        seal_intermediate_key(store, CA_DIR, keys["ed25519"])
    assert {p: p.read_bytes() for p in store.data_dir.rglob("*.enc")} == before
    _assert_same_key(unlock_root_key(store, CA_DIR, ROOT_PASSWORD), keys["ec-p256"])


def test_seal_refuses_a_leftover_password_file(store: ArtifactStore, keys: dict[str, object]) -> None:
    store.write("cas/left/.pwd.enc", b"leftover")
    with pytest.raises(ArtifactExists):
        seal_root_key(store, "cas/left", keys["ec-p256"], ROOT_PASSWORD, CHEAP)
    assert list(store.iter_artifacts()) == ["cas/left/.pwd.enc"]
    assert store.read("cas/left/.pwd.enc") == b"leftover"


# --------------------------------------------------------------------------- root: password rule and params


@pytest.mark.parametrize("password", ["", "short", "x" * (MIN_ROOT_PASSWORD_LENGTH - 1), "\u00e9" * 11])
def test_weak_password_is_refused_without_echo(store: ArtifactStore, keys: dict[str, object], password: str) -> None:
    with pytest.raises(WeakPassword, match="at least 12 characters") as exc:
        seal_root_key(store, "cas/weak", keys["ec-p256"], password, CHEAP)
    if password:
        assert password not in str(exc.value)
        assert password not in repr(exc.value)
    assert not store.data_dir.exists()


def test_password_is_nfkc_normalised(store: ArtifactStore, keys: dict[str, object]) -> None:
    composed = "Caf\u00e9 au lait, sans sucre"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    seal_root_key(store, "cas/nfkc", keys["ec-p256"], composed, CHEAP)
    _assert_same_key(unlock_root_key(store, "cas/nfkc", decomposed), keys["ec-p256"])
    assert check_root_password(decomposed) == composed.encode()


def test_root_key_params_are_json_round_trippable(sealed_root: RootKeyParams, store: ArtifactStore) -> None:
    data = json.loads(json.dumps(sealed_root.to_dict()))
    assert data == {"kdf": "scrypt", "n": 4096, "r": 8, "p": 1, "salt": sealed_root.salt.hex(), "envelope_version": 1}
    assert RootKeyParams.from_dict(data) == sealed_root
    # the same public parameters are embedded in the envelope header
    inner = store.read(f"{CA_DIR}/key.pem.enc")
    assert inner[:6] == b"PKIK\x01\x01"
    assert inner[6] == 12  # log2(n)
    assert inner[7:11] == (8).to_bytes(4, "big")
    assert inner[11:15] == (1).to_bytes(4, "big")
    assert inner[15:31] == sealed_root.salt


def test_each_root_gets_its_own_salt(store: ArtifactStore, keys: dict[str, object]) -> None:
    a = seal_root_key(store, "cas/s1", keys["ed25519"], ROOT_PASSWORD, CHEAP)
    b = seal_root_key(store, "cas/s2", keys["ed25519"], ROOT_PASSWORD, CHEAP)
    assert a.salt != b.salt
    assert store.read("cas/s1/.pwd.enc") != store.read("cas/s2/.pwd.enc")


@pytest.mark.parametrize(
    "kwargs", [{"n": 2**9}, {"n": 3000}, {"n": 2**21}, {"r": 0}, {"p": 0}, {"p": 17}, {"n": 2**20, "r": 16}]
)
def test_scrypt_params_bounds(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidKdfParameters):
        ScryptParams(**kwargs)


def test_malformed_root_key_params() -> None:
    with pytest.raises(InvalidKdfParameters):
        RootKeyParams.from_dict({"kdf": "argon2id"})
    with pytest.raises(InvalidKdfParameters):
        RootKeyParams.from_dict({"kdf": "scrypt", "n": 4096, "r": 8, "p": 1, "salt": "zz"})


# --------------------------------------------------------------------------- intermediate


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_intermediate_round_trip(store: ArtifactStore, keys: dict[str, object], kind: str) -> None:
    assert seal_intermediate_key(store, f"cas/int-{kind}", keys[kind]) is None
    _assert_same_key(load_intermediate_key(store, f"cas/int-{kind}"), keys[kind])
    assert _der(keys[kind]) not in (store.data_dir / f"cas/int-{kind}/key.pem.enc").read_bytes()


def test_intermediate_errors_are_specific(
    store: ArtifactStore, data_dir: Path, other_cipher: ArtifactCipher, keys: dict[str, object]
) -> None:
    with pytest.raises(ArtifactNotFound):
        load_intermediate_key(store, "cas/none")
    seal_intermediate_key(store, "cas/int", keys["ec-p256"])
    with pytest.raises(WrongEncryptionKey):
        load_intermediate_key(ArtifactStore(data_dir, other_cipher), "cas/int")
    store.write("cas/int/.pwd.enc", b"\x01" * 32)  # another system password
    with pytest.raises(ArtifactTampered, match="CA key envelope") as exc:
        load_intermediate_key(store, "cas/int")
    assert_no_secret(exc.value)
    store.write("cas/int/key.pem.enc", b"not an envelope at all")
    with pytest.raises(ArtifactCorrupt):
        load_intermediate_key(store, "cas/int")


def test_inner_envelope_does_not_depend_on_the_master_key(
    store: ArtifactStore, tmp_path: Path, other_cipher: ArtifactCipher, keys: dict[str, object]
) -> None:
    """What rotation relies on: re-sealing only the outer layer keeps both kinds of key usable."""
    seal_intermediate_key(store, "cas/int", keys["rsa-2048"])
    seal_root_key(store, "cas/root", keys["ed25519"], ROOT_PASSWORD, CHEAP)
    moved = ArtifactStore(tmp_path / "elsewhere", other_cipher)
    for relpath in store.iter_artifacts():
        moved.write(relpath, store.read(relpath))
    _assert_same_key(load_intermediate_key(moved, "cas/int"), keys["rsa-2048"])
    _assert_same_key(unlock_root_key(moved, "cas/root", ROOT_PASSWORD), keys["ed25519"])


def test_only_signing_keys_are_sealed(store: ArtifactStore) -> None:
    from cryptography.hazmat.primitives.asymmetric import x25519

    with pytest.raises(TypeError):
        seal_intermediate_key(store, "cas/x", x25519.X25519PrivateKey.generate())  # type: ignore[arg-type]
    assert not store.exists("cas/x/.pwd.enc")


def test_delete_ca_key_allows_a_fresh_seal(store: ArtifactStore, keys: dict[str, object]) -> None:
    seal_intermediate_key(store, "cas/rolled-back", keys["ec-p256"])
    delete_ca_key(store, "cas/rolled-back")
    delete_ca_key(store, "cas/rolled-back")  # idempotent
    assert list(store.iter_artifacts()) == []
    seal_intermediate_key(store, "cas/rolled-back", keys["ed25519"])
    _assert_same_key(load_intermediate_key(store, "cas/rolled-back"), keys["ed25519"])


# --------------------------------------------------------------------------- other secrets


def test_store_and_load_secret(store: ArtifactStore) -> None:
    relpath = store_secret(store, "certs/42/bundle-password.pem.enc", b"p12 password")
    assert relpath == "certs/42/bundle-password.pem.enc"
    assert load_secret(store, relpath) == b"p12 password"
    assert b"p12 password" not in (store.data_dir / relpath).read_bytes()
    with pytest.raises(ArtifactExists):
        store_secret(store, relpath, b"other")
    store_secret(store, relpath, b"other", overwrite=True)
    assert load_secret(store, relpath) == b"other"


# --------------------------------------------------------------------------- no secret anywhere


def test_no_password_in_logs_messages_or_reprs(
    store: ArtifactStore, keys: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    raised: list[BaseException] = []
    params = seal_root_key(store, "cas/logged", keys["ec-p256"], ROOT_PASSWORD, CHEAP)
    seal_intermediate_key(store, "cas/logged-int", keys["ec-p256"])
    unlock_root_key(store, "cas/logged", ROOT_PASSWORD)
    load_intermediate_key(store, "cas/logged-int")
    attempts = [
        lambda: unlock_root_key(store, "cas/logged", WRONG_PASSWORD),
        lambda: seal_root_key(store, "cas/logged", keys["ec-p256"], ROOT_PASSWORD, CHEAP),
        lambda: seal_root_key(store, "cas/weak", keys["ec-p256"], ROOT_PASSWORD[:11], CHEAP),
        lambda: load_intermediate_key(store, "cas/logged"),
    ]
    for attempt in attempts:
        with pytest.raises(VaultError) as exc:
            attempt()
        raised.append(exc.value)
    system_passwords = [store.read("cas/logged/.pwd.enc"), store.read("cas/logged-int/.pwd.enc")]
    extra = [*system_passwords, ROOT_PASSWORD[:11], _der(keys["ec-p256"])]
    assert_no_secret(*raised, params, store, store.cipher, extra=extra)
    for secret in (ROOT_PASSWORD, WRONG_PASSWORD, ROOT_PASSWORD[:11]):
        assert secret not in caplog.text
    assert ROOT_PASSWORD.encode().hex() not in caplog.text
    with pytest.raises(TypeError):
        pickle.dumps(store.cipher)
