"""The external judges, run as real subprocesses on what the CA emits: `openssl` (verify, s_server/s_client),
pkilint, GnuTLS `certtool`, NSS `vfychain` and Go's crypto/x509 (tests/conformance/goverify)."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
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


# --- More verifiers (tests/conformance): GnuTLS, NSS, Go's crypto/x509, TLS handshakes ------------------------

#: The EKU names of the profiles (RFC 5280 4.2.1.12) and what each verifier calls the purpose.
OPENSSL_PURPOSES = {"serverAuth": ("sslserver",), "clientAuth": ("sslclient",),
                    "emailProtection": ("smimesign", "smimeencrypt")}
EKU_OIDS = {"serverAuth": "1.3.6.1.5.5.7.3.1", "clientAuth": "1.3.6.1.5.5.7.3.2",
            "emailProtection": "1.3.6.1.5.5.7.3.4"}
#: vfychain -u: 0 SSL client, 1 SSL server, 4 e-mail signer, 5 e-mail recipient.
NSS_USAGES = {"serverAuth": (1,), "clientAuth": (0,), "emailProtection": (4, 5)}


def certtool(certtool_path: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([certtool_path, *arguments], capture_output=True, text=True, timeout=60, check=False)


def certtool_verify(certtool_path: str, directory: Path, root: x509.Certificate, leaf: x509.Certificate,
                    intermediates: Sequence[x509.Certificate], *, purpose: str | None = None,
                    hostname: str | None = None, email: str | None = None) -> subprocess.CompletedProcess[str]:
    """GnuTLS `certtool --verify` of leaf + intermediates against the root, for an EKU OID and a name if given.

    `--verify-profile medium` is GnuTLS's default security level made explicit (112-bit keys and up:
    RSA 2048, every curve); GnuTLS checks the purpose against every certificate of the chain."""
    chain = write_pems(directory / "gnutls-chain.pem", [leaf, *intermediates])
    arguments = ["--verify", "--load-ca-certificate", str(write_pems(directory / "gnutls-root.pem", [root])),
                 "--infile", str(chain), "--verify-profile", "medium"]
    if purpose:
        arguments += ["--verify-purpose", purpose]
    if hostname:
        arguments += ["--verify-hostname", hostname]
    if email:
        arguments += ["--verify-email", email]
    return certtool(certtool_path, *arguments)


def certtool_verify_chain(certtool_path: str, directory: Path,
                          chain: Sequence[x509.Certificate]) -> subprocess.CompletedProcess[str]:
    """GnuTLS `certtool --verify-chain`: the file's chain, leaf first, ending in its self-signed root."""
    path = write_pems(directory / "gnutls-full-chain.pem", chain)
    return certtool(certtool_path, "--verify-chain", "--infile", str(path))


def build_go_verifier(go: str, directory: Path) -> Path:
    """Compile tests/conformance/goverify (stdlib only, so no module download) into `directory`."""
    source = Path(__file__).resolve().parent / "conformance" / "goverify" / "main.go"
    output = directory / "goverify"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory),
           "GOCACHE": str(directory / "gocache"), "GOPATH": str(directory / "gopath"), "GOTOOLCHAIN": "local",
           "GOPROXY": "off", "GOFLAGS": "", "GOTELEMETRY": "off", "CGO_ENABLED": "0"}
    result = subprocess.run([go, "build", "-o", str(output), str(source)], capture_output=True, text=True,
                            timeout=600, env=env, check=False)
    if result.returncode != 0:
        raise AssertionError(f"go build of {source} failed:\n{result.stdout}\n{result.stderr}")
    return output


def go_verify(verifier: Path, directory: Path, root: x509.Certificate, leaf: x509.Certificate,
              intermediates: Sequence[x509.Certificate], usages: Sequence[str],
              dns_name: str | None = None) -> dict[str, dict]:
    """Go's x509.Verify once per usage: {"serverAuth": {"ok": True, "chains": 1}, ...}."""
    command = [str(verifier), "-roots", str(write_pems(directory / "go-root.pem", [root])),
               "-leaf", str(write_pems(directory / "go-leaf.pem", [leaf])), "-eku", ",".join(usages)]
    if intermediates:
        command += ["-intermediates", str(write_pems(directory / "go-inter.pem", intermediates))]
    if dns_name:
        command += ["-dns", dns_name]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise AssertionError(f"goverify failed: {result.stdout}{result.stderr}")
    return json.loads(result.stdout)


class NssDatabase:
    """A temporary NSS database whose trust anchors are the given roots (`certutil -A -t "C,C,C"`)."""

    def __init__(self, certutil: str, vfychain: str, directory: Path, roots: Sequence[x509.Certificate]) -> None:
        self.vfychain, self.directory = vfychain, directory
        directory.mkdir(parents=True, exist_ok=True)
        self.certutil, self.spec = certutil, f"sql:{directory}"
        self._run([certutil, "-N", "-d", self.spec, "--empty-password"])
        for index, root in enumerate(roots):
            self.add_root(root, f"root-{index}")

    def add_root(self, root: x509.Certificate, nickname: str) -> None:
        """A trust anchor for every usage: `certutil -A -t "CT,C,C"`: a trusted CA for SSL servers (C) and
        clients (T: NSS trusts a CA for client certificates only with it), e-mail and object signing."""
        path = write_pems(self.directory / f"{nickname}.pem", [root])
        self._run([self.certutil, "-A", "-d", self.spec, "-n", nickname, "-t", "CT,C,C", "-a", "-i", str(path)])

    @staticmethod
    def _run(command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")

    def verify(self, directory: Path, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate],
               usage: int) -> subprocess.CompletedProcess[str]:
        """`vfychain -pp` (CERT_PKIXVerifyCert, no revocation fetching) for a usage number."""
        command = [self.vfychain, "-d", self.spec, "-pp", "-u", str(usage),
                   "-a", str(write_pems(directory / "nss-leaf.pem", [leaf]))]
        for index, intermediate in enumerate(intermediates):
            command += ["-a", str(write_pems(directory / f"nss-inter-{index}.pem", [intermediate]))]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def nss_chain_is_good(result: subprocess.CompletedProcess[str]) -> bool:
    """vfychain's verdict: exit 0 and "Chain is good!" (which it prints on stderr, like "Chain is bad!")."""
    return result.returncode == 0 and "Chain is good!" in result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TlsParty:
    """One side of a handshake: its certificate, its key (PEM) and the intermediates it sends."""

    certificate: x509.Certificate
    key_pem: bytes
    chain: Sequence[x509.Certificate] = ()


@dataclass(frozen=True)
class Handshake:
    succeeded: bool
    client_output: str
    server_output: str


def _write_party(directory: Path, name: str, party: TlsParty) -> list[str]:
    key = directory / f"{name}-key.pem"
    key.write_bytes(party.key_pem)
    key.chmod(0o600)
    arguments = ["-cert", str(write_pems(directory / f"{name}-cert.pem", [party.certificate])), "-key", str(key)]
    if party.chain:
        arguments += ["-cert_chain", str(write_pems(directory / f"{name}-chain.pem", party.chain))]
    return arguments


def tls_handshake(directory: Path, server: TlsParty, trusted_root: x509.Certificate, hostname: str, *,
                  client: TlsParty | None = None, client_roots: Sequence[x509.Certificate] = (),
                  server_crls: Sequence[x509.CertificateRevocationList] = ()) -> Handshake:
    """`openssl s_server -www` with `server`, reached by `openssl s_client -verify_return_error`.

    The client trusts `trusted_root` and checks `hostname`. With `client`, the server demands a client
    certificate (`-Verify 1 -verify_return_error`) chaining to `client_roots`, checked against
    `server_crls` when given (`-crl_check`). Success means the whole exchange happened: the client
    sent an HTTP request over the verified connection and read the server's 200 page back.
    """
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server_command = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1", "-www",
                      *_write_party(directory, "server", server)]
    if client is not None:
        server_command += ["-Verify", "1", "-verify_return_error",
                           "-CAfile", str(write_pems(directory / "client-roots.pem", client_roots))]
        if server_crls:
            crls = directory / "server-crls.pem"
            crls.write_bytes(b"".join(crl.public_bytes(Encoding.PEM) for crl in server_crls))
            server_command += ["-CRL", str(crls), "-crl_check"]
    server_process = subprocess.Popen(server_command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, bufsize=0)
    early = b""
    try:
        early = _wait_for_accept(server_process, port)
        client_command = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", hostname, "-ign_eof",
                          "-verify_return_error", "-verify_hostname", hostname,
                          "-CAfile", str(write_pems(directory / "server-root.pem", [trusted_root]))]
        if client is not None:
            client_command += _write_party(directory, "client", client)
        finished = subprocess.run(client_command, input="GET / HTTP/1.0\r\n\r\n", capture_output=True, text=True,
                                  timeout=60, check=False)
        client_output = finished.stdout + finished.stderr
    finally:
        try:
            rest, _ = server_process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server_process.kill()
            rest, _ = server_process.communicate()
    server_output = (early + (rest or b"")).decode(errors="replace")
    succeeded = "HTTP/1.0 200 ok" in client_output and "Verification: OK" in client_output
    return Handshake(succeeded, client_output, server_output)


def _wait_for_accept(process: subprocess.Popen, port: int) -> bytes:
    """Until s_server prints ACCEPT (it is bound then); answers what it printed so far.

    No probe connection (`-naccept 1` would spend it), and raw reads of the pipe: a buffered
    readline could keep the ACCEPT line in its buffer where select() never sees it."""
    deadline, seen = time.monotonic() + 30, b""
    descriptor = process.stdout.fileno()
    while time.monotonic() < deadline and b"ACCEPT" not in seen:
        ready, _, _ = select.select([descriptor], [], [], 0.5)
        if ready:
            chunk = os.read(descriptor, 4096)
            if not chunk:
                break
            seen += chunk
    if b"ACCEPT" not in seen:
        raise AssertionError(f"openssl s_server did not start listening on {port}: {seen.decode(errors='replace')}")
    return seen
