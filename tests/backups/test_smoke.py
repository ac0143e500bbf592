from pathlib import Path

from backups.services import restore_backup
from pki_project.actor import Actor
from tests.backups.helpers import read_members


def test_create_and_restore(backup_file: Path, data_dir: Path) -> None:
    members = read_members(backup_file)
    print(sorted(members))
    report = restore_backup(backup_file, Actor.operator("tests"))
    print(report)
