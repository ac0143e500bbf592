"""The installation's own latest checkpoint (the anchor), kept outside the database.

A database owner can drop the triggers and delete the newest events; every remaining
event still verifies, MAC included. The anchor catches that up to its head: a signed
checkpoint written beside the data directory (`.<data dir>.audit-anchor.json`, 0600)
whenever the chain is verified intact (`verify_audit_log`, the API's verify), after a
backup and after a restore, and checked by every database verification. It sits
beside the data directory, not in it, so a restore (which exchanges the data
directory) and a backup (which copies it) leave it where it is.

What it cannot catch: events appended and then deleted between two anchors. Off-site
checkpoints (`verify_audit_log --checkpoint-out`) close that gap as often as they are taken.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from audit.verification import Checkpoint, CheckpointError
from certificates.vault.storage import atomic_write_file


def anchor_path() -> Path:
    data_dir = Path(settings.PKI_DATA_DIR).resolve()
    return data_dir.parent / f".{data_dir.name}.audit-anchor.json"


def read_anchor() -> Checkpoint | None:
    """The anchor, or None when there is none yet; CheckpointError when it is unreadable or unsigned."""
    path = anchor_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise CheckpointError(f"the audit anchor {path.name} cannot be read: {error.strerror}") from None
    anchor = Checkpoint.from_json(text)
    if not anchor.is_signed:
        raise CheckpointError(f"the audit anchor {path.name} is not signed: it was not written by this installation")
    return anchor


def advance_anchor(checkpoint: Checkpoint) -> bool:
    """Write `checkpoint` as the anchor unless the anchor already reaches further; True when written."""
    try:
        current = read_anchor()
    except CheckpointError:
        current = None  # an unreadable anchor was already reported by the verification that led here
    if current is not None and current.head_seq > checkpoint.head_seq:
        return False
    replace_anchor(checkpoint)
    return True


def replace_anchor(checkpoint: Checkpoint) -> None:
    """Write `checkpoint` as the anchor, whatever the anchor said (a restore that replaced the trail)."""
    path = anchor_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(path, checkpoint.to_json().encode("utf-8"))
