"""`manage.py restore_database FILE [--preview] [--yes] [--replace-audit-trail] [--json]` and `--recover`.

Without `--yes` it first shows what the restore would change (the same preview as the toolbox)
and asks the operator to type the confirmation phrase it names; `--preview` only shows it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError

from backups.errors import BackupError
from backups.management.commands._progress import TerminalProgress
from backups.preview import AUDIT_DIVERGED
from backups.services import preview_restore, recover, restore_backup
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit


class Command(JsonCommand):
    help = ("Replace the database and the encrypted data directory with a backup, after validating it "
            "completely. The previous state is kept until the new one is in place.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", nargs="?", metavar="FILE", help="the backup archive (.zip)")
        parser.add_argument("--yes", action="store_true",
                            help="do not show the preview nor ask for confirmation (scripts); the result still "
                                 "reports what was carried forward")
        parser.add_argument("--preview", action="store_true",
                            help="only validate the backup and show what restoring it would change")
        parser.add_argument("--replace-audit-trail", action="store_true",
                            help="when the backup's audit trail and the live one are not one history, replace the "
                                 "live trail (exported beside the data directory first); recorded in the trail")
        parser.add_argument("--recover", action="store_true",
                            help="finish or undo a restore that was interrupted (e.g. by a crash), then exit")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["recover"]:
            self._recover(options)
            return
        if not options["file"]:
            raise CommandError("Give the backup FILE to restore (or --recover).")
        archive = Path(options["file"]).expanduser()
        if not archive.is_file():
            raise CommandError(f"No such file: {archive}.")
        progress = TerminalProgress(getattr(self.stderr, "_out", None))
        actor = Actor.operator("restore_database")
        expected_digest = None
        try:
            if options["preview"] or not options["yes"]:
                preview = preview_restore(archive, actor, progress)
                progress.finish()
                if options["preview"]:
                    emit(self, options, {"preview": preview.as_dict()}, "\n".join(preview.lines()))
                    return
                expected_digest = self._confirm(preview, options)
            report = restore_backup(archive, actor, progress,
                                    expected_digest=expected_digest,
                                    replace_audit_trail=options["replace_audit_trail"])
        except BackupError as error:
            hint = " Run it again with --replace-audit-trail to replace the live trail (recorded in the trail)." \
                if error.code == "audit_trail_diverged" else ""
            raise CommandError(f"Restore refused: {error.message}{hint} Nothing was changed.") from None
        finally:
            progress.finish()
        for warning in report.warnings:
            self.stderr.write(warning)
        emit(self, options, {"restored": report.as_dict()},
             f"Restored the backup of {report.source_created_at or 'unknown date'} "
             f"({report.rows} rows, {report.artifacts} artifacts); carried forward: "
             + ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in report.carried.as_dict().items())
             + f"; audit trail {report.audit_trail}.")

    def _confirm(self, preview, options: dict) -> str:
        """Show the preview and read the typed phrase; the preview's digest pins what was confirmed."""
        for line in preview.lines():
            self.stderr.write(line)
        if preview.audit_trail == AUDIT_DIVERGED and not options["replace_audit_trail"]:
            raise CommandError("Restore refused: the audit trails diverged; run it again with --replace-audit-trail "
                               "to replace the live trail (recorded). Nothing was changed.")
        if not sys.stdin.isatty():
            raise CommandError("Restoring replaces the database and the data directory; there is no terminal to "
                               "confirm on: run it again with --yes (or --preview to only look).")
        answer = input(f"This replaces the database and {settings.PKI_DATA_DIR} with the backup. Type "
                       f"'{preview.confirmation_phrase}' to continue: ")
        if answer.strip() != preview.confirmation_phrase:
            raise CommandError("Restore cancelled; nothing was changed.")
        return preview.digest

    def _recover(self, options: dict) -> None:
        try:
            outcome = recover()
        except BackupError as error:
            raise CommandError(error.message) from None
        emit(self, options, {"recovered": outcome}, outcome or "No interrupted restore to recover.")
