"""A separate OS process that appends audit events, for the concurrency tests.

Usage: python -m tests.audit.writer COUNT START_AT LABEL
Settings come from the environment (DJANGO_SETTINGS_MODULE, DATABASE_URL). Every
writer connects first, then waits for the shared START_AT moment so they all
append at once; each event is its own transaction, every third one shares a
transaction with a second event to exercise multi-event transactions too.
"""

from __future__ import annotations

import os
import sys
import time


def main(count: int, start_at: float, label: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    from audit.actions import AuditAction
    from audit.services import record_event

    connection.ensure_connection()
    time.sleep(max(0.0, start_at - time.time()))
    written = 0
    while written < count:
        with transaction.atomic():
            record_event(AuditAction.CERTIFICATE_ISSUE, actor_label=label, target_id=str(written))
            written += 1
            if written % 3 == 0 and written < count:
                record_event(AuditAction.CRL_GENERATE, actor_label=label, target_id=str(written))
                written += 1


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])
