"""Memory does not grow with the backup's size: rows and files stream through fixed-size buffers.

A coarse bound, not a timing: the Python heap's peak while writing a backup four
times larger (rows and artifact bytes) stays close to the smaller one's.
"""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from backups.services import create_backup
from certificates.keystore import artifact_store
from organizations.models import Organization
from pki_project.actor import Actor

MIB = 1024 * 1024


def grow(rows: int, artifact_bytes: int, tag: str) -> None:
    Organization.objects.bulk_create(
        [Organization(name=f"{tag} organization {n}", slug=f"{tag}-{n}") for n in range(rows)], batch_size=1000)
    artifact_store().write(f"bulk/{tag}.pem.enc", os.urandom(artifact_bytes))


def backup_peak(path: Path) -> int:
    tracemalloc.start()
    try:
        with path.open("wb") as handle:
            create_backup(handle, Actor.operator("tests"))
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_backup(db, tmp_path: Path) -> None:
    grow(3000, 2 * MIB, "small")
    small = backup_peak(tmp_path / "small.zip")
    grow(9000, 6 * MIB, "large")  # now four times the rows and artifact bytes
    large = backup_peak(tmp_path / "large.zip")
    assert (tmp_path / "large.zip").stat().st_size > 3 * (tmp_path / "small.zip").stat().st_size
    assert large < small * 1.5 + MIB, (small, large)


def test_peak_memory_figures_are_printed(db, tmp_path: Path, capsys) -> None:
    """Prints the figures (for the record; no assertion on them)."""
    grow(1000, MIB, "figures")
    peak = backup_peak(tmp_path / "figures.zip")
    with capsys.disabled():
        print(f"\nbackup of {Organization.objects.count()} organizations and "
              f"{(tmp_path / 'figures.zip').stat().st_size} archive bytes: Python heap peak {peak / MIB:.1f} MiB")
