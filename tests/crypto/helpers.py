"""Shared helpers for the crypto tests: cached keys and chains, openssl and pkilint runners.

Kept out of conftest.py on purpose so the tests also run with ``--noconftest``.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from certificates.crypto import (
    KeyType,
    PrivateKey,
    PublicationUrls,
    build_intermediate_ca_certificate,
    build_root_ca_certificate,
    build_subject,
    generate_private_key,
)

OPENSSL = shutil.which("openssl") or "openssl"
VENV_BIN = Path(sys.executable).parent

# Public-looking host names: pkilint's CA/B lints report internal names such as
# *.test or private IPs in URLs and SANs as ERROR (cabf.internal_domain_name).
ROOT_URLS = PublicationUrls(
    crl_url="http://pki.example.com/pki/crl/root.crl",
    ocsp_url="http://pki.example.com/pki/ocsp/root/",
    ca_issuers_url="http://pki.example.com/pki/ca/root.crt",
)
INTER_URLS = PublicationUrls(
    crl_url="http://pki.example.com/pki/crl/inter.crl",
    ocsp_url="http://pki.example.com/pki/ocsp/inter/",
    ca_issuers_url="http://pki.example.com/pki/ca/inter.crt",
    delta_crl_url="http://pki.example.com/pki/crl/inter-delta.crl",
)


@functools.cache
def cached_key(key_type: KeyType, slot: str) -> PrivateKey:
    """One key per (type, slot) for the whole test run: RSA-4096 is slow to generate."""
    return generate_private_key(key_type)


@dataclass(frozen=True)
class Chain:
    key_type: KeyType
    root: x509.Certificate
    root_key: PrivateKey
    inter: x509.Certificate
    inter_key: PrivateKey


@functools.cache
def cached_chain(key_type: KeyType, inter_path_length: int | None = 0) -> Chain:
    """Root -> intermediate for ``key_type`` (cached for the whole run)."""
    root_key = cached_key(key_type, "root")
    root = build_root_ca_certificate(
        root_key, build_subject(f"Test Root {key_type}", "Acme Test PKI", country="DE"), days=3650
    )
    inter_key = cached_key(key_type, "inter")
    inter = build_intermediate_ca_certificate(
        root,
        root_key,
        inter_key.public_key(),
        build_subject(f"Test Intermediate {key_type}", "Acme Test PKI", country="DE"),
        days=1825,
        path_length=inter_path_length,
        urls=ROOT_URLS,
    )
    return Chain(key_type, root, root_key, inter, inter_key)


def write_pem(path: Path, *objects: object) -> Path:
    """Write certificates/CRLs (anything with public_bytes) as concatenated PEM."""
    path.write_bytes(b"".join(obj.public_bytes(Encoding.PEM) for obj in objects))  # type: ignore[attr-defined]
    return path


def openssl(*args: str | Path, check: bool = False) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


_FINDING = re.compile(r"^\s+(\S+) \((FATAL|ERROR|WARNING|NOTICE|INFO|DEBUG)\)(?::\s*(.*))?$")


@dataclass(frozen=True)
class LintResult:
    command: str
    output: str
    findings: tuple[tuple[str, str, str], ...]  # (code, severity, message)

    @property
    def errors(self) -> list[tuple[str, str, str]]:
        return [f for f in self.findings if f[1] in ("ERROR", "FATAL")]

    def error_codes(self) -> set[str]:
        return {code for code, _, _ in self.errors}

    def describe(self) -> str:
        return f"{self.command}\n{self.output}"


def pkilint(tool: str, path: Path, *args: str) -> LintResult:
    """Run a pkilint command line tool and parse its findings."""
    command = [str(VENV_BIN / tool), "lint", *args, str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    # pkilint exits non-zero when it reports findings; a usage error or crash
    # shows up on stderr without parsable findings.
    if result.stderr.strip():
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr}")
    findings = tuple(
        (m.group(1), m.group(2), m.group(3) or "") for line in result.stdout.splitlines() if (m := _FINDING.match(line))
    )
    return LintResult(" ".join(command), result.stdout, findings)


def assert_lints_clean(tool: str, path: Path, *args: str, allowed: frozenset[str] = frozenset()) -> LintResult:
    """Fail on any ERROR or FATAL finding except the documented ``allowed`` codes."""
    result = pkilint(tool, path, *args)
    unexpected = [f for f in result.errors if f[0] not in allowed]
    assert not unexpected, f"pkilint reported ERROR/FATAL findings:\n{result.describe()}"
    return result


def assert_openssl_ok(result: subprocess.CompletedProcess[str], expected: str | None = None) -> None:
    """Assert an openssl run succeeded (and printed ``expected``), showing its output otherwise."""
    output = f"{result.args}\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, output
    if expected is not None:
        assert expected in result.stdout + result.stderr, output


@dataclass(frozen=True)
class LintJob:
    tool: str
    path: Path
    args: tuple[str, ...] = ()
    allowed: frozenset[str] = frozenset()


def assert_all_lint_clean(jobs: list[LintJob]) -> None:
    """Run several pkilint commands concurrently (each is a separate process) and
    fail with every ERROR/FATAL finding at once."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(lambda job: (job, pkilint(job.tool, job.path, *job.args)), jobs))
    failures = [result.describe() for job, result in results if any(f[0] not in job.allowed for f in result.errors)]
    assert not failures, "pkilint reported ERROR/FATAL findings:\n" + "\n".join(failures)
