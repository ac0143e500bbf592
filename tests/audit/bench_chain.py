"""Benchmark: append throughput and verification speed/memory of the audit chain. Prints figures.

    .venv/bin/python -m tests.audit.bench_chain                      # temporary SQLite file
    .venv/bin/python -m tests.audit.bench_chain --events 1000000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pki_bench .venv/bin/python -m tests.audit.bench_chain

The database must be a scratch one: the benchmark refuses an audit table that holds events.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path


def _configure() -> None:
    from tests.helpers import VALID_SECRETS

    for name, value in VALID_SECRETS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PKI_DATA_DIR", tempfile.mkdtemp(prefix="pki-bench-data-"))
    os.environ.setdefault("PKI_ENV_FILE", str(Path(tempfile.mkdtemp()) / "none.env"))
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(tempfile.mkdtemp(prefix='pki-bench-')) / 'bench.db'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "pki_project.settings"
    import django

    django.setup()


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _synthetic_chain(start_seq: int, prev_hash: str, count: int) -> Iterator[dict[str, object]]:
    """Well-formed events, hashed exactly as record_event would, generated lazily."""
    from audit.canonical import FORMAT_VERSION, compute_hash

    moment = datetime(2026, 1, 1, tzinfo=UTC)
    for offset in range(count):
        record: dict[str, object] = {
            "v": FORMAT_VERSION, "seq": start_seq + offset, "prev_hash": prev_hash,
            "created_at": moment + timedelta(milliseconds=offset), "action": "certificate.issue",
            "outcome": "success", "actor_user_id": 1, "actor_username": "bench", "actor_api_key_id": 1,
            "actor_role": "manager", "actor_label": "", "organization_id": 1, "organization_slug": "bench",
            "target_type": "certificate", "target_id": str(offset), "target_serial": f"{offset:040x}",
            "source_ip": "192.0.2.1", "user_agent": "bench/1.0", "details": {"profile": "server", "n": offset},
        }
        record["hash"] = prev_hash = compute_hash(record)
        yield record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--appends", type=int, default=1000, help="events written one by one with record_event")
    parser.add_argument("--events", type=int, default=200_000, help="events bulk-loaded before verifying")
    args = parser.parse_args()
    _configure()

    from django.core.management import call_command
    from django.db import connection

    from audit.actions import AuditAction
    from audit.maintenance import _bulk_insert, triggers_suspended
    from audit.models import AuditEvent
    from audit.services import record_event
    from audit.verification import verify_chain

    call_command("migrate", verbosity=0)
    if AuditEvent.objects.exists():
        sys.exit("The audit table is not empty: point DATABASE_URL at a scratch database.")
    print(f"backend: {connection.vendor}")

    started = time.perf_counter()
    for index in range(args.appends):
        record_event(AuditAction.CERTIFICATE_ISSUE, actor_label="bench", target_id=str(index))
    elapsed = time.perf_counter() - started
    print(f"record_event: {args.appends} appends in {elapsed:.2f} s = {args.appends / elapsed:,.0f} events/s "
          f"({elapsed / args.appends * 1000:.2f} ms each, one transaction per event)")

    head = AuditEvent.objects.newest_first().values("seq", "hash").first()
    started = time.perf_counter()
    with triggers_suspended():
        _bulk_insert((AuditEvent(version=r.pop("v"), **r) for r in _synthetic_chain(head["seq"] + 1, head["hash"],
                                                                                    args.events)), "default")
    print(f"bulk load: {args.events:,} events in {time.perf_counter() - started:.1f} s; "
          f"peak RSS so far {_peak_rss_mib():.0f} MiB")

    started = time.perf_counter()
    result = verify_chain()
    elapsed = time.perf_counter() - started
    assert result.ok, result.broken
    print(f"verify_chain: {result.count:,} events in {elapsed:.1f} s = {result.count / elapsed:,.0f} events/s; "
          f"peak RSS {_peak_rss_mib():.0f} MiB")
    if connection.vendor == "postgresql":
        from audit.maintenance import delete_all_events

        delete_all_events()
        print("scratch events deleted")


if __name__ == "__main__":
    main()
