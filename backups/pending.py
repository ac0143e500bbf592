"""Uploaded backups waiting for their confirmation: the restore's second step over HTTP.

`POST /admin/restore/database` with a file validates it and answers a preview; the upload waits
here, under a random token, until the same global admin confirms it (typing the phrase the
preview asked for) or an hour has passed. Each admin has at most one waiting upload: a new one
replaces it. The directory sits beside the data directory (0700, files 0600), so a restore's
exchange of the data directory never touches it and a backup never copies it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from backups.errors import BackupError

MAX_AGE_SECONDS = 3600
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class PendingRestore:
    token: str
    user_id: int
    created_at: float
    digest: str
    confirmation_phrase: str
    audit_trail: str
    archive: Path

    def meta(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("archive")
        return data


def pending_dir() -> Path:
    data_dir = Path(settings.PKI_DATA_DIR).resolve()
    return data_dir.parent / f".{data_dir.name}.pending-restores"  # not ".restore-*": staging dirs are swept


def _paths(token: str) -> tuple[Path, Path]:
    directory = pending_dir()
    return directory / f"{token}.zip", directory / f"{token}.json"


def stash(upload: Path, *, user_id: int, digest: str, confirmation_phrase: str, audit_trail: str) -> PendingRestore:
    """Move the validated upload into the pending directory; the user's earlier pending upload goes."""
    directory = pending_dir()
    directory.mkdir(mode=0o700, exist_ok=True)
    sweep(user_id=user_id)
    token = secrets.token_hex(16)
    archive, meta = _paths(token)
    shutil.move(str(upload), archive)
    os.chmod(archive, 0o600)
    pending = PendingRestore(token, user_id, time.time(), digest, confirmation_phrase, audit_trail, archive)
    fd = os.open(meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(pending.meta(), handle)
    return pending


def take(token: str, *, user_id: int) -> PendingRestore:
    """The pending upload `token` of `user_id`; refused (and never another user's) when unknown or expired."""
    unknown = BackupError("There is no backup waiting for this confirmation (it expired after an hour, was "
                          "replaced by a newer upload, or was already restored): upload it again.",
                          code="no_pending_restore")
    if not isinstance(token, str) or not _TOKEN.match(token):
        raise unknown
    archive, meta = _paths(token)
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        pending = PendingRestore(archive=archive, **data)
    except (OSError, ValueError, TypeError):
        raise unknown from None
    if pending.user_id != user_id or time.time() - pending.created_at > MAX_AGE_SECONDS or not archive.exists():
        raise unknown
    return pending


def discard(pending: PendingRestore) -> None:
    for path in _paths(pending.token):
        path.unlink(missing_ok=True)


def sweep(*, user_id: int | None = None) -> int:
    """Remove expired uploads (and, with `user_id`, that user's); returns how many went."""
    directory = pending_dir()
    removed = 0
    if not directory.is_dir():
        return removed
    for meta in directory.glob("*.json"):
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads(meta.read_text(encoding="utf-8"))
            if data.get("user_id") == user_id or time.time() - float(data["created_at"]) > MAX_AGE_SECONDS:
                meta.with_suffix(".zip").unlink(missing_ok=True)
                meta.unlink(missing_ok=True)
                removed += 1
    return removed
