"""`make run` writes `.env` with fresh secrets once, and never overwrites it."""

from __future__ import annotations

import stat
from pathlib import Path

from pki_project.config import validate_required_secrets
from pki_project.envfile import write_env_file


def read_env(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def test_env_file_has_fresh_valid_private_secrets(tmp_path: Path) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    assert write_env_file(first)
    assert write_env_file(second)
    a, b = read_env(first), read_env(second)
    validate_required_secrets(a)
    assert a["PKI_ENCRYPTION_KEY"] != b["PKI_ENCRYPTION_KEY"], "every installation gets its own secrets"
    assert a["PKI_ENCRYPTION_SALT"] != b["PKI_ENCRYPTION_SALT"]
    assert stat.S_IMODE(first.stat().st_mode) == 0o600


def test_existing_env_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("PKI_ENCRYPTION_KEY=keep-me\n")
    assert write_env_file(path) is False
    assert path.read_text() == "PKI_ENCRYPTION_KEY=keep-me\n"
