"""Outside tools from Debian's packages for the tests (real clients and verifiers beat mocks), installed on demand.

`ensure_tool("certbot")` answers the tool's path, installing its package with apt-get first when it
is missing and `PKI_BROWSER_INSTALL=1` allows installs (the Makefile's test target sets it; the name
is historical: the browser tests were first). Elsewhere, or without apt-get as root, the calling
test is skipped with a message saying how to run it. pytest-xdist workers may all ask at once: a
file lock lets one install and the others wait, and `apt-get update` runs once per machine boot.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

# The command each tool is, and the Debian package that brings it.
PACKAGES = {
    "chromium": "chromium",
    "certbot": "certbot",
    "lego": "lego",
    "pebble-challtestsrv": "pebble",
    "nginx": "nginx",
    "softhsm2-util": "softhsm2",
    "cfssl": "golang-cfssl",
    "cfssljson": "golang-cfssl",
    "wrk": "wrk",
    "go": "golang-go",
    "certtool": "gnutls-bin",
    "gnutls-cli": "gnutls-bin",
    "vfychain": "libnss3-tools",
    "certutil": "libnss3-tools",
}
LOCK = "/tmp/pki-debian-install.lock"
UPDATED = Path("/tmp/pki-apt-updated")
INSTALL_TIMEOUT = 900


def installs_allowed() -> bool:
    return os.environ.get("PKI_BROWSER_INSTALL") == "1"


def ensure_tool(command: str) -> str:
    """The path of `command`, installing its Debian package first where allowed; else the test is skipped."""
    found = _which(command)
    if found:
        return found
    package = PACKAGES[command]
    if not installs_allowed():
        pytest.skip(f"{command} is missing: install Debian's {package} (apt-get install {package}) or run with "
                    "PKI_BROWSER_INSTALL=1 (make test does).")
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.skip(f"{command} is missing and cannot be installed here (apt-get as root is needed for {package}).")
    _install(package)
    found = _which(command)
    if not found:
        pytest.fail(f"Debian's {package} was installed but {command} is still not on the PATH.")
    return found


def _which(command: str) -> str | None:
    return shutil.which(command) or next((str(path) for path in (Path("/usr/bin") / command, Path("/usr/sbin") /
                                                                  command, Path("/usr/lib/go/bin") / command)
                                          if path.exists()), None)


def _install(package: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(package):
            return
        if not UPDATED.exists():
            subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True,
                           timeout=INSTALL_TIMEOUT)
            UPDATED.touch()
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", package], check=True, env=env,
                       capture_output=True, timeout=INSTALL_TIMEOUT)


def _installed(package: str) -> bool:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                            check=False)
    return "install ok installed" in result.stdout
