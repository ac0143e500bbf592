"""verify_audit_log names the first broken link for every kind of tampering done in raw SQL."""

# ruff: noqa: S608  (the SQL is the attacker's, built from constants)

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.core.management import call_command

from audit.anchor import anchor_path
from audit.keys import audit_keys_for
from audit.models import AuditEvent
from audit.services import record_event
from audit.verification import Checkpoint, verify_chain
from tests.audit.helpers import build_chain, record_of, rehash, rewrite_from, run_verify, tamper

pytestmark = pytest.mark.django_db

TABLE = "audit_auditevent"
SHIFT = 1_000_000


def edit_a_field() -> None:
    tamper((f"UPDATE {TABLE} SET target_id = %s WHERE seq = 3", ["999"]))


def edit_details() -> None:
    tamper((f"UPDATE {TABLE} SET details = %s WHERE seq = 3", ['{"n": 4}']))


def edit_and_rehash() -> None:
    """A cleverer attacker re-computes the edited event's own hash: its MAC no longer matches."""
    record = record_of(3) | {"outcome": "failure"}
    tamper((f"UPDATE {TABLE} SET outcome = %s, hash = %s WHERE seq = 3", ["failure", rehash(record)]))


def rehash_everything_after_an_edit() -> None:
    """A database owner who knows the recipe rewrites seq 2 and re-hashes the rest consistently."""
    rewrite_from(2, {"outcome": "failure"}, with_key=False)


def delete_one_and_rehash() -> None:
    """Drop the triggers, delete an event (a failed login, say), renumber and re-hash what follows."""
    tamper((f"DELETE FROM {TABLE} WHERE seq = 3", []),  # renumbered in two steps: seq is unique on every row
           (f"UPDATE {TABLE} SET seq = seq + %s WHERE seq > 3", [SHIFT]),
           (f"UPDATE {TABLE} SET seq = seq - %s WHERE seq > %s", [SHIFT + 1, SHIFT]))
    rewrite_from(3, {}, with_key=False)


def delete_one() -> None:
    tamper((f"DELETE FROM {TABLE} WHERE seq = 3", []))


def swap_two() -> None:
    tamper(
        (f"UPDATE {TABLE} SET seq = %s WHERE seq = 3", [SHIFT]),
        (f"UPDATE {TABLE} SET seq = 3 WHERE seq = 4", []),
        (f"UPDATE {TABLE} SET seq = 4 WHERE seq = %s", [SHIFT]),
    )


def insert_one_in_the_middle() -> None:
    """Renumber from seq 3 on and slip a forged, correctly hashed event in at seq 3."""
    forged = record_of(2) | {"seq": 3, "prev_hash": record_of(2)["hash"], "target_id": "forged", "id": None}
    forged["hash"] = rehash(forged)
    tamper(
        (f"UPDATE {TABLE} SET seq = seq + %s WHERE seq >= 3", [SHIFT]),
        (f"UPDATE {TABLE} SET seq = seq - %s WHERE seq >= %s", [SHIFT - 1, SHIFT]),
        (f"INSERT INTO {TABLE} (seq, version, created_at, action, outcome, actor_user_id, actor_username, "
         "actor_api_key_id, actor_role, actor_label, organization_id, organization_slug, target_type, target_id, "
         "target_serial, source_ip, user_agent, details, prev_hash, hash, mac) "
         "SELECT 3, version, created_at, action, outcome, actor_user_id, actor_username, actor_api_key_id, "
         "actor_role, actor_label, organization_id, organization_slug, target_type, %s, target_serial, source_ip, "
         f"user_agent, details, %s, %s, mac FROM {TABLE} WHERE seq = 2",
         ["forged", forged["prev_hash"], forged["hash"]]),
    )


def append_a_forged_event() -> None:
    """Linked to the head but hashed wrongly (an attacker without the recipe)."""
    last = record_of(6)
    tamper((f"INSERT INTO {TABLE} (seq, version, created_at, action, outcome, actor_label, actor_username, "
            "actor_role, organization_slug, target_type, target_id, target_serial, source_ip, user_agent, details, "
            "prev_hash, hash, mac) VALUES (7, 1, %s, 'auth.login', 'success', '', '', '', '', '', '', '', '', '', "
            "'{}', %s, %s, %s)", [last["created_at"], last["hash"], "e" * 64, "e" * 64]))


@pytest.mark.parametrize(
    ("tampering", "seq", "kind"),
    [
        (edit_a_field, 3, "edited"),
        (edit_details, 3, "edited"),
        (edit_and_rehash, 3, "forged"),
        (rehash_everything_after_an_edit, 2, "forged"),
        (delete_one, 3, "missing"),
        (delete_one_and_rehash, 3, "forged"),
        (swap_two, 3, "moved"),
        (insert_one_in_the_middle, 3, "forged"),
        (append_a_forged_event, 7, "edited"),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_tampering_is_reported_at_the_first_broken_link(tampering: Callable[[], None], seq: int, kind: str) -> None:
    build_chain()
    assert run_verify().exit_code == 0
    tampering()

    run = run_verify()

    assert run.exit_code == 1
    assert f"BROKEN at seq {seq} " in run.stderr
    assert kind in run.stderr
    json_run = run_verify("--json")
    report = json.loads(json_run.stdout)
    broken = report["broken"]
    assert (json_run.exit_code, report["ok"], broken["seq"], broken["kind"]) == (1, False, seq, kind)
    assert report["count"] == seq - 1


def test_broken_link_names_the_event_id() -> None:
    events = build_chain()
    edit_a_field()
    broken = verify_chain().broken
    assert broken is not None
    assert (broken.seq, broken.event_id) == (3, events[2].pk)
    assert "edited" in broken.message


def test_intact_chain_exits_zero_with_the_count() -> None:
    events = build_chain()
    run = run_verify()
    assert run.exit_code == 0
    assert f"intact: 6 events, head seq 6 hash {events[-1].hash}" in run.stdout
    report = json.loads(run_verify("--json").stdout)
    assert (report["ok"], report["count"], report["head_hash"]) == (True, 6, events[-1].hash)


def test_empty_chain_is_intact() -> None:
    run = run_verify("--json")
    assert run.exit_code == 0
    assert json.loads(run.stdout)["count"] == 0


class TestCheckpoints:
    def test_checkpoint_written_and_later_verified(self, tmp_path: Path) -> None:
        build_chain()
        checkpoint = tmp_path / "checkpoint.json"
        assert run_verify("--checkpoint-out", str(checkpoint)).exit_code == 0
        data = json.loads(checkpoint.read_text())
        assert (data["head_seq"], data["count"], data["head_hash"]) == (6, 6, AuditEvent.objects.get(seq=6).hash)
        assert data["created_at"].endswith("Z")
        record_event(AuditEvent.objects.get(seq=1).action)  # the chain grows after the checkpoint

        run = run_verify("--checkpoint", str(checkpoint))

        assert run.exit_code == 0, run.stderr
        assert "matches the checkpoint at seq 6" in run.stdout

    def test_deleting_the_tail_is_caught_by_the_anchor_and_a_checkpoint(self, tmp_path: Path) -> None:
        build_chain()
        checkpoint = tmp_path / "checkpoint.json"
        run_verify("--checkpoint-out", str(checkpoint))  # also moves the installation's anchor to seq 6
        tamper((f"DELETE FROM {TABLE} WHERE seq >= 5", []))

        run = run_verify()

        assert run.exit_code == 1, "the anchor beside the data directory still says seq 6"
        assert "BROKEN at seq 5 " in run.stderr
        assert "truncated" in run.stderr
        anchor_path().unlink()  # an attacker with disk access too
        assert run_verify().exit_code == 0, "a shortened chain is still internally consistent"
        run = run_verify("--checkpoint", str(checkpoint))
        assert run.exit_code == 1
        assert "BROKEN at seq 5 " in run.stderr
        assert "truncated" in run.stderr

    def test_a_rewrite_with_the_key_is_caught_by_an_off_site_checkpoint(self, tmp_path: Path) -> None:
        """An attacker with the database, the secrets and the disk: only what is kept elsewhere notices."""
        build_chain()
        checkpoint = tmp_path / "checkpoint.json"
        run_verify("--checkpoint-out", str(checkpoint))
        rewrite_from(2, {"outcome": "failure"}, with_key=True)
        assert "checkpoint_mismatch" in run_verify().stderr  # the anchor
        anchor_path().unlink()
        assert run_verify().exit_code == 0

        run = run_verify("--checkpoint", str(checkpoint))

        assert run.exit_code == 1
        assert "BROKEN at seq 6 " in run.stderr
        assert "checkpoint_mismatch" in run.stderr

    def test_checkpoints_are_signed_and_an_edited_one_is_refused(self, tmp_path: Path) -> None:
        build_chain()
        path = tmp_path / "checkpoint.json"
        run_verify("--checkpoint-out", str(path))
        data = json.loads(path.read_text())
        assert data["format"] == "pki-audit-checkpoint/2"
        message = json.dumps({k: v for k, v in data.items() if k != "signature"}, sort_keys=True,
                             separators=(",", ":")).encode()
        # Anyone with the public key (verify_audit_log --public-key) checks it with cryptography alone.
        public = load_pem_public_key(run_verify("--public-key").stdout.encode())
        public.verify(base64.b64decode(data["signature"]), message)
        path.write_text(json.dumps(data | {"count": 5, "head_seq": 5, "head_hash": record_of(5)["hash"]}))

        run = run_verify("--checkpoint", str(path))

        assert run.exit_code == 1
        assert "checkpoint_signature" in run.stderr

    def test_a_checkpoint_of_another_installation_is_refused(self, tmp_path: Path, settings) -> None:
        build_chain()
        path = tmp_path / "checkpoint.json"
        stranger = audit_keys_for("another installation's encryption key 0123456789", "another salt 0123456")
        head = record_of(6)
        path.write_text(Checkpoint.signed(stranger, head_seq=6, head_hash=head["hash"], count=6).to_json())

        run = run_verify("--checkpoint", str(path))

        assert run.exit_code == 1
        assert "never had" in run.stderr

    def test_an_unsigned_checkpoint_of_an_earlier_release_still_verifies(self, tmp_path: Path) -> None:
        build_chain()
        path = tmp_path / "checkpoint.json"
        head = record_of(6)
        path.write_text(json.dumps({"format": "pki-audit-checkpoint/1", "head_seq": 6, "head_hash": head["hash"],
                                    "count": 6, "created_at": "2026-11-01T00:00:00.000000Z"}))
        run = run_verify("--checkpoint", str(path))
        assert run.exit_code == 0, run.stderr
        assert "unsigned" in run.stderr

    def test_a_forged_anchor_is_reported(self) -> None:
        build_chain()
        run_verify()
        anchor_path().write_text('{"format": "pki-audit-checkpoint/1", "head_seq": 1, "head_hash": "'
                                 + "0" * 64 + '", "count": 1, "created_at": "x"}')
        run = run_verify()
        assert run.exit_code == 1
        assert "not signed" in run.stderr

    def test_no_checkpoint_is_written_for_a_broken_chain(self, tmp_path: Path) -> None:
        build_chain()
        delete_one()
        checkpoint = tmp_path / "checkpoint.json"
        assert run_verify("--checkpoint-out", str(checkpoint)).exit_code == 1
        assert not checkpoint.exists()

    def test_an_unreadable_checkpoint_is_a_clear_error(self, tmp_path: Path) -> None:
        bogus = tmp_path / "bogus.json"
        bogus.write_text("{not json")
        from django.core.management.base import CommandError

        with pytest.raises(CommandError, match="not an audit checkpoint"):
            run_verify("--checkpoint", str(bogus))


def test_missing_triggers_are_reported() -> None:
    from django.db import connection

    from audit.triggers import install_triggers, remove_triggers

    build_chain(2)
    assert json.loads(run_verify("--json").stdout)["triggers_installed"] is True
    remove_triggers(connection)
    try:
        run = run_verify()
        assert run.exit_code == 0
        assert "triggers on the audit table are missing" in run.stderr
        assert json.loads(run_verify("--json").stdout)["triggers_installed"] is False
    finally:
        install_triggers(connection)


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("audit.verification.PROGRESS_EVERY", 2)
    build_chain(5)
    terminal = _Terminal()
    call_command("verify_audit_log", stdout=StringIO(), stderr=terminal)
    assert "\rverified 4 of 5 events" in terminal.getvalue()
    assert terminal.getvalue().endswith("\n")
    assert "verified" not in run_verify().stderr, "no progress when stderr is not a terminal"
