"""`manage.py backup_database --output FILE|- [--json]`: a consistent backup while the service runs.

`--output -` streams the archive to standard output (e.g. into `ssh … 'cat > backup.zip'`); the
report then goes to standard error, so the two never mix.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

from django.core.management.base import CommandError

from backups.errors import BackupError
from backups.management.commands._progress import TerminalProgress
from backups.services import create_backup
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, to_json


class Command(JsonCommand):
    help = "Back up the database and the encrypted data directory into one zip archive."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", required=True, metavar="FILE",
                            help="the archive to write (.zip); - for standard output (the report goes to stderr)")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        if options["output"] == "-":
            self._to_stdout(options)
            return
        output = Path(options["output"]).expanduser().resolve()
        if output.is_dir():
            raise CommandError(f"{output} is a directory; give a file name, e.g. {output / 'pki-backup.zip'}.")
        if not output.parent.is_dir():
            raise CommandError(f"The directory {output.parent} does not exist.")
        progress = TerminalProgress(self.stderr._out if hasattr(self.stderr, "_out") else None)
        # Written beside the target and renamed at the end: a failed backup never leaves a partial archive.
        fd, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                report = create_backup(handle, Actor.operator("backup_database"), progress)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, output)
        except BackupError as error:
            raise CommandError(error.message) from None
        finally:
            progress.finish()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        payload = {"output": str(output), "size": output.stat().st_size, **report.as_dict()}
        if not options["json"]:
            for note in report.keys_not_in_backup:  # e.g. the key of CA X is on token Y and is not in this backup
                self.stderr.write(note)
        emit(self, options, payload, f"Backup written to {output} ({payload['size']} bytes, {report.rows} rows, "
                                     f"{report.artifacts} artifacts).")

    def _to_stdout(self, options) -> None:
        """Made in a private temporary file first (a failed backup sends nothing), then copied to stdout."""
        progress = TerminalProgress(self.stderr._out if hasattr(self.stderr, "_out") else None)
        with tempfile.TemporaryFile(prefix="pki-backup-") as handle:
            try:
                report = create_backup(handle, Actor.operator("backup_database"), progress)
            except BackupError as error:
                raise CommandError(error.message) from None
            finally:
                progress.finish()
            size = handle.tell()
            handle.seek(0)
            shutil.copyfileobj(handle, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        payload = {"output": "-", "size": size, **report.as_dict()}
        text = f"Backup written to standard output ({size} bytes, {report.rows} rows, {report.artifacts} artifacts)."
        self.stderr.write(to_json(payload) if options["json"] else text)
