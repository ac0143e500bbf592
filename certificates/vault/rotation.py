"""Rotation of PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT: re-seal every artifact's outer layer.

Crash safety comes from three properties, not from a transaction:

* every file is rewritten atomically (temp + fsync + rename), so each file is
  always entirely under the old key or entirely under the new one;
* a file's header names the key that sealed it, so a re-run skips what is done
  without a trial decryption, and a file under neither key is reported by path
  instead of being guessed at;
* a journal (``.rotation.json`` in the data dir; not secret, only key ids and
  counts) records which rotation is under way. While it exists, a rotation to a
  *different* key is refused: that would leave artifacts under three keys. It is
  removed only after every artifact was verified to be under the new key.

Inner envelopes (the CA key-encryption layer) do not depend on the master key
and are left untouched, so cached intermediate keys stay valid.

The application must not write artifacts while a rotation runs (stop it, or run
the command in maintenance mode); :func:`read_rotation_journal` lets the service
layer's readiness check refuse to serve while a journal exists.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .at_rest import ArtifactCipher, parse_header
from .errors import ArtifactCorrupt, ArtifactTampered, RotationError, RotationInProgress, RotationInterrupted
from .storage import ArtifactStore, atomic_write_file, fsync_directory

__all__ = [
    "JOURNAL_FILENAME",
    "RotationJournal",
    "RotationReport",
    "read_rotation_journal",
    "rotate_artifacts",
]

JOURNAL_FILENAME = ".rotation.json"
JOURNAL_FORMAT = "pki-vault-rotation/1"
_CHECKPOINT_EVERY = 25  # journal counts are informational; don't fsync it after every file

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True, slots=True)
class RotationReport:
    """What one run of :func:`rotate_artifacts` did."""

    rotated: int  # files re-sealed by this run
    already_done: int  # files found already under the new key (a resumed rotation)
    old_key_id: str
    new_key_id: str
    resumed: bool  # a journal from an interrupted run was found

    @property
    def total(self) -> int:
        return self.rotated + self.already_done


@dataclass(frozen=True, slots=True)
class RotationJournal:
    """The on-disk record of a rotation in progress (key ids are public header values)."""

    format: str
    old_key_id: str
    new_key_id: str
    started_at: str
    updated_at: str
    total: int
    rotated: int
    already_done: int

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode() + b"\n"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _journal_path(data_dir: Path) -> Path:
    return data_dir / JOURNAL_FILENAME


def read_rotation_journal(data_dir: Path | str) -> RotationJournal | None:
    """The journal of an unfinished rotation, or None. An unreadable journal is an error, not "none"."""
    path = _journal_path(Path(data_dir))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        journal = RotationJournal(**json.loads(raw))
    except (ValueError, TypeError) as exc:
        raise RotationError(f"The rotation journal {JOURNAL_FILENAME} is unreadable; inspect it by hand.") from exc
    if journal.format != JOURNAL_FORMAT:
        raise RotationError(f"The rotation journal {JOURNAL_FILENAME} has an unknown format {journal.format!r}.")
    return journal


def _write_journal(data_dir: Path, journal: RotationJournal) -> None:
    atomic_write_file(_journal_path(data_dir), journal.to_json())


def _remove_journal(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        _journal_path(data_dir).unlink()
    fsync_directory(data_dir)


def _begin(data_dir: Path, old_id: str, new_id: str, total: int) -> tuple[RotationJournal, bool]:
    """Start a rotation or resume the one in the journal; refuse a different one."""
    journal = read_rotation_journal(data_dir)
    if journal is None:
        now = _now()
        journal = RotationJournal(JOURNAL_FORMAT, old_id, new_id, now, now, total, 0, 0)
        _write_journal(data_dir, journal)
        return journal, False
    if journal.new_key_id != new_id:
        raise RotationInProgress(
            f"A rotation to key id {journal.new_key_id} (started {journal.started_at}) has not completed; "
            f"re-run it with that PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT as the new key before rotating to "
            f"key id {new_id}."
        )
    if journal.old_key_id != old_id:
        raise RotationInProgress(
            f"The rotation in progress started from key id {journal.old_key_id}, not {old_id}; "
            "re-run it with the original PKI_ENCRYPTION_KEY/PKI_ENCRYPTION_SALT as the old key."
        )
    return journal, True


def _rotate_one(store_old: ArtifactStore, store_new: ArtifactStore, relpath: str) -> bool:
    """Re-seal one file; True if rewritten, False if it was already under the new key."""
    old, new = store_old.cipher, store_new.cipher
    try:
        blob = store_old.read_blob(relpath)
        key_id = parse_header(blob, relpath).key_id
        if key_id == new.key_id:
            return False
        if key_id != old.key_id:
            raise RotationError(
                f"{relpath} is sealed under key id {key_id.hex()}, neither the old ({old.key_id.hex()}) "
                f"nor the new ({new.key_id.hex()}) key; rotation stopped, nothing was lost, the journal is kept."
            )
        store_new.write(relpath, old.decrypt(blob, relpath))
        return True
    except (ArtifactCorrupt, ArtifactTampered) as exc:
        raise RotationError(f"Cannot rotate {relpath}: {exc} Rotation stopped; the journal is kept.") from None


def _verify_all_new(store_new: ArtifactStore) -> None:
    """Before dropping the journal, make sure no artifact is left under another key."""
    for relpath in store_new.iter_artifacts():
        key_id = store_new.header(relpath).key_id
        if key_id != store_new.cipher.key_id:
            raise RotationError(
                f"{relpath} is still sealed under key id {key_id.hex()} (written during the rotation?); "
                "re-run the rotation with the application stopped."
            )


def rotate_artifacts(
    data_dir: Path | str,
    old_cipher: ArtifactCipher,
    new_cipher: ArtifactCipher,
    progress: ProgressCallback | None = None,
    fail_after: int | None = None,
) -> RotationReport:
    """Re-seal every artifact under ``data_dir`` from ``old_cipher`` to ``new_cipher``.

    Resumable: re-running after a crash at any point finishes the job.
    ``progress(done, total, relpath)`` is called after each file. ``fail_after=k``
    is a test hook: raise ``RotationInterrupted`` after k files were re-sealed by
    this run, as if the process had been killed.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise RotationError(f"The data directory {data_dir} does not exist.")
    if old_cipher.key_id == new_cipher.key_id:
        raise RotationError("The new encryption key is the same as the current one; nothing to rotate.")
    store_old, store_new = ArtifactStore(data_dir, old_cipher), ArtifactStore(data_dir, new_cipher)
    relpaths = list(store_old.iter_artifacts())
    journal, resumed = _begin(data_dir, old_cipher.key_id.hex(), new_cipher.key_id.hex(), len(relpaths))

    rotated = already_done = 0
    for index, relpath in enumerate(relpaths, start=1):
        if fail_after is not None and rotated >= fail_after:
            raise RotationInterrupted(f"Simulated crash after {rotated} re-sealed file(s).")
        if _rotate_one(store_old, store_new, relpath):
            rotated += 1
        else:
            already_done += 1
        if progress is not None:
            progress(index, len(relpaths), relpath)
        if index % _CHECKPOINT_EVERY == 0:
            _write_journal(
                data_dir,
                RotationJournal(
                    JOURNAL_FORMAT, journal.old_key_id, journal.new_key_id, journal.started_at, _now(),
                    len(relpaths), rotated, already_done,
                ),
            )  # fmt: skip

    _verify_all_new(store_new)
    _remove_journal(data_dir)
    return RotationReport(rotated, already_done, journal.old_key_id, journal.new_key_id, resumed)
