"""Every check a restore makes before live data is touched, one small function per step.

The archive is hostile until proven otherwise. In order:

1. the zip opens and its central directory is sane: at most `PKI_BACKUP_MAX_ENTRIES`
   entries; names that are relative, POSIX, free of `..`, control characters and
   backslashes, unique (also case-insensitively, for case-insensitive file systems)
   and of the expected shapes only; regular files only (no symlink, directory or
   special-file mode bits), not encrypted, stored or deflated; the declared total
   uncompressed size under `PKI_BACKUP_MAX_UNCOMPRESSED_BYTES` and the compression
   ratio (per large entry and overall) under `PKI_BACKUP_MAX_COMPRESSION_RATIO`;
2. every member is extracted into a private staging directory by streaming, with a
   running byte counter that trusts no header, and hashed on the way;
3. the manifest carries this installation's MAC (`backups.integrity`), names exactly the
   members present, and every SHA-256 and size match;
4. a SQLite snapshot, when the archive carries one, passes `PRAGMA integrity_check`
   and agrees with the manifest's row counts and migrations;
5. the migration state equals the running one;
6. every artifact was sealed with this installation's key (header key id) and opens;
7. every row decodes and fits its table, and every artifact path the rows refer to is in
   the archive's data directory.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from backups.archive import (
    DATA_PREFIX,
    DB_PREFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    SQLITE_SNAPSHOT,
    TableSpec,
    backup_tables,
    decode_row,
)
from backups.errors import BackupError
from backups.integrity import manifest_is_authentic
from backups.snapshot import applied_migrations
from certificates.keystore import artifact_cipher
from certificates.vault import ArtifactStore, WrongEncryptionKey, parse_header
from certificates.vault.errors import InvalidArtifactPath, VaultError
from certificates.vault.paths import normalize_relpath, validate_artifact_relpath

# Columns that name an artifact (file or directory) relative to PKI_DATA_DIR, by table label.
ARTIFACT_REFERENCES = {
    "certificates.certificate": ("key_path", "pkcs12_path", "pkcs12_password_path"),
    "certificates.certificateauthority": ("key_directory",),
    "certificates.notificationtarget": ("secret_path",),
}

GB = 1000**3
DEFAULT_LIMITS = {
    "PKI_BACKUP_MAX_UPLOAD_BYTES": 5 * GB,
    "PKI_BACKUP_MAX_UNCOMPRESSED_BYTES": 10 * GB,
    "PKI_BACKUP_MAX_ENTRIES": 50_000,
    "PKI_BACKUP_MAX_COMPRESSION_RATIO": 200,
}
RATIO_CHECK_MIN_BYTES = 1024 * 1024  # a tiny entry's ratio says nothing; the overall ratio still counts
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
CHUNK = 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TABLE_MEMBER = re.compile(r"^db/[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*\.jsonl$")
WRONG_KEY_MESSAGE = "This backup was made with a different PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT."


def limit(name: str) -> int:
    return int(getattr(settings, name, DEFAULT_LIMITS[name]))


@dataclass
class StagedBackup:
    """An archive extracted into `root` (`root/data` is the new data directory) and its manifest."""

    root: Path
    manifest: dict[str, Any]
    digests: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (sha256, size) as extracted
    tables: list[TableSpec] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def member_path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    @property
    def sqlite_snapshot(self) -> Path | None:
        path = self.member_path(SQLITE_SNAPSHOT)
        return path if SQLITE_SNAPSHOT in self.digests else None


def refuse(message: str, code: str) -> BackupError:
    return BackupError(message, code=code)


# --------------------------------------------------------------------------- 0. upload size


def check_upload_size(size: int) -> None:
    maximum = limit("PKI_BACKUP_MAX_UPLOAD_BYTES")
    if size > maximum:
        raise refuse(f"The backup is too large ({size} bytes; at most {maximum} are accepted).", "too_large")


# --------------------------------------------------------------------------- 1. central directory


def open_archive(path: Path) -> zipfile.ZipFile:
    check_upload_size(path.stat().st_size)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise refuse("The backup is not a readable zip archive (truncated or damaged).", "bad_zip") from None


def check_central_directory(archive: zipfile.ZipFile) -> None:
    entries = archive.infolist()
    if len(entries) > limit("PKI_BACKUP_MAX_ENTRIES"):
        raise refuse(f"The backup has too many entries ({len(entries)}; at most "
                     f"{limit('PKI_BACKUP_MAX_ENTRIES')}).", "too_many_entries")
    seen: set[str] = set()
    for info in entries:
        check_member_name(info.filename)
        folded = info.filename.casefold()
        if folded in seen:
            raise refuse(f"The backup contains the member {info.filename!r} more than once.", "duplicate_member")
        seen.add(folded)
        check_member_type(info)
    check_sizes(entries)
    if MANIFEST not in seen:
        raise refuse("The backup has no manifest.json.", "no_manifest")


def check_member_name(name: str) -> None:
    if not name or _CONTROL.search(name) or "\\" in name:
        raise refuse(f"The backup contains a member with an unsafe name: {name!r}.", "unsafe_name")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise refuse(f"The backup contains a member with an absolute path: {name!r}.", "absolute_path")
    if ".." in name.split("/"):
        raise refuse(f"The backup contains a member whose path leaves the archive ('..'): {name!r}.", "path_traversal")
    if not is_expected_member(name):
        raise refuse(f"The backup contains an unexpected member: {name!r}.", "unexpected_member")


def is_expected_member(name: str) -> bool:
    if name in (MANIFEST, SQLITE_SNAPSHOT):
        return True
    if name.startswith(DB_PREFIX):
        return bool(_TABLE_MEMBER.match(name))
    if name.startswith(DATA_PREFIX):
        relpath = name[len(DATA_PREFIX):]
        try:
            return validate_artifact_relpath(relpath) == relpath
        except InvalidArtifactPath:
            return False
    return False


def check_member_type(info: zipfile.ZipInfo) -> None:
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise refuse(f"The backup contains a symbolic link: {info.filename!r}.", "symlink")
    if info.is_dir() or (kind and kind != stat.S_IFREG):
        raise refuse(f"The backup contains a special file or directory entry: {info.filename!r}.", "special_file")
    if info.flag_bits & 0x1:
        raise refuse(f"The backup contains an encrypted member: {info.filename!r}.", "encrypted_member")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise refuse(f"The backup member {info.filename!r} uses an unsupported compression.", "bad_compression")


def check_sizes(entries: list[zipfile.ZipInfo]) -> None:
    """Zip-bomb bounds on the declared sizes (extraction then enforces them on the real bytes)."""
    ratio = limit("PKI_BACKUP_MAX_COMPRESSION_RATIO")
    total = sum(info.file_size for info in entries)
    compressed = sum(info.compress_size for info in entries)
    if total > limit("PKI_BACKUP_MAX_UNCOMPRESSED_BYTES"):
        raise refuse(f"The backup would expand to {total} bytes, more than the "
                     f"{limit('PKI_BACKUP_MAX_UNCOMPRESSED_BYTES')} accepted.", "too_large_uncompressed")
    for info in entries:
        if info.file_size >= RATIO_CHECK_MIN_BYTES and info.file_size > ratio * max(info.compress_size, 1):
            raise refuse(f"The backup member {info.filename!r} is compressed suspiciously well "
                         f"(more than {ratio}:1): refused as a possible zip bomb.", "zip_bomb")
    if total >= RATIO_CHECK_MIN_BYTES and total > ratio * max(compressed, 1):
        raise refuse(f"The backup is compressed suspiciously well (more than {ratio}:1): "
                     "refused as a possible zip bomb.", "zip_bomb")


# --------------------------------------------------------------------------- 2. extraction


def extract(archive: zipfile.ZipFile, staged: StagedBackup, progress: Callable[[int, int], None]) -> None:
    """Stream every member into the staging directory, counting the bytes actually produced."""
    budget = limit("PKI_BACKUP_MAX_UNCOMPRESSED_BYTES")
    produced = 0
    entries = archive.infolist()
    for index, info in enumerate(entries, start=1):
        target = staged.member_path(info.filename)
        make_private_dirs(target.parent, staged.root)
        digest, size = _extract_member(archive, info, target, budget - produced)
        produced += size
        staged.digests[info.filename] = (digest, size)
        progress(index, len(entries))


def make_private_dirs(directory: Path, root: Path) -> None:
    """Create `directory` below `root` one level at a time as 0700 (`mkdir(parents=True)` ignores the mode
    for parents), so the data directory swapped in is as private as the vault makes its own."""
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        if not current.is_dir():
            current.mkdir(mode=0o700)
            current.chmod(0o700)


def _extract_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int) -> tuple[str, int]:
    sha256, size = hashlib.sha256(), 0
    try:
        with archive.open(info) as source, open(target, "xb") as sink:
            target.chmod(0o600)
            while chunk := source.read(CHUNK):
                size += len(chunk)
                if size > info.file_size or size > budget:
                    raise refuse(f"The backup member {info.filename!r} expands beyond its declared size: "
                                 "refused as a possible zip bomb.", "zip_bomb")
                sha256.update(chunk)
                sink.write(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError) as error:
        if isinstance(error, FileExistsError):
            raise refuse(f"The backup contains the member {info.filename!r} more than once.",
                         "duplicate_member") from None
        raise refuse(f"The backup member {info.filename!r} cannot be read (truncated or damaged).",
                     "bad_zip") from None
    return sha256.hexdigest(), size


# --------------------------------------------------------------------------- 3. manifest


def read_manifest(staged: StagedBackup) -> dict[str, Any]:
    path = staged.member_path(MANIFEST)
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise refuse("The backup's manifest.json is too large.", "bad_manifest")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise refuse("The backup's manifest.json is not valid JSON.", "bad_manifest") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise refuse("The archive is not a PKI backup (manifest.json has no 'pki-backup' format).", "bad_manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise refuse(f"The backup has format version {manifest.get('format_version')!r}; this release reads "
                     f"version {FORMAT_VERSION}.", "unsupported_format")
    for key, kind in (("members", dict), ("tables", dict), ("migrations", list), ("encryption_key_id", str)):
        if not isinstance(manifest.get(key), kind):
            raise refuse(f"The backup's manifest.json lacks a valid {key!r}.", "bad_manifest")
    staged.manifest = manifest
    return manifest


def check_manifest_mac(staged: StagedBackup) -> None:
    """Made by this installation and unchanged: the manifest's MAC under its key (`backups.integrity`)."""
    if staged.manifest["encryption_key_id"] != artifact_cipher().key_id.hex():
        raise refuse(WRONG_KEY_MESSAGE, "wrong_encryption_key")
    if not manifest_is_authentic(staged.manifest):
        raise refuse("The backup's manifest is not authenticated by this installation's key: the archive was "
                     "edited after it was made.", "manifest_not_authentic")


def check_hashes(staged: StagedBackup) -> None:
    listed = staged.manifest["members"]
    present = set(staged.digests) - {MANIFEST}
    unlisted = sorted(present - set(listed))
    if unlisted:
        raise refuse(f"The backup contains members its manifest does not list: {', '.join(unlisted[:5])}.",
                     "unexpected_member")
    missing = sorted(set(listed) - present)
    if missing:
        raise refuse(f"The backup lacks members its manifest lists: {', '.join(missing[:5])}.", "missing_member")
    for name in sorted(present):
        entry = listed[name]
        digest, size = staged.digests[name]
        if not isinstance(entry, dict) or entry.get("sha256") != digest or entry.get("size") != size:
            raise refuse(f"The backup member {name!r} does not match the SHA-256 in its manifest: the archive "
                         "was modified or damaged.", "hash_mismatch")


# --------------------------------------------------------------------------- 4. SQLite snapshot


def check_sqlite_snapshot(staged: StagedBackup) -> None:
    """PRAGMA integrity_check on the raw snapshot; its rows and migrations must match the manifest."""
    path = staged.sqlite_snapshot
    if path is None:
        return
    try:
        database = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    except sqlite3.Error:
        raise _corrupt("it cannot be opened") from None
    try:
        database.execute("PRAGMA trusted_schema=OFF")  # an untrusted file: no functions from its schema
        verdict = [row[0] for row in database.execute("PRAGMA integrity_check").fetchall()]
        if verdict != ["ok"]:
            raise _corrupt(f"integrity_check reports {verdict[0]!r}")
        _check_snapshot_counts(database, staged)
        migrations = sorted([app, name] for app, name in database.execute("SELECT app, name FROM django_migrations"))
    except sqlite3.Error as error:
        raise _corrupt(str(error)) from None
    finally:
        database.close()
    if migrations != sorted(pair for pair in staged.manifest["migrations"] if isinstance(pair, list)):
        raise _corrupt("its migrations differ from the manifest's")


def _check_snapshot_counts(database: sqlite3.Connection, staged: StagedBackup) -> None:
    for spec in backup_tables():
        entry = staged.manifest["tables"].get(spec.label)
        if not isinstance(entry, dict):
            continue  # reported by check_rows with a clearer message
        quoted = '"' + spec.db_table.replace('"', '""') + '"'
        (count,) = database.execute(f"SELECT COUNT(*) FROM {quoted}").fetchone()  # noqa: S608 - a model's table
        if count != entry.get("rows"):
            raise _corrupt(f"table {spec.db_table} has {count} rows, the manifest says {entry.get('rows')}")


def _corrupt(reason: str) -> BackupError:
    return refuse(f"The database snapshot in the backup is corrupt: {reason}.", "corrupt_database")


# --------------------------------------------------------------------------- 5. migrations


def check_migrations(staged: StagedBackup) -> None:
    theirs = [list(pair) for pair in staged.manifest["migrations"] if isinstance(pair, list)]
    ours = applied_migrations(DEFAULT_DB_ALIAS)
    if sorted(theirs) == ours:
        return
    only_backup = sorted({tuple(p) for p in theirs} - {tuple(p) for p in ours})
    only_here = sorted({tuple(p) for p in ours} - {tuple(p) for p in theirs})
    details = []
    if only_backup:
        details.append("only in the backup: " + ", ".join(f"{a}.{n}" for a, n in only_backup[:5]))
    if only_here:
        details.append("only here: " + ", ".join(f"{a}.{n}" for a, n in only_here[:5]))
    raise refuse("This backup was made at a different migration state than the running application "
                 f"({'; '.join(details) or 'malformed list'}). Restore it with the release that made it, "
                 "or bring both to the same migrations first.", "migration_mismatch")


# --------------------------------------------------------------------------- 6. artifacts


def check_artifacts(staged: StagedBackup, progress: Callable[[int, int], None]) -> int:
    cipher = artifact_cipher()
    if staged.manifest["encryption_key_id"] != cipher.key_id.hex():
        raise refuse(WRONG_KEY_MESSAGE, "wrong_encryption_key")
    store = ArtifactStore(staged.data_dir, cipher)
    relpaths = list(store.iter_artifacts())
    expected = sorted(name[len(DATA_PREFIX):] for name in staged.digests if name.startswith(DATA_PREFIX))
    if relpaths != expected:
        raise refuse("The backup's data members do not form a valid data directory.", "bad_data")
    for index, relpath in enumerate(relpaths, start=1):
        try:
            blob = store.read_blob(relpath)
            if parse_header(blob, relpath).key_id != cipher.key_id:
                raise refuse(WRONG_KEY_MESSAGE, "wrong_encryption_key")
            cipher.decrypt(blob, relpath)
        except WrongEncryptionKey:
            raise refuse(WRONG_KEY_MESSAGE, "wrong_encryption_key") from None
        except VaultError as error:
            raise refuse(f"The backup's artifact {relpath} does not decrypt: {error}", "damaged_artifact") from None
        progress(index, len(relpaths))
    return len(relpaths)


# --------------------------------------------------------------------------- 7. rows


def check_rows(staged: StagedBackup, progress: Callable[[int, int], None]) -> None:
    """Every table of the running schema is present with its columns, and every row decodes."""
    specs = backup_tables()
    tables = staged.manifest["tables"]
    ours = {spec.label for spec in specs}
    if set(tables) != ours:
        extra, missing = sorted(set(tables) - ours), sorted(ours - set(tables))
        raise refuse(f"The backup's tables do not match this application's (extra: {extra[:5]}, missing: "
                     f"{missing[:5]}).", "table_mismatch")
    for index, spec in enumerate(specs, start=1):
        entry = tables[spec.label]
        if not isinstance(entry, dict) or sorted(entry.get("columns") or []) != sorted(spec.columns):
            raise refuse(f"The backup's table {spec.label} has other columns than this application's.",
                         "table_mismatch")
        if spec.member not in staged.digests:
            raise refuse(f"The backup lacks the rows of {spec.label}.", "missing_member")
        count = _check_table_rows(staged, spec)
        if count != entry.get("rows"):
            raise refuse(f"The backup's table {spec.label} has {count} rows, its manifest says "
                         f"{entry.get('rows')}.", "hash_mismatch")
        progress(index, len(specs))
    staged.tables = specs
    check_artifact_references(staged)


def check_artifact_references(staged: StagedBackup) -> None:
    """A database that refers to keys its data directory lacks would restore CAs that cannot sign."""
    missing: list[str] = []
    for spec in staged.tables:
        columns = ARTIFACT_REFERENCES.get(spec.label, ())
        if not columns:
            continue
        with staged.member_path(spec.member).open("rb") as handle:
            for line in handle:
                row = dict(zip(spec.columns, decode_row(spec, line), strict=True))
                missing.extend(path for column in columns if (path := row.get(column))
                               and not _in_staged_data(staged, path))
    if missing:
        raise refuse(f"The backup's database refers to {len(missing)} artifacts its data directory lacks "
                     f"(e.g. {missing[0]}).", "missing_artifacts")


def _in_staged_data(staged: StagedBackup, relpath: str) -> bool:
    try:
        canonical = normalize_relpath(relpath)
    except InvalidArtifactPath:
        return False
    target = staged.data_dir.joinpath(*canonical.split("/"))
    return not target.is_symlink() and target.exists()


def _check_table_rows(staged: StagedBackup, spec: TableSpec) -> int:
    count = 0
    with staged.member_path(spec.member).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                decode_row(spec, line)
            except (ValueError, TypeError, UnicodeDecodeError) as error:
                raise refuse(f"The backup's table {spec.label} has a malformed row (line {number}): "
                             f"{str(error)[:120]}.", "bad_row") from None
            count += 1
    return count


