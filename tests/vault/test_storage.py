"""Artifact files: atomic writes, permissions, path validation, enumeration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from certificates.vault.at_rest import ArtifactCipher
from certificates.vault.errors import (
    ArtifactCorrupt,
    ArtifactExists,
    ArtifactNotFound,
    ArtifactTampered,
    InvalidArtifactPath,
    WrongEncryptionKey,
)
from certificates.vault.paths import TEMP_PREFIX, normalize_relpath, validate_artifact_relpath
from certificates.vault.storage import ArtifactStore

from .helpers import assert_no_secret

KINDS = ["cas/0f1e/key.pem.enc", "certs/77/cert.p12.enc", "cas/0f1e/.pwd.enc", "top.pem.enc"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("relpath", KINDS)
def test_round_trip_per_artifact_kind(store: ArtifactStore, relpath: str) -> None:
    assert store.write(relpath, b"payload for " + relpath.encode()) == relpath
    assert store.exists(relpath)
    assert store.read(relpath) == b"payload for " + relpath.encode()
    on_disk = (store.data_dir / relpath).read_bytes()
    assert b"payload" not in on_disk
    assert store.read_blob(relpath) == on_disk


def test_files_are_0600_and_directories_0700_whatever_the_umask(store: ArtifactStore) -> None:
    old_umask = os.umask(0o022)
    try:
        store.write("cas/a/b/key.pem.enc", b"k")
    finally:
        os.umask(old_umask)
    data_dir = store.data_dir
    assert _mode(data_dir / "cas/a/b/key.pem.enc") == 0o600
    for directory in (data_dir, data_dir / "cas", data_dir / "cas/a", data_dir / "cas/a/b"):
        assert _mode(directory) == 0o700


def test_overwrite_keeps_0600_and_replaces_content(store: ArtifactStore) -> None:
    store.write("a/key.pem.enc", b"old")
    store.write("a/key.pem.enc", b"new")
    assert store.read("a/key.pem.enc") == b"new"
    assert _mode(store.data_dir / "a/key.pem.enc") == 0o600
    assert list((store.data_dir / "a").iterdir()) == [store.data_dir / "a/key.pem.enc"]


def test_exclusive_write_refuses_to_overwrite(store: ArtifactStore) -> None:
    store.write("a/.pwd.enc", b"first", overwrite=False)
    with pytest.raises(ArtifactExists) as exc:
        store.write("a/.pwd.enc", b"second", overwrite=False)
    assert store.read("a/.pwd.enc") == b"first"
    assert [p.name for p in (store.data_dir / "a").iterdir()] == [".pwd.enc"]  # no temp left behind
    assert_no_secret(exc.value)


def test_crash_between_temp_write_and_replace_keeps_old_content(store: ArtifactStore) -> None:
    store.write("cas/x/key.pem.enc", b"old content")
    # What a writer killed after fsync(temp) but before os.replace leaves behind:
    directory = store.data_dir / "cas/x"
    leftover = directory / f"{TEMP_PREFIX}deadbeefdeadbeef"
    leftover.write_bytes(store.cipher.encrypt(b"new content", "cas/x/key.pem.enc"))
    assert store.read("cas/x/key.pem.enc") == b"old content"
    assert list(store.iter_artifacts()) == ["cas/x/key.pem.enc"]
    # a fresh temp file is left alone (it may belong to a live writer) ...
    assert store.remove_stale_temp_files() == []
    assert leftover.exists()
    # ... an old one is removed
    assert store.remove_stale_temp_files(older_than_seconds=0) == [f"cas/x/{TEMP_PREFIX}deadbeefdeadbeef"]
    assert not leftover.exists()
    assert store.read("cas/x/key.pem.enc") == b"old content"


def test_iter_artifacts_lists_only_artifacts(store: ArtifactStore) -> None:
    for relpath in KINDS:
        store.write(relpath, b"x")
    data_dir = store.data_dir
    (data_dir / "notes.txt").write_text("not an artifact")
    (data_dir / ".rotation.json").write_text("{}")
    (data_dir / "cas/0f1e/key.pem").write_text("plain")
    (data_dir / "cas/0f1e/.pem.enc").write_bytes(b"")  # no stem
    (data_dir / f"cas/{TEMP_PREFIX}0011").write_bytes(b"")
    (data_dir / "link.pem.enc").symlink_to(data_dir / "top.pem.enc")
    assert list(store.iter_artifacts()) == sorted(KINDS)


def test_iter_artifacts_on_missing_data_dir(tmp_path: Path, cipher: ArtifactCipher) -> None:
    store = ArtifactStore(tmp_path / "absent", cipher)
    assert list(store.iter_artifacts()) == []
    assert store.remove_stale_temp_files(0) == []


def test_read_missing(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound):
        store.read("nope/key.pem.enc")
    assert not store.exists("nope/key.pem.enc")


def test_delete(store: ArtifactStore) -> None:
    store.write("a/key.pem.enc", b"x")
    store.delete("a/key.pem.enc")
    assert not store.exists("a/key.pem.enc")
    with pytest.raises(ArtifactNotFound):
        store.delete("a/key.pem.enc")
    store.delete("a/key.pem.enc", missing_ok=True)


def test_file_moved_on_disk_fails(store: ArtifactStore) -> None:
    store.write("cas/a/key.pem.enc", b"key of a")
    store.write("cas/b/key.pem.enc", b"key of b")
    os.replace(store.data_dir / "cas/a/key.pem.enc", store.data_dir / "cas/b/key.pem.enc")
    with pytest.raises(ArtifactTampered):
        store.read("cas/b/key.pem.enc")


def test_store_with_another_key_reports_wrong_key(
    store: ArtifactStore, data_dir: Path, other_cipher: ArtifactCipher
) -> None:
    store.write("a/key.pem.enc", b"x")
    with pytest.raises(WrongEncryptionKey):
        ArtifactStore(data_dir, other_cipher).read("a/key.pem.enc")
    assert store.header("a/key.pem.enc").key_id == store.cipher.key_id


def test_write_blob_round_trip(store: ArtifactStore) -> None:
    blob = store.cipher.encrypt(b"restored", "r/key.pem.enc")
    store.write_blob("r/key.pem.enc", blob)
    assert store.read("r/key.pem.enc") == b"restored"


@pytest.mark.parametrize(
    "relpath",
    [
        "",
        "/etc/key.pem.enc",
        "../key.pem.enc",
        "cas/../../key.pem.enc",
        "cas\\1\\key.pem.enc",
        "cas/1/key.pem.enc\x00",
        "C:/cas/key.pem.enc",
        "cas/1/key.pem",
        "cas/1/key.txt",
        "cas/1/pwd.enc",
        "cas/1/.pem.enc",
        f"cas/1/{TEMP_PREFIX}x.pem.enc",
        "cas/1/",
        ".",
    ],
)
def test_invalid_paths_are_refused(store: ArtifactStore, relpath: str) -> None:
    with pytest.raises(InvalidArtifactPath):
        store.write(relpath, b"x")
    with pytest.raises(InvalidArtifactPath):
        store.read(relpath)
    assert not store.data_dir.exists()


def test_symlinked_directory_cannot_escape_data_dir(store: ArtifactStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store.data_dir.mkdir()
    (store.data_dir / "cas").symlink_to(outside)
    with pytest.raises(InvalidArtifactPath):
        store.write("cas/key.pem.enc", b"x")
    assert list(outside.iterdir()) == []


def test_path_normalisation() -> None:
    assert normalize_relpath("./a//b/./c.pem.enc") == "a/b/c.pem.enc"
    assert validate_artifact_relpath("cas/1/.pwd.enc") == "cas/1/.pwd.enc"


def test_store_repr_has_no_secret(store: ArtifactStore) -> None:
    assert_no_secret(store)
    assert "key_id" in repr(store)


def test_unreadable_artifacts(store: ArtifactStore, data_dir: Path, other_cipher: ArtifactCipher) -> None:
    store.write("a/key.pem.enc", b"fine")
    ArtifactStore(data_dir, other_cipher).write("b/key.pem.enc", b"other installation")
    (data_dir / "c").mkdir(mode=0o700)
    (data_dir / "c/key.pem.enc").write_bytes(b"garbage")
    problems = store.unreadable_artifacts()
    assert sorted(problems) == ["b/key.pem.enc", "c/key.pem.enc"]
    assert isinstance(problems["b/key.pem.enc"], WrongEncryptionKey)
    assert isinstance(problems["c/key.pem.enc"], ArtifactCorrupt)
