"""Helpers for the backup tests: state fingerprints and archive surgery."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

from django.db import connection

from backups.archive import MANIFEST, backup_tables, encode_row
from backups.integrity import manifest_mac
from backups.services import create_backup
from pki_project.actor import Actor


def database_fingerprint() -> dict[str, object]:
    """Every row of every table (sessions too) in primary-key order, plus the triggers: the whole DB state
    (but the audit events of refused restores, which are meant to be there)."""
    from django.contrib.sessions.models import Session
    from django.db import models

    state: dict[str, object] = {}
    for spec in backup_tables():
        rows = models.QuerySet(model=spec.model).order_by("pk")
        if spec.label == "audit.auditevent":  # a refused restore is recorded: `restore_refusals` counts those
            rows = rows.exclude(action="backup.restore", outcome="failure")
        rows = rows.values_list(*spec.columns)
        state[spec.label] = [encode_row(spec.fields, row).decode() for row in rows]
    state["sessions"] = sorted(Session.objects.values_list("session_key", flat=True))
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        else:
            cursor.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname")
        state["schema"] = [list(row) for row in cursor.fetchall()]
    return state


def restore_refusals() -> list[str]:
    """The codes of the refused restores recorded in the audit trail, oldest first."""
    from audit.models import AuditEvent

    events = AuditEvent.objects.filter(action="backup.restore", outcome="failure").order_by("seq")
    return [event.details.get("code", "") for event in events]


def directory_fingerprint(directory: Path) -> dict[str, str]:
    """Relative path -> SHA-256 (or 'dir'/'link') of everything under `directory`."""
    result: dict[str, str] = {}
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            result[os.path.relpath(os.path.join(root, name), directory)] = "dir"
        for name in files:
            path = Path(root) / name
            relative = os.path.relpath(path, directory)
            result[relative] = "link" if path.is_symlink() else hashlib.sha256(path.read_bytes()).hexdigest()
    return result


def live_state(data_dir: Path) -> tuple[dict[str, object], dict[str, str], list[str]]:
    """Database, data directory, and the restore-related entries beside the data directory."""
    siblings = sorted(
        entry.name for entry in data_dir.parent.iterdir()
        if entry.name.startswith(f".{data_dir.name}.")
        and not entry.name.endswith((".restore.lock", ".audit-anchor.json", ".pending-restores"))  # meant to stay
    )
    return database_fingerprint(), directory_fingerprint(data_dir), siblings


def make_backup(path: Path, actor: Actor | None = None) -> Path:
    with path.open("wb") as handle:
        create_backup(handle, actor or Actor.operator("tests"))
    return path


def read_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def write_members(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]], *,
                  rehash: bool = True, sign: bool = True,
                  tweak: Callable[[zipfile.ZipInfo], None] | None = None) -> Path:
    """Write members (manifest last); with `rehash` the manifest's hashes are recomputed to match.

    `sign` then MACs the rewritten manifest with this installation's key: an attacker who holds
    the secrets, which is what it takes to reach the checks after the manifest's. `sign=False` is
    everyone else (a global admin editing a downloaded backup).
    """
    items = list(members.items()) if isinstance(members, dict) else list(members)
    if rehash:
        manifest = json.loads(dict(items)[MANIFEST])
        manifest["members"] = {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in items if name != MANIFEST
        }
        if sign:
            manifest["mac"] = manifest_mac(manifest)
        items = [(n, d) for n, d in items if n != MANIFEST] + [(MANIFEST, json.dumps(manifest).encode())]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in items:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o100600 << 16
            info.create_system = 3
            if tweak is not None:
                tweak(info)
            archive.writestr(info, data)
    path.write_bytes(buffer.getvalue())
    return path


def with_manifest(members: dict[str, bytes], change: Callable[[dict], None], *, sign: bool = True) -> dict[str, bytes]:
    """The members with the manifest changed (and, with `sign`, MACed again as a key holder would)."""
    manifest = json.loads(members[MANIFEST])
    change(manifest)
    if sign:
        manifest["mac"] = manifest_mac(manifest)
    return {**members, MANIFEST: json.dumps(manifest).encode()}
