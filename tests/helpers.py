"""Small helpers shared by tests (no fixtures here: those live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent

VALID_SECRETS = {
    "PKI_JWT_SECRET": "subprocess-jwt-secret-0123456789abcdefghij",
    "PKI_ENCRYPTION_KEY": "subprocess-encryption-key-0123456789abcdef",
    "PKI_ENCRYPTION_SALT": "subprocess-salt-a1b2c3d4e5f6",
}


def clean_environment(**overrides: str | None) -> dict[str, str]:
    """The current environment without any PKI/DATABASE settings, plus valid secrets and overrides.

    A value of None removes the variable, to test what happens when it is missing.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PKI_", "DJANGO_")) and key not in {"DATABASE_URL", "CACHE_URL"}
    }
    environment.update(VALID_SECRETS)
    for key, value in overrides.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return environment


def run_manage(*args: str, env: dict[str, str], cwd: Path | None = None, timeout: int = 120,
               input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `manage.py` in a real subprocess, as an operator would."""
    return subprocess.run(
        [sys.executable, str(PROJECT_DIR / "manage.py"), *args],
        env=env,
        cwd=cwd or PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=input_text,
        check=False,
    )


def unlock_root(ca, root_password, actor):
    """The root's signer, opened and released as `signer_for` does (its public key stays readable)."""
    from certificates.signers import signer_for

    with signer_for(ca, root_password=root_password, actor=actor) as signer:
        return signer
