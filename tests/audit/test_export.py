"""export_audit_log streams JSON Lines that an outside party verifies with a few lines of Python."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.actions import AuditAction
from audit.maintenance import ChainRestoreError, delete_all_events, replace_all_events
from audit.models import AuditEvent
from audit.services import record_event
from tests.audit.helpers import build_chain, run_verify, tamper

pytestmark = pytest.mark.django_db


def verify_export_as_an_outsider(path: Path) -> tuple[int, str]:
    """The README's recipe, verbatim: no project code, only the standard library."""
    prev_hash, count = "0" * 64, 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line)
            payload = {key: value for key, value in event.items() if key not in ("id", "hash", "mac")}
            canonical = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
            count += 1
            assert event["seq"] == count, f"seq {count} is missing"
            assert event["prev_hash"] == prev_hash, f"seq {count}: prev_hash does not link"
            assert hashlib.sha256(canonical).hexdigest() == event["hash"], f"seq {count}: edited"
            prev_hash = event["hash"]
    return count, prev_hash


def export(*args: str) -> str:
    stdout = StringIO()
    call_command("export_audit_log", *args, stdout=stdout, stderr=StringIO())
    return stdout.getvalue()


def test_full_export_verifies_offline_with_the_readme_recipe(tmp_path: Path) -> None:
    events = build_chain()
    record_event(AuditAction.CRL_GENERATE, details={"ünïcødé": "✓", "big": 2**70, "when": timezone.now()})
    output = tmp_path / "audit.jsonl"
    call_command("export_audit_log", "--output", str(output), stderr=StringIO())

    count, head = verify_export_as_an_outsider(output)

    assert count == 7
    assert head == AuditEvent.objects.get(seq=7).hash
    first = json.loads(output.read_text().splitlines()[0])
    assert (first["id"], first["seq"], first["action"], first["v"]) == (events[0].pk, 1, "organization.create", 1)
    assert first["created_at"].endswith("Z")


def test_export_to_stdout_is_one_json_object_per_line() -> None:
    build_chain(3)
    lines = export().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [1, 2, 3]


def test_export_filters_by_action_and_since() -> None:
    build_chain()
    assert [json.loads(line)["action"] for line in export("--action", "auth.login").splitlines()] == ["auth.login"]
    assert export("--since", (timezone.now() + timedelta(days=1)).date().isoformat()) == ""
    assert len(export("--since", "2000-01-01").splitlines()) == 6
    with pytest.raises(CommandError, match="not an ISO-8601"):
        export("--since", "yesterday")


def test_verify_audit_log_checks_an_export_file(tmp_path: Path) -> None:
    build_chain()
    output = tmp_path / "audit.jsonl"
    call_command("export_audit_log", "--output", str(output), stderr=StringIO())
    assert run_verify("--export", str(output)).exit_code == 0
    lines = output.read_text().splitlines()
    del lines[2]
    output.write_text("\n".join(lines) + "\n")

    run = run_verify("--export", str(output))

    assert run.exit_code == 1
    assert "BROKEN at seq 3 " in run.stderr
    assert "missing" in run.stderr


def test_an_export_line_missing_a_field_is_reported_as_edited(tmp_path: Path) -> None:
    build_chain(3)
    lines = [json.loads(line) for line in export().splitlines()]
    del lines[1]["details"]
    output = tmp_path / "audit.jsonl"
    output.write_text("".join(json.dumps(line) + "\n" for line in lines))

    run = run_verify("--export", str(output))

    assert run.exit_code == 1
    assert "BROKEN at seq 2 " in run.stderr
    assert "edited" in run.stderr


def test_a_file_that_is_not_an_export_is_a_clear_error(tmp_path: Path) -> None:
    output = tmp_path / "notes.txt"
    output.write_text("hello\n")
    with pytest.raises(CommandError, match="not an audit export"):
        run_verify("--export", str(output))


class TestRestorePath:
    def _exported_records(self) -> list[dict]:
        return [json.loads(line) for line in export().splitlines()]

    def test_replace_all_events_loads_a_chain_unchanged_and_appends_continue(self) -> None:
        build_chain()
        records = self._exported_records()
        delete_all_events()
        assert AuditEvent.objects.count() == 0

        result = replace_all_events(records)

        assert (result.ok, result.count) == (True, 6)
        assert [json.loads(line) for line in export().splitlines()] == records
        appended = record_event(AuditAction.BACKUP_RESTORE, actor_label="operator@cli")
        assert (appended.seq, appended.prev_hash) == (7, records[-1]["hash"])
        assert appended.pk > records[-1]["id"], "the id sequence moved past the restored ids"
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent")

    def test_a_broken_chain_is_refused_and_nothing_changes(self) -> None:
        build_chain()
        records = self._exported_records()
        records[1]["outcome"] = "failure"
        tamper(("UPDATE audit_auditevent SET actor_label = %s WHERE seq = 1", ["still-here"]))

        with pytest.raises(ChainRestoreError, match="broken audit chain"):
            replace_all_events(records)

        assert AuditEvent.objects.count() == 6
        assert AuditEvent.objects.get(seq=1).actor_label == "still-here"
