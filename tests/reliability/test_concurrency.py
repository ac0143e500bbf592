"""Several real processes at once, on PostgreSQL (a throw-away database) and on a SQLite file.

Issuers racing on one intermediate get unique serials and leave one intact audit chain
with one event per certificate; revocations racing CRL generation never lose an entry
and CRL numbers never repeat; two restores at once are refused.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.reliability.installations import Installation, StartingLine, finish

ISSUERS = {"postgres": 4, "sqlite": 3}  # odd ones with server keys (slower: PKCS#12), even ones from CSRs
PER_ISSUER = 10


def assert_consistent(installation: Installation) -> dict:
    status, report = installation.consistency()
    assert report["errors"] == 0, report["findings"]
    assert status == 0
    return report


def test_parallel_issuers_get_unique_serials_and_one_intact_audit_chain(installation: Installation,
                                                                        tmp_path: Path) -> None:
    installation.worker("setup", "--ca", "parallel-issuing")
    line, count = StartingLine(tmp_path), ISSUERS[installation.engine]
    processes = [line.spawn(installation, "issue", "--ca", "parallel-issuing", "--count", str(PER_ISSUER),
                            "--label", f"p{index}", *(["--server-key"] if index % 2 else []))  # PKCS#12 too
                 for index in range(count)]
    line.release()
    outputs = [finish(process) for process in processes]

    total = count * PER_ISSUER
    [summary] = installation.worker("summary", "--ca", "parallel-issuing")
    assert len(set(summary["serials"])) == total
    assert len(set(summary["fingerprints"])) == total
    assert summary["issue_events"] == total  # one event per certificate, none lost, none doubled
    assert summary["audit_ok"]
    assert _overlapping([_busy_window(output) for output in outputs]), "the issuers never issued at the same time"
    assert_consistent(installation)


def _busy_window(output: list[dict]) -> tuple[float, float]:
    """From the moment a process began its first issuance to the moment its last one returned."""
    return min(line["began"] for line in output), max(line["ended"] for line in output)


def _overlapping(windows: list[tuple[float, float]]) -> bool:
    """True when some two processes were inside issuance at the same time: they contended.

    Times rather than row ids: on SQLite writers queue on the database lock and its busy
    handler is not fair (a waiter sleeps while the holder's next BEGIN IMMEDIATE wins), so one
    process may commit its whole batch before another gets in, and interleaved ids would be luck.
    """
    return any(a[0] < b[1] and b[0] < a[1] for a, b in itertools.combinations(windows, 2))


def test_revocations_racing_crl_generation_lose_no_entry_and_never_repeat_a_number(
        installation: Installation, tmp_path: Path) -> None:
    installation.worker("setup", "--ca", "racing-crls")
    ids = [line["id"] for line in installation.worker("issue", "--ca", "racing-crls", "--count", "16")]
    start = StartingLine(tmp_path)
    revokers = [start.spawn(installation, "revoke", "--ids", ",".join(map(str, half)))
                for half in (ids[0::2], ids[1::2])]
    signers = [start.spawn(installation, "crl", "--ca", "racing-crls", "--count", "6") for _ in range(2)]
    start.release()
    revoked_serials = {serial for process in revokers for line in finish(process) for serial in line["revoked"]}
    signed = [line["number"] for process in signers for line in finish(process)]
    assert len(set(signed)) == len(signed) == 12

    installation.worker("crl", "--ca", "racing-crls", "--count", "1")  # once more at the end, as cron would
    [summary] = installation.worker("summary", "--ca", "racing-crls")
    assert len(revoked_serials) == 16
    assert set(summary["revoked"]) == revoked_serials
    assert revoked_serials <= set(summary["latest_crl_serials"]), "the final CRL lost a revocation"
    numbers = summary["crl_numbers"]
    assert len(numbers) == len(set(numbers)), "a CRL number was used twice"
    assert summary["latest_crl"] == max(numbers) <= summary["crl_counter"]
    assert summary["revoke_events"] == 16
    assert summary["audit_ok"]
    assert_consistent(installation)


def test_a_second_restore_is_refused_while_one_runs(installation: Installation, tmp_path: Path) -> None:
    """On this host (flock beside the data directory) and, on PostgreSQL, from another host sharing the database."""
    archive = tmp_path / "backup.zip"
    installation.ok("backup_database", "--output", str(archive))
    holder = installation.spawn("hold-restore-lock", "--seconds", "60")
    try:
        assert holder.stdout.readline().strip() == '{"locked": true}'
        same_host = installation.manage("restore_database", str(archive), "--yes")
        assert same_host.returncode == 1
        assert "Another restore or backup is running" in same_host.stderr
        assert "Traceback" not in same_host.stderr
        if installation.engine == "postgres":  # another host: its own data directory, the same database
            other_host = installation.manage("restore_database", str(archive), "--yes",
                                             PKI_DATA_DIR=str(tmp_path / "other-host-data"))
            assert other_host.returncode == 1
            assert "Another restore or backup is running" in other_host.stderr
    finally:
        holder.kill()
        holder.communicate(timeout=30)
    restored = installation.manage("restore_database", str(archive), "--yes")
    assert restored.returncode == 0, restored.stderr  # the kernel and the server released the dead holder's locks
    assert_consistent(installation)
