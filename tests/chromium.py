"""Debian's Chromium for the browser tests (tests/browser and the API docs page), installed on demand.

It comes from Debian (`/usr/bin/chromium`), never from a test tool's download. When it is
missing, `ensure_chromium` installs it with apt-get only if `PKI_BROWSER_INSTALL=1` (the
Makefile's test target sets it); otherwise the calling test is skipped with a message
saying how to run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def ensure_chromium() -> str:
    """The browser's path, installing it first where allowed; skips the test where it cannot be had."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("PKI_BROWSER_INSTALL") != "1":
            pytest.skip(f"Browser tests skipped: {CHROMIUM} is missing. Install Debian's chromium "
                        "(apt-get install chromium) or run with PKI_BROWSER_INSTALL=1 (make test does).")
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip("Browser tests skipped: chromium is missing and cannot be installed here "
                        "(apt-get as root is needed).")
        _install_chromium()
    return CHROMIUM


def _install_chromium() -> None:
    """Debian's package, as root. pytest-xdist workers may all get here at once: a file lock lets one
    install and the others wait."""
    import fcntl

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open("/tmp/pki-browser-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if Path(CHROMIUM).exists():
            return
        for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(command, check=True, env=env, capture_output=True, timeout=900)
