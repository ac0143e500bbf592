"""`manage.py restore_database FILE [--json] [--yes]` and `restore_database --recover`."""

from __future__ import annotations

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from backups.errors import BackupError
from backups.management.commands._progress import TerminalProgress
from backups.services import recover, restore_backup
from pki_project.actor import Actor
from pki_project.cli import add_json_argument, emit


class Command(BaseCommand):
    help = ("Replace the database and the encrypted data directory with a backup, after validating it "
            "completely. The previous state is kept until the new one is in place.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", nargs="?", metavar="FILE", help="the backup archive (.zip)")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
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
        self._confirm(options)
        progress = TerminalProgress(getattr(self.stderr, "_out", None))
        try:
            report = restore_backup(archive, Actor.operator("restore_database"), progress)
        except BackupError as error:
            raise CommandError(f"Restore refused: {error.message} Nothing was changed.") from None
        finally:
            progress.finish()
        for warning in report.warnings:
            self.stderr.write(warning)
        emit(self, options, {"restored": report.as_dict()},
             f"Restored the backup of {report.source_created_at or 'unknown date'} "
             f"({report.rows} rows, {report.artifacts} artifacts).")

    def _confirm(self, options: dict) -> None:
        if options["yes"]:
            return
        if not sys.stdin.isatty():
            raise CommandError("Restoring replaces every row of the database and the whole data directory; "
                               "there is no terminal to confirm on: run it again with --yes.")
        answer = input(f"This replaces the database and {settings.PKI_DATA_DIR} with the backup. Type 'yes' to "
                       "continue: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Restore cancelled; nothing was changed.")

    def _recover(self, options: dict) -> None:
        try:
            outcome = recover()
        except BackupError as error:
            raise CommandError(error.message) from None
        emit(self, options, {"recovered": outcome}, outcome or "No interrupted restore to recover.")
