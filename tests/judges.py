"""The external judges: `openssl` and pkilint, run as real subprocesses on what the CA emits."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

PKILINT_BIN = Path(__file__).resolve().parent.parent / ".venv" / "bin"


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(Encoding.PEM)


def write_pems(path: Path, certificates: Sequence[x509.Certificate]) -> Path:
    path.write_bytes(b"".join(pem(c) for c in certificates))
    return path


def openssl_verify(
    directory: Path,
    root: x509.Certificate,
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate] = (),
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`openssl verify -CAfile root -untrusted intermediates leaf`; returns the finished process."""
    command = ["openssl", "verify", "-CAfile", str(write_pems(directory / "root.pem", [root]))]
    if intermediates:
        command += ["-untrusted", str(write_pems(directory / "untrusted.pem", intermediates))]
    command += [*extra_args, str(write_pems(directory / "leaf.pem", [leaf]))]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def pkilint_findings(tool: str, document: bytes, *arguments: str) -> list[str]:
    """The ERROR and FATAL findings of a pkilint linter on a PEM or DER document (empty: clean)."""
    executable = shutil.which(tool, path=str(PKILINT_BIN)) or tool
    result = subprocess.run(
        [executable, "lint", *arguments, "-s", "ERROR", "-"],
        input=document, capture_output=True, timeout=120, check=False,
    )
    # pkilint exits 0 when nothing at or above the threshold was found; 1 for findings *or* a
    # document it could not parse, so the output itself is the finding list in both cases.
    if result.returncode == 0:
        return []
    output = (result.stdout + result.stderr).decode(errors="replace").strip()
    return [line for line in output.splitlines() if line.strip()] or [f"{tool} exited {result.returncode}"]
