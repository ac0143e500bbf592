"""Write `.env` with fresh random secrets when it does not exist (`make run` calls this).

Run as `python -m pki_project.envfile [PATH]`. Never overwrites an existing file:
replacing PKI_ENCRYPTION_KEY would make every stored artifact unreadable.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from pki_project.config import BASE_DIR


def fresh_env_text() -> str:
    return (
        "# Written by `make run` with fresh random secrets. Keep this file private and backed up:\n"
        "# without PKI_ENCRYPTION_KEY and PKI_ENCRYPTION_SALT the encrypted artifacts cannot be read.\n"
        f"PKI_JWT_SECRET={secrets.token_urlsafe(48)}\n"
        f"PKI_ENCRYPTION_KEY={secrets.token_urlsafe(48)}\n"
        f"PKI_ENCRYPTION_SALT={secrets.token_hex(32)}\n"
        "PKI_BASE_URL=http://127.0.0.1:8000\n"
    )


def write_env_file(path: Path) -> bool:
    """Create `path` (mode 0600) with fresh secrets; return False when it already exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as handle:
        handle.write(fresh_env_text())
    return True


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else BASE_DIR / ".env"
    if write_env_file(path):
        print(f"Wrote {path} with fresh random secrets (PKI_JWT_SECRET, PKI_ENCRYPTION_KEY, PKI_ENCRYPTION_SALT).")
        print("Back it up somewhere safe: the encrypted artifacts cannot be read without it.")
    else:
        print(f"Using the existing {path}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
