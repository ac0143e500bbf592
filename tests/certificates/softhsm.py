"""A SoftHSM2 installation of its own per test: a token directory in tmp, named by SOFTHSM2_CONF.

`softhsm2-util` comes from Debian's softhsm2 (installed on demand, `tests.debian`); the module
`/usr/lib/softhsm/libsofthsm2.so` is the project's default `PKI_PKCS11_MODULE`. The library reads
SOFTHSM2_CONF at C_Initialize, so the fixture re-initialises it for each test and at the end.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from certificates.signers.pkcs11 import reinitialize
from tests.debian import ensure_tool

ROOT_TOKEN, ISSUING_TOKEN = "pki-root", "pki-issuing"
ROOT_PIN, ISSUING_PIN, SO_PIN = "root-token-pin-4711", "issuing-token-pin-0815", "so-pin-123456"


@dataclass(frozen=True)
class SoftHSM:
    directory: Path
    util: str
    pin_file: Path

    def init_token(self, label: str, pin: str) -> None:
        subprocess.run([self.util, "--init-token", "--free", "--label", label, "--so-pin", SO_PIN, "--pin", pin],
                       check=True, capture_output=True, timeout=60)


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch, settings) -> SoftHSM:
    """Two fresh tokens (a root's and the intermediates'), and the server's PIN file for the latter."""
    util = ensure_tool("softhsm2-util")
    directory = tmp_path / "softhsm"
    (directory / "tokens").mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    pin_file = directory / "issuing.pin"
    pin_file.write_text(ISSUING_PIN + "\n")
    pin_file.chmod(0o600)
    settings.PKI_PKCS11_PIN_FILE = str(pin_file)
    hsm = SoftHSM(directory, util, pin_file)
    hsm.init_token(ROOT_TOKEN, ROOT_PIN)
    hsm.init_token(ISSUING_TOKEN, ISSUING_PIN)
    reinitialize()
    yield hsm
    reinitialize()
