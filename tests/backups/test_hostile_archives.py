"""Hostile and broken archives: each refused with a clear message, the live state byte-identical after."""

from __future__ import annotations

import io
import json
import sqlite3
import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from backups.archive import MANIFEST, SQLITE_SNAPSHOT
from backups.errors import BackupError
from backups.services import restore_backup
from certificates.keystore import artifact_cipher
from certificates.vault import ArtifactCipher
from certificates.vault.at_rest import derive_master_key
from pki_project.actor import Actor
from tests.backups.helpers import live_state, read_members, restore_refusals, with_manifest, write_members

Members = dict[str, bytes]


def first_artifact(members: Members) -> str:
    return next(name for name in members if name.startswith("data/"))


def refused(archive: Path, data_dir: Path, code: str | tuple[str, ...], words: str) -> BackupError:
    """Restore must raise BackupError(code) mentioning `words`, and change nothing at all."""
    before, refusals = live_state(data_dir), restore_refusals()
    with pytest.raises(BackupError) as caught:
        restore_backup(archive, Actor.operator("tests"))
    assert caught.value.code in ((code,) if isinstance(code, str) else code), caught.value.message
    assert words.lower() in caught.value.message.lower(), caught.value.message
    assert live_state(data_dir) == before
    assert restore_refusals() == [*refusals, caught.value.code], "the refusal is on the record"
    return caught.value


def test_zip_slip(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members["../escaped.pem.enc"] = members[first_artifact(members)]
    refused(write_members(tmp_path / "h.zip", members), data_dir, "path_traversal", "leaves the archive")
    assert not (tmp_path / "escaped.pem.enc").exists()


def test_zip_slip_inside_data(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members["data/../../escaped.pem.enc"] = members[first_artifact(members)]
    refused(write_members(tmp_path / "h.zip", members), data_dir, "path_traversal", "'..'")


def test_absolute_path(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members["/etc/pki-evil.pem.enc"] = b"x"
    refused(write_members(tmp_path / "h.zip", members), data_dir, "absolute_path", "absolute path")


def test_windows_absolute_and_backslash_paths(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    refused(write_members(tmp_path / "a.zip", {**members, "C:/evil.pem.enc": b"x"}), data_dir,
            "absolute_path", "absolute path")


def test_symlink(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    name = first_artifact(members)

    def as_symlink(info: zipfile.ZipInfo) -> None:
        if info.filename == name:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16

    members[name] = b"/etc/passwd"
    refused(write_members(tmp_path / "h.zip", members, tweak=as_symlink), data_dir, "symlink", "symbolic link")


def test_special_file(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    name = first_artifact(members)

    def as_fifo(info: zipfile.ZipInfo) -> None:
        if info.filename == name:
            info.external_attr = (stat.S_IFIFO | 0o600) << 16

    refused(write_members(tmp_path / "h.zip", members, tweak=as_fifo), data_dir, "special_file", "special file")


def test_zip_bomb_by_ratio(backup_file: Path, data_dir: Path, tmp_path: Path, settings) -> None:
    settings.PKI_BACKUP_MAX_COMPRESSION_RATIO = 50
    members = read_members(backup_file)
    members["db/auth.group.jsonl"] = b"\n" * (8 * 1024 * 1024)  # deflates ~1000:1
    refused(write_members(tmp_path / "h.zip", members), data_dir, "zip_bomb", "zip bomb")


def test_zip_bomb_by_total_size(backup_file: Path, data_dir: Path, tmp_path: Path, settings) -> None:
    settings.PKI_BACKUP_MAX_UNCOMPRESSED_BYTES = 10_000
    refused(backup_file, data_dir, "too_large_uncompressed", "would expand")


def patch_central_record(archive: Path, name: str, offset: int, value: bytes) -> None:
    """Overwrite bytes of `name`'s central directory record (what the zip module will not write for us)."""
    data = bytearray(archive.read_bytes())
    position = data.find(b"PK\x01\x02")
    while position != -1:
        name_length = int.from_bytes(data[position + 28:position + 30], "little")
        if data[position + 46:position + 46 + name_length] == name.encode():
            data[position + offset:position + offset + len(value)] = value
            archive.write_bytes(bytes(data))
            return
        position = data.find(b"PK\x01\x02", position + 4)
    raise AssertionError(f"{name} not found")


def test_lying_size_header_is_caught_while_extracting(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    """A header that declares fewer bytes than the member inflates to: extraction does not trust it."""
    archive = write_members(tmp_path / "h.zip", read_members(backup_file))
    with zipfile.ZipFile(archive) as opened:
        info = opened.getinfo("db/contenttypes.contenttype.jsonl")
    patch_central_record(archive, info.filename, 24, (info.file_size // 2).to_bytes(4, "little"))
    # Python's zipfile stops at the declared size and then fails the CRC; either way: refused.
    error = refused(archive, data_dir, ("zip_bomb", "bad_zip"), "contenttypes")
    assert "declared size" in error.message or "cannot be read" in error.message


def test_truncated_zip(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    data = backup_file.read_bytes()
    truncated = tmp_path / "h.zip"
    truncated.write_bytes(data[: len(data) // 2])
    refused(truncated, data_dir, "bad_zip", "truncated")


def test_not_a_zip(data_dir: Path, tmp_path: Path, db) -> None:
    archive = tmp_path / "h.zip"
    archive.write_bytes(b"this is not a zip file at all" * 100)
    refused(archive, data_dir, "bad_zip", "not a readable zip")


def test_damaged_member_data(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    """Bytes flipped inside a stored member: the CRC check refuses it during extraction."""
    members = read_members(backup_file)
    name = first_artifact(members)
    archive = write_members(tmp_path / "h.zip", members)
    data = bytearray(archive.read_bytes())
    position = data.find(members[name])
    data[position + 30] ^= 0xFF
    archive.write_bytes(bytes(data))
    refused(archive, data_dir, "bad_zip", "cannot be read")


def test_corrupted_database_snapshot(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    snapshot = members.get(SQLITE_SNAPSHOT)
    if snapshot is None:  # a PostgreSQL backup carries no SQLite file: smuggle a broken one in
        snapshot = b"SQLite format 3\x00" + b"\x00" * 4096
    broken = bytearray(snapshot)
    for offset in range(len(broken) // 2, len(broken), 997):
        broken[offset] ^= 0x5A
    members[SQLITE_SNAPSHOT] = bytes(broken)
    refused(write_members(tmp_path / "h.zip", members), data_dir, "corrupt_database", "corrupt")


def test_snapshot_that_disagrees_with_the_rows(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    if SQLITE_SNAPSHOT not in members:
        pytest.skip("only a SQLite backup carries a snapshot")
    members[SQLITE_SNAPSHOT] = edit_snapshot(members[SQLITE_SNAPSHOT], tmp_path,
                                             "DELETE FROM certificates_certificate WHERE id = "
                                             "(SELECT MAX(id) FROM certificates_certificate)")
    refused(write_members(tmp_path / "h.zip", members), data_dir, "corrupt_database", "rows")


def edit_snapshot(snapshot: bytes, tmp_path: Path, *statements: str) -> bytes:
    path = tmp_path / "edited.sqlite3"
    path.write_bytes(snapshot)
    database = sqlite3.connect(path)
    database.execute("PRAGMA foreign_keys=OFF")
    for statement in statements:
        database.execute(statement)
    database.commit()
    database.close()
    return path.read_bytes()


def test_wrong_migration_state(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members = with_manifest(members, lambda m: m["migrations"].append(["certificates", "9999_from_the_future"]))
    if SQLITE_SNAPSHOT in members:  # a real newer backup's snapshot would agree with its manifest
        members[SQLITE_SNAPSHOT] = edit_snapshot(
            members[SQLITE_SNAPSHOT], tmp_path,
            "INSERT INTO django_migrations (app, name, applied) VALUES ('certificates', '9999_from_the_future', "
            "'2030-01-01 00:00:00')")
    error = refused(write_members(tmp_path / "h.zip", members), data_dir, "migration_mismatch",
                    "different migration state")
    assert "certificates.9999_from_the_future" in error.message


def test_made_under_another_encryption_key(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    other = ArtifactCipher(derive_master_key("another-installation-passphrase-0123456789", "another-salt-0123456"))
    ours = artifact_cipher()
    members = read_members(backup_file)
    for name in [n for n in members if n.startswith("data/")]:
        relpath = name.removeprefix("data/")
        members[name] = other.encrypt(ours.decrypt(members[name], relpath), relpath)
    members = with_manifest(members, lambda m: m.update(encryption_key_id=other.key_id.hex()))
    refused(write_members(tmp_path / "h.zip", members), data_dir, "wrong_encryption_key",
            "This backup was made with a different PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT.")


def test_foreign_artifacts_under_a_forged_key_id(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    """The manifest is not trusted: each artifact's own header decides."""
    other = ArtifactCipher(derive_master_key("another-installation-passphrase-0123456789", "another-salt-0123456"))
    members = read_members(backup_file)
    name = first_artifact(members)
    relpath = name.removeprefix("data/")
    members[name] = other.encrypt(artifact_cipher().decrypt(members[name], relpath), relpath)
    refused(write_members(tmp_path / "h.zip", members), data_dir, "wrong_encryption_key", "different PKI_ENCRYPTION")


def test_tampered_artifact(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    name = first_artifact(members)
    blob = bytearray(members[name])
    blob[-1] ^= 1
    members[name] = bytes(blob)
    refused(write_members(tmp_path / "h.zip", members), data_dir, "damaged_artifact", "does not decrypt")


@pytest.mark.parametrize("name", ["notes.txt", "db/extra", "data/cas/readme.txt", "db/", "manifest.json.bak"])
def test_unexpected_member(backup_file: Path, data_dir: Path, tmp_path: Path, name: str) -> None:
    members = read_members(backup_file)
    members[name] = b"hello"
    refused(write_members(tmp_path / "h.zip", members), data_dir, "unexpected_member", "unexpected member")


def test_member_not_in_manifest(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members["data/cas/ffff/key.pem.enc"] = members[first_artifact(members)]
    refused(write_members(tmp_path / "h.zip", members, rehash=False), data_dir, "unexpected_member",
            "does not list")


def test_duplicate_member_names(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = list(read_members(backup_file).items())
    name = next(n for n, _ in members if n.startswith("data/"))
    members.insert(0, (name, b"evil twin"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate it is told to write
        archive = write_members(tmp_path / "h.zip", members, rehash=False)
    refused(archive, data_dir, "duplicate_member", "more than once")


def test_case_insensitive_duplicates(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    name = first_artifact(members)
    members[name.replace("key.pem.enc", "KEY.pem.enc").replace(".pwd.enc", "KEY.pem.enc")] = members[name]
    members[name.upper().replace("DATA/", "data/").replace(".PEM.ENC", ".pem.enc")] = members[name]
    refused(write_members(tmp_path / "h.zip", members), data_dir, "duplicate_member", "more than once")


def test_manifest_hash_mismatch(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members["db/organizations.organization.jsonl"] += b""  # unchanged rows ...
    members = with_manifest(members, lambda m: m["members"]["db/organizations.organization.jsonl"].update(
        sha256="0" * 64))  # ... but the manifest disagrees
    refused(write_members(tmp_path / "h.zip", members, rehash=False), data_dir, "hash_mismatch", "SHA-256")


def test_modified_member_without_new_hash(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    members["db/organizations.organization.jsonl"] = members["db/organizations.organization.jsonl"].replace(
        b"Organization", b"Evil Organ")
    refused(write_members(tmp_path / "h.zip", members, rehash=False), data_dir, "hash_mismatch", "modified")


def test_missing_manifest(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    del members[MANIFEST]
    refused(write_members(tmp_path / "h.zip", members, rehash=False), data_dir, "no_manifest", "manifest")


@pytest.mark.parametrize("manifest", [b"{not json", b"[]", b'{"format": "zip"}',
                                      b'{"format": "pki-backup", "format_version": 99}'])
def test_bad_manifest(backup_file: Path, data_dir: Path, tmp_path: Path, manifest: bytes) -> None:
    members = {**read_members(backup_file), MANIFEST: manifest}
    error = refused(write_members(tmp_path / "h.zip", members, rehash=False), data_dir,
                    "unsupported_format" if b"99" in manifest else "bad_manifest", "")
    assert "manifest" in error.message or "format version" in error.message


def test_malformed_row(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    name = "db/certificates.certificate.jsonl"
    rows = members[name].splitlines(keepends=True)
    row = json.loads(rows[0])
    row["der"] = "not base64!!"
    rows[0] = (json.dumps(row) + "\n").encode()
    members[name] = b"".join(rows)
    refused(write_members(tmp_path / "h.zip", members), data_dir, "bad_row", "malformed row")


def test_dangling_foreign_key(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    """Rows that decode but break a foreign key: refused inside the transaction, rolled back."""
    members = read_members(backup_file)
    name = "db/certificates.certificateauthority.jsonl"
    rows = [json.loads(line) for line in members[name].splitlines()]
    rows[0]["organization_id"] = 987654
    members[name] = b"".join((json.dumps(row) + "\n").encode() for row in rows)
    if SQLITE_SNAPSHOT in members:
        statement = "UPDATE certificates_certificateauthority SET organization_id = 987654 WHERE id = %d"
        members[SQLITE_SNAPSHOT] = edit_snapshot(members[SQLITE_SNAPSHOT], tmp_path, statement % int(rows[0]["id"]))
    before = live_state(data_dir)
    with pytest.raises(Exception, match=r"(?i)foreign key|integrity|violates"):
        restore_backup(write_members(tmp_path / "h.zip", members), Actor.operator("tests"))
    assert live_state(data_dir) == before


@pytest.mark.parametrize(("setting", "value", "code"), [
    ("PKI_BACKUP_MAX_ENTRIES", 3, "too_many_entries"),
    ("PKI_BACKUP_MAX_UPLOAD_BYTES", 1000, "too_large"),
])
def test_limits(backup_file: Path, data_dir: Path, settings, setting: str, value: int, code: str) -> None:
    setattr(settings, setting, value)
    refused(backup_file, data_dir, code, "")


def test_encrypted_member(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    name = first_artifact(members)
    archive = write_members(tmp_path / "h.zip", members)
    patch_central_record(archive, name, 8, b"\x01\x00")
    refused(archive, data_dir, "encrypted_member", "encrypted")


def test_empty_zip(data_dir: Path, tmp_path: Path, db) -> None:
    buffer = io.BytesIO()
    zipfile.ZipFile(buffer, "w").close()
    archive = tmp_path / "h.zip"
    archive.write_bytes(buffer.getvalue())
    refused(archive, data_dir, "no_manifest", "no manifest")



def test_rows_that_refer_to_missing_artifacts(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = read_members(backup_file)
    for name in [n for n in members if n.startswith("data/")]:
        del members[name]
    members = with_manifest(members, lambda m: m.update(artifacts=0))
    refused(write_members(tmp_path / "h.zip", members), data_dir, "missing_artifacts", "lacks")


# --- an insider with a downloaded backup but without the installation's secrets ----------------------------------


def test_an_edited_and_rehashed_backup_is_refused_without_the_key(backup_file: Path, data_dir: Path,
                                                                    tmp_path: Path) -> None:
    """A global admin revives a revoked key in a downloaded backup and recomputes every SHA-256."""
    members = read_members(backup_file)
    name = "db/organizations.organization.jsonl"
    members[name] = members[name].replace(b"Organization", b"Evil Organ")
    archive = write_members(tmp_path / "h.zip", members, rehash=True, sign=False)
    refused(archive, data_dir, "manifest_not_authentic", "not authenticated by this installation's key")


def test_a_manifest_without_its_mac_is_refused(backup_file: Path, data_dir: Path, tmp_path: Path) -> None:
    members = with_manifest(read_members(backup_file), lambda manifest: manifest.pop("mac"), sign=False)
    refused(write_members(tmp_path / "h.zip", members, rehash=False), data_dir, "manifest_not_authentic", "edited")


def test_a_rehashed_audit_trail_is_refused_even_with_a_valid_manifest(backup_file: Path, data_dir: Path,
                                                                        tmp_path: Path) -> None:
    """With the manifest MACed again (the secrets stolen), the events re-hashed without the chain's key still
    fail their MAC: the backup's trail does not verify."""
    from datetime import datetime

    from audit.canonical import compute_hash

    members = read_members(backup_file)
    name = "db/audit.auditevent.jsonl"
    events = [json.loads(line) for line in members[name].splitlines()]
    events[0]["outcome"] = "failure"
    prev_hash = "0" * 64
    for event in events:
        event["prev_hash"] = prev_hash
        record = {**event, "v": event["version"], "created_at": datetime.fromisoformat(event["created_at"]),
                  "details": json.loads(event["details"])}  # as the archive encodes them (backups.archive)
        event["hash"] = prev_hash = compute_hash(record)
    members[name] = b"".join(json.dumps(event).encode() + b"\n" for event in events)
    refused(write_members(tmp_path / "h.zip", members), data_dir, "broken_audit", "MAC")
