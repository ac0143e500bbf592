"""manage.py verify_audit_log: walk the hash chain; exit 1 naming the first broken link."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from django.core.management.base import CommandError, CommandParser
from django.db import connection
from django.db.models import Max

from audit.anchor import advance_anchor
from audit.export import read_export
from audit.keys import audit_keys
from audit.models import AuditEvent
from audit.triggers import triggers_installed
from audit.verification import (
    Checkpoint,
    CheckpointError,
    VerificationResult,
    verify_chain,
    verify_records,
)
from pki_project.cli import JsonCommand


def _open_export(export: Path) -> contextlib.AbstractContextManager[TextIO]:
    """The export file, or standard input for `-` (left open: it is not ours to close)."""
    if str(export) == "-":
        return contextlib.nullcontext(io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8"))
    return export.open(encoding="utf-8")


class Progress:
    """`verified N of M events` rewritten in place on a terminal."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream, self.total, self.shown = stream, total, False

    def __call__(self, count: int) -> None:
        self.stream.write(f"\rverified {count:,} of {self.total:,} events")
        self.stream.flush()
        self.shown = True


class Command(JsonCommand):
    help = (
        "Verify the audit trail from the first event to the last: the hash chain, every event's MAC, the "
        "installation's anchor and an optional signed checkpoint. Exit status 0 and the count when intact (the "
        "anchor then moves up to the head); 1 and the first broken link (seq, event id, what is wrong) otherwise."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--checkpoint", type=Path, metavar="FILE",
                            help="also prove the chain still reaches and ends in this earlier checkpoint's head")
        parser.add_argument("--checkpoint-out", type=Path, metavar="FILE",
                            help="when intact, write a checkpoint of the current head to FILE")
        parser.add_argument("--export", type=Path, metavar="FILE",
                            help="verify a JSON Lines export (export_audit_log; - for stdin) instead of the database")
        parser.add_argument("--public-key", action="store_true",
                            help="print the public key that signs this installation's checkpoints (PEM) and exit")
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["public_key"]:
            self.stdout.write(audit_keys().public_key_pem, ending="")
            return
        checkpoint = self._read_checkpoint(options["checkpoint"])
        result = self._verify(options["export"], checkpoint, quiet=options["json"])
        if result.ok and options["export"] is None:
            advance_anchor(result.make_checkpoint(audit_keys()))
        if result.ok and options["checkpoint_out"]:
            self._write_checkpoint(options["checkpoint_out"], result)
        triggers = None if options["export"] else triggers_installed(connection)
        self._report(result, as_json=options["json"], triggers=triggers)
        if not result.ok:
            sys.exit(1)

    def _read_checkpoint(self, path: Path | None) -> Checkpoint | None:
        if path is None:
            return None
        try:
            return Checkpoint.read(path)
        except CheckpointError as error:
            raise CommandError(str(error)) from None

    def _verify(self, export: Path | None, checkpoint: Checkpoint | None, *, quiet: bool) -> VerificationResult:
        progress = None if quiet else self._progress_printer()
        try:
            if export is None:
                return verify_chain(checkpoint=checkpoint, progress=progress)
            with _open_export(export) as lines:
                return verify_records(read_export(lines), keys=audit_keys(), progress=progress,
                                      checkpoints=[checkpoint] if checkpoint else [])
        except OSError as error:
            raise CommandError(f"cannot read {export}: {error.strerror}") from None
        except ValueError as error:
            raise CommandError(f"{export} is not an audit export: {error}") from None
        finally:
            if progress is not None and progress.shown:
                self.stderr._out.write("\n")

    def _progress_printer(self) -> Progress | None:
        """On a terminal, show how far a long verification has got; elsewhere stay quiet."""
        stream = self.stderr._out
        if not getattr(stream, "isatty", lambda: False)():
            return None
        return Progress(stream, total=AuditEvent.objects.aggregate(head=Max("seq"))["head"] or 0)

    def _write_checkpoint(self, path: Path, result: VerificationResult) -> None:
        try:
            path.write_text(result.make_checkpoint(audit_keys()).to_json(), encoding="utf-8")
        except OSError as error:
            raise CommandError(f"cannot write checkpoint {path}: {error.strerror}") from None

    def _report(self, result: VerificationResult, *, as_json: bool, triggers: bool | None) -> None:
        if as_json:
            self.stdout.write(json.dumps({**result.as_dict(), "triggers_installed": triggers}, sort_keys=True))
            return
        if triggers is False:
            self.stderr.write("Warning: the append-only triggers on the audit table are missing or disabled.")
        for note in result.notes:
            self.stderr.write(f"Note: {note}.")
        if result.ok:
            against = f"; matches the checkpoint at seq {result.checkpoint.head_seq}" if result.checkpoint else ""
            self.stdout.write(f"Audit log intact: {result.count} events, head seq {result.head_seq} "
                              f"hash {result.head_hash}{against}.")
        else:
            broken = result.broken
            self.stderr.write(f"Audit log BROKEN at seq {broken.seq} (event id {broken.event_id}, {broken.kind}): "
                              f"{broken.message}. {result.count} events before it verified.")
