"""A separate OS process that appends audit events, for the concurrency tests.

Usage: python -m tests.audit.writer COUNT BARRIER_DIR LABEL
Settings come from the environment (DJANGO_SETTINGS_MODULE, DATABASE_URL). Every
writer connects first, says so with a `ready-LABEL` file in BARRIER_DIR, then waits
for the test's `go` file there, so they all append at once however slowly each
process started. Each event is its own transaction; every third one shares a
transaction with a second event to exercise multi-event transactions too.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

GO_TIMEOUT_SECONDS = 120


def wait_for_go(barrier: Path, label: str) -> None:
    (barrier / f"ready-{label}").touch()
    deadline = time.monotonic() + GO_TIMEOUT_SECONDS
    while not (barrier / "go").exists():
        if time.monotonic() > deadline:
            sys.exit(f"{label}: no go signal within {GO_TIMEOUT_SECONDS} s")
        time.sleep(0.002)


def main(count: int, barrier: Path, label: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from audit.actions import AuditAction
    from audit.services import record_event

    connection.ensure_connection()
    wait_for_go(barrier, label)
    written = 0
    while written < count:
        with transaction.atomic():
            record_event(AuditAction.CERTIFICATE_ISSUE, actor_label=label, target_id=str(written))
            written += 1
            if written % 3 == 0 and written < count:
                record_event(AuditAction.CRL_GENERATE, actor_label=label, target_id=str(written))
                written += 1


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
