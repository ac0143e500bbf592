import argparse
import sys

from certificates.services.rotation import NEW_KEY_VARIABLE, NEW_SALT_VARIABLE, rotate_encryption_key
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, service_errors_as_command_errors

OLD_BACKUPS_NOTE = ("Backups made before this rotation are sealed under the OLD key and salt: keep both (as safely as "
                    "the new ones) for as long as you keep those backups. Under the new key restore_database refuses "
                    "them; to restore one, run restore_database with the old PKI_ENCRYPTION_KEY and "
                    "PKI_ENCRYPTION_SALT, then rotate again.")


class Command(JsonCommand):
    help = (f"Re-encrypt every artifact under the key and salt in {NEW_KEY_VARIABLE} and {NEW_SALT_VARIABLE}. "
            "Stop the application first. Safe to re-run after an interruption: it resumes.")

    def add_arguments(self, parser) -> None:
        add_json_argument(parser)
        parser.add_argument("--fail-after", type=int, default=None, help=argparse.SUPPRESS)  # crash tests only

    def handle(self, *args, **options) -> None:
        progress = self._progress if sys.stderr.isatty() and not options["json"] else None
        with service_errors_as_command_errors():
            report = rotate_encryption_key(actor=Actor.operator("rotate_encryption_key"), progress=progress,
                                           fail_after=options["fail_after"])
        emit(self, options, {"rotated": report.rotated, "already_done": report.already_done,
                             "resumed": report.resumed, "new_key_id": report.new_key_id,
                             "backups_need_old_key": True, "note": OLD_BACKUPS_NOTE},
             f"Re-encrypted {report.rotated} artifact(s) ({report.already_done} already done"
             f"{', resumed an interrupted rotation' if report.resumed else ''}).\n"
             f"Now set PKI_ENCRYPTION_KEY to the value of {NEW_KEY_VARIABLE} and PKI_ENCRYPTION_SALT to the "
             f"value of {NEW_SALT_VARIABLE} (in .env or the environment), remove {NEW_KEY_VARIABLE} and "
             f"{NEW_SALT_VARIABLE}, and start the application again.\n{OLD_BACKUPS_NOTE}")

    def _progress(self, done: int, total: int, relpath: str) -> None:
        self.stderr.write(f"\r  {done}/{total} re-encrypted", ending="")
        if done == total:
            self.stderr.write("")
