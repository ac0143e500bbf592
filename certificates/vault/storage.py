"""Encrypted artifact files under ``PKI_DATA_DIR``.

Writes are atomic and durable: the sealed bytes go to a temporary file created
exclusively (``O_CREAT|O_EXCL``, mode 0600) in the *same* directory, are fsynced,
renamed over the target with ``os.replace`` and the directory is fsynced. A crash
at any point leaves either the old file or the new one, never a mix; at worst a
temporary file is left behind, which :meth:`ArtifactStore.iter_artifacts` ignores
and :meth:`ArtifactStore.remove_stale_temp_files` deletes.

Files are 0600 and directories the store creates are 0700 whatever the umask:
the ciphertexts are not useful without the master key, but there is no reason to
let other local users copy them for an offline attack on the root password.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from .at_rest import ArtifactCipher, ArtifactHeader, parse_header
from .errors import ArtifactExists, ArtifactNotFound, InvalidArtifactPath, VaultError
from .paths import TEMP_PREFIX, is_artifact_name, validate_artifact_relpath

__all__ = ["DIR_MODE", "FILE_MODE", "ArtifactStore", "atomic_write_file", "fsync_directory"]

FILE_MODE = 0o600
DIR_MODE = 0o700
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# Errors meaning "this file system cannot hard-link": fall back to a non-atomic check.
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class ArtifactStore:
    """Reads and writes sealed artifacts addressed by canonical relative POSIX paths."""

    __slots__ = ("_cipher", "_data_dir")

    def __init__(self, data_dir: Path | str, cipher: ArtifactCipher) -> None:
        self._data_dir = Path(os.path.abspath(data_dir))
        self._cipher = cipher

    def __repr__(self) -> str:
        return f"ArtifactStore(data_dir={str(self._data_dir)!r}, cipher={self._cipher!r})"

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def cipher(self) -> ArtifactCipher:
        return self._cipher

    # ------------------------------------------------------------------ public API

    def write(self, relpath: str, plaintext: bytes, *, overwrite: bool = True) -> str:
        """Seal ``plaintext`` and store it atomically at ``relpath``; return the canonical relpath.

        With ``overwrite=False`` an existing file is never replaced (``ArtifactExists``);
        the check and the creation are one atomic ``link`` where the file system allows.
        """
        canonical = validate_artifact_relpath(relpath)
        blob = self._cipher.encrypt(plaintext, canonical)
        self._write_blob(canonical, blob, overwrite=overwrite)
        return canonical

    def read(self, relpath: str) -> bytes:
        """Return the plaintext stored at ``relpath`` (see ``ArtifactCipher.decrypt`` for errors)."""
        canonical = validate_artifact_relpath(relpath)
        return self._cipher.decrypt(self.read_blob(canonical), canonical)

    def read_blob(self, relpath: str) -> bytes:
        """Return the raw sealed bytes (for rotation and backup validation; no key needed)."""
        canonical = validate_artifact_relpath(relpath)
        target = self._resolve(canonical)
        try:
            fd = os.open(target, os.O_RDONLY | _O_CLOEXEC | _O_NOFOLLOW)
        except FileNotFoundError:
            raise ArtifactNotFound(canonical) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symlink: the vault never creates one
                raise InvalidArtifactPath(f"Artifact path is a symbolic link: {canonical!r}.") from None
            raise
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def write_blob(self, relpath: str, blob: bytes) -> str:
        """Atomically store already-sealed bytes (restore); the header must parse."""
        canonical = validate_artifact_relpath(relpath)
        parse_header(blob, canonical)
        self._write_blob(canonical, blob, overwrite=True)
        return canonical

    def header(self, relpath: str) -> ArtifactHeader:
        """Parse the header of the file at ``relpath`` (which key sealed it?) without decrypting."""
        canonical = validate_artifact_relpath(relpath)
        return parse_header(self.read_blob(canonical), canonical)

    def exists(self, relpath: str) -> bool:
        canonical = validate_artifact_relpath(relpath)
        return os.path.lexists(self._resolve(canonical))

    def delete(self, relpath: str, *, missing_ok: bool = False) -> None:
        """Remove an artifact and make the removal durable."""
        canonical = validate_artifact_relpath(relpath)
        target = self._resolve(canonical)
        try:
            os.unlink(target)
        except FileNotFoundError:
            if missing_ok:
                return
            raise ArtifactNotFound(canonical) from None
        fsync_directory(target.parent)

    def iter_artifacts(self) -> Iterator[str]:
        """Yield the canonical relpath of every artifact file, sorted; temp files and symlinks are skipped."""
        found: list[str] = []
        if self._data_dir.is_dir():
            for dirpath, _dirnames, filenames in os.walk(self._data_dir, followlinks=False):
                base = Path(dirpath)
                for name in filenames:
                    if not is_artifact_name(name) or not _is_regular_file(base / name):
                        continue
                    relpath = (base / name).relative_to(self._data_dir).as_posix()
                    try:
                        found.append(validate_artifact_relpath(relpath))
                    except InvalidArtifactPath:
                        continue  # e.g. a backslash in a name: the store could not address it anyway
        yield from sorted(found)

    def unreadable_artifacts(self) -> dict[str, VaultError]:
        """Open every artifact's outer layer; return ``{relpath: error}`` for those that fail.

        For restore validation and operator diagnostics: a ``WrongEncryptionKey``
        means "sealed by another installation's key", anything else means damage.
        """
        failures: dict[str, VaultError] = {}
        for relpath in self.iter_artifacts():
            try:
                self.read(relpath)
            except VaultError as exc:
                failures[relpath] = exc
        return failures

    def remove_stale_temp_files(self, older_than_seconds: float = 3600.0) -> list[str]:
        """Delete temp files left by a crash; return their relpaths.

        Only files older than ``older_than_seconds`` are removed so that a concurrent
        writer's in-flight temp file is not pulled from under it.
        """
        removed: list[str] = []
        if not self._data_dir.is_dir():
            return removed
        cutoff = time.time() - older_than_seconds
        for dirpath, _dirnames, filenames in os.walk(self._data_dir, followlinks=False):
            for name in filenames:
                path = Path(dirpath) / name
                if not name.startswith(TEMP_PREFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    if path.lstat().st_mtime <= cutoff:
                        path.unlink()
                        removed.append(path.relative_to(self._data_dir).as_posix())
        return sorted(removed)

    # ------------------------------------------------------------------ internals

    def _resolve(self, canonical: str) -> Path:
        """Absolute path of ``canonical``; refuse if a symlinked directory would lead outside data_dir."""
        target = self._data_dir.joinpath(*canonical.split("/"))
        root = os.path.realpath(self._data_dir)
        parent = os.path.realpath(target.parent)
        if os.path.commonpath([root, parent]) != root:
            raise InvalidArtifactPath(f"Artifact path leaves the data directory: {canonical!r}.")
        return target

    def _write_blob(self, canonical: str, blob: bytes, *, overwrite: bool) -> None:
        target = self._resolve(canonical)
        _make_private_dirs(target.parent)
        self._resolve(canonical)  # re-check now that the directories exist
        try:
            atomic_write_file(target, blob, overwrite=overwrite)
        except FileExistsError:
            raise ArtifactExists(canonical) from None


def atomic_write_file(target: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``target`` atomically and durably, as a 0600 file.

    Temp file in the same directory (``O_CREAT|O_EXCL``, 0600), write, fsync,
    ``os.replace`` (or an exclusive ``link`` when ``overwrite`` is False, raising
    ``FileExistsError``), fsync the directory. The parent directory must exist.
    """
    tmp = target.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW, FILE_MODE)
    try:
        try:
            os.fchmod(fd, FILE_MODE)  # the umask may have removed bits; never add any
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_exclusive(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    fsync_directory(target.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _link_exclusive(tmp: Path, target: Path) -> None:
    """Publish ``tmp`` at ``target`` only if ``target`` does not exist (atomic via link(2))."""
    try:
        os.link(tmp, target, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise
        # No hard links here (some network/FUSE file systems): check-then-rename.
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "File exists") from None
        os.replace(tmp, target)


def _make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents as 0700 (independent of umask), fsyncing each parent."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            continue  # created concurrently
        os.chmod(path, DIR_MODE)
        fsync_directory(path.parent)
    if not directory.is_dir():
        raise InvalidArtifactPath(f"Not a directory: {directory.name!r}.")


def fsync_directory(directory: Path) -> None:
    """Make a rename/unlink/mkdir in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_regular_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except FileNotFoundError:
        return False
