"""The peer suite: this project against cfssl over HTTP on the same machine, registered into `scripts/bench.py`.

* Issuance: one pre-generated P-256 CSR posted again and again, `cfssl serve`
  (`POST /api/v1/cfssl/sign`, recording each certificate in its certdb) against our
  `POST /api/v1/certificates/` with a Bearer API key (row + audit event), for a CA of each
  key type (rsa-2048, ec-p256, ec-p384; ed25519 has no cfssl counterpart: its peer figures
  are n/a), at 4 and 16 concurrent connections, on SQLite and on PostgreSQL
  (PKI_TEST_POSTGRES_URL's server, a throw-away database per side; skipped when none answers).
* OCSP: one good serial, `cfssl ocspserve` with a pre-signed response file against our
  GET /pki/ocsp/{ca}/{request}: cached (the same request, no nonce) and uncached (a nonce in
  every request: signed per request; cfssl only ever serves pre-signed answers). Debian's
  cfssl 1.2.0 keeps the leading '/' of a GET path in the base64 it decodes, so it is asked by
  POST (the same lookup and answer).

The load is `wrk` (Debian; installed on demand like cfssl), keep-alive connections; every
round runs cfssl and us back to back, the order alternating, and a row reports the median
round: `rps` ours, `peer_rps` cfssl, `peer_ratio` = ours / cfssl (throughput, > 1 is faster).
Our server runs with pki_project/gunicorn.conf.py as it ships (BENCH_PEER_WORKERS overrides its
worker count) and Redis (PKI_TEST_REDIS_URL) as the shared cache.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

KEY_TYPES = {"rsa-2048": ("rsa", 2048), "ec-p256": ("ecdsa", 256), "ec-p384": ("ecdsa", 384), "ed25519": None}
CONCURRENCY = (4, 16)
OCSP_CONCURRENCY = 4
POSTGRES_URL = os.environ.get("PKI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
DATABASE_PREFIX = os.environ.get("BENCH_DATABASE_PREFIX", "pki_bench")
WORKERS = os.environ.get("BENCH_PEER_WORKERS", "")  # default: pki_project/gunicorn.conf.py's own

# cfssl's certdb schema (certdb/sqlite and certdb/pg migrations), columns of later versions included.
CFSSL_SCHEMA = """
CREATE TABLE certificates (serial_number {blob} NOT NULL, authority_key_identifier {blob} NOT NULL,
  ca_label {blob}, status {blob} NOT NULL, reason int, expiry {time}, revoked_at {time}, pem {blob} NOT NULL,
  issued_at {time}, not_before {time}, metadata text, sans text, common_name text,
  PRIMARY KEY (serial_number, authority_key_identifier));
CREATE TABLE ocsp_responses (serial_number {blob} NOT NULL, authority_key_identifier {blob} NOT NULL,
  body {blob} NOT NULL, expiry {time}, PRIMARY KEY (serial_number, authority_key_identifier));
"""
CFSSL_SIGNING = {"signing": {"default": {"expiry": "2160h",
                                         "usages": ["digital signature", "key encipherment", "server auth"]}}}


# --- Tools ------------------------------------------------------------------------------------


def ensure_tools() -> dict[str, str]:
    """cfssl, cfssljson and wrk: found, or installed from Debian the way the tests install theirs."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests import debian

    found = {}
    for command in ("cfssl", "cfssljson", "wrk"):
        path = debian._which(command)
        if path is None:
            if shutil.which("apt-get") is None or os.geteuid() != 0:
                raise RuntimeError(f"{command} is missing: apt-get install {debian.PACKAGES[command]}")
            debian._install(debian.PACKAGES[command])
            path = debian._which(command)
        if path is None:
            raise RuntimeError(f"{command} is still missing after installing {debian.PACKAGES[command]}")
        found[command] = path
    return found


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, capture_output=True, timeout=300, **kwargs)  # noqa: S603


# --- wrk ----------------------------------------------------------------------------------------


def wrk(tools: dict[str, str], url: str, connections: int, seconds: float, script: Path | None) -> dict[str, Any]:
    """One wrk run: requests per second, median latency, and every non-2xx/3xx or socket error counted."""
    command = [tools["wrk"], "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{int(seconds)}s",
               "--latency", "--timeout", "30s"]
    if script is not None:
        command += ["-s", str(script)]
    output = run([*command, url]).stdout.decode()
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    bad = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    bad += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    median = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)), "requests": requests,
            "errors": bad, "median_ms": float(median.group(1)) * scale[median.group(2)] if median else 0.0,
            "output": output}


def lua_post(path: Path, body: bytes, content_type: str, bearer: str = "") -> Path:
    """A wrk script posting `body` (read from a file beside the script) on every request."""
    body_file = path.with_suffix(".body")
    body_file.write_bytes(body)
    lines = ['wrk.method = "POST"', f'local f = assert(io.open("{body_file}", "rb"))', "wrk.body = f:read('*a')",
             "f:close()", f'wrk.headers["Content-Type"] = "{content_type}"']
    if bearer:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {bearer}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def lua_paths(path: Path, paths: list[str]) -> Path:
    """A wrk script sending GETs to each of `paths` in turn (a different OCSP request every time)."""
    list_file = path.with_suffix(".paths")
    list_file.write_text("\n".join(paths) + "\n")
    path.write_text("\n".join([
        "local paths = {}", f'for line in io.lines("{list_file}") do paths[#paths + 1] = line end',
        "local i = 0", "request = function()", "  i = i % #paths + 1",
        '  return wrk.format("GET", paths[i])', "end"]) + "\n")
    return path


# --- cfssl ------------------------------------------------------------------------------------


def cfssl_ca(tools: dict[str, str], directory: Path, key_type: str) -> tuple[Path, Path]:
    algorithm, size = KEY_TYPES[key_type]
    directory.mkdir(parents=True, exist_ok=True)
    request = json.dumps({"CN": f"Peer Issuing {key_type}", "key": {"algo": algorithm, "size": size}})
    made = run([tools["cfssl"], "genkey", "-initca", "-"], input=request.encode()).stdout
    run([tools["cfssljson"], "-bare", str(directory / "ca")], input=made)
    return directory / "ca.pem", directory / "ca-key.pem"


def cfssl_database(directory: Path, postgres_url: str) -> Path:
    """cfssl's db-config: a SQLite file, or `postgres_url`, with the certdb tables created."""
    config = directory / "db.json"
    if postgres_url:
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as connection:
            for statement in CFSSL_SCHEMA.format(blob="text", time="timestamptz").split(";"):
                if statement.strip():
                    connection.execute(statement)
        source = {"driver": "postgres", "data_source": f"{postgres_url}?sslmode=disable"}
    else:
        import sqlite3

        path = directory / "certs.db"
        with contextlib.closing(sqlite3.connect(path)) as connection:
            connection.executescript(CFSSL_SCHEMA.format(blob="blob", time="timestamp"))
        source = {"driver": "sqlite3", "data_source": str(path)}
    config.write_text(json.dumps(source))
    return config


@contextlib.contextmanager
def background(command: list[str], port: int, cwd: Path | None = None,
               env: dict[str, str] | None = None, ready_path: str = "/") -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,  # noqa: S603
                               stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{Path(command[0]).name} exited during start-up")
            with contextlib.suppress(OSError, http.client.HTTPException):
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", ready_path)
                connection.getresponse().read()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{Path(command[0]).name} did not start")
            time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- Checks (one request each side before the load: the answers are right) ----------------------


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def check_certificate(pem: str) -> None:
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(pem.encode())
    if "peer.example.com" not in certificate.subject.rfc4514_string():
        raise RuntimeError(f"unexpected certificate subject {certificate.subject.rfc4514_string()}")


def check_ocsp(status: int, der: bytes) -> None:
    from cryptography.x509 import ocsp

    response = ocsp.load_der_ocsp_response(der) if status == 200 else None
    if response is None or response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL or \
            response.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise RuntimeError(f"OCSP check failed: HTTP {status} {der[:60]!r}")


# --- The suite ----------------------------------------------------------------------------------


def register(bench: ModuleType) -> None:
    quick = bench.QUICK
    seconds = 1 if quick else 5
    rounds = 1 if quick else 3
    key_types = [k for k in KEY_TYPES if not (quick and KEY_TYPES[k] is None)]

    @bench.measurement("peer_setup")
    def peer_setup(args: dict[str, Any]) -> dict[str, Any]:
        """Our CAs (a root and an intermediate per key type), a manager API key, the OCSP fixture."""
        slugs = bench.MEASUREMENTS["lifecycle_setup"]({"key_types": args["key_types"]})["slugs"]
        key = bench.MEASUREMENTS["api_key_setup"]({})["key"]
        return {"slugs": slugs, "key": key, "ocsp": bench.MEASUREMENTS["ocsp_setup"]({})}

    @bench.suite("peer")
    def peer_suite(workdir: Path) -> list:
        tools = ensure_tools()
        csr = _csr_pem()
        rows = []
        for database in ("SQLite", "PostgreSQL"):
            with _databases(bench, database) as urls:
                if urls is None:
                    print("peer: PostgreSQL skipped (no server at PKI_TEST_POSTGRES_URL)", file=sys.stderr)
                    continue
                rows += _phase(bench, tools, workdir / database, database, urls, csr, key_types, seconds, rounds)
        return rows


@contextlib.contextmanager
def _databases(bench: ModuleType, database: str) -> Iterator[dict[str, str] | None]:
    """Throw-away databases for us and for cfssl (PostgreSQL), or none needed (SQLite)."""
    if database == "SQLite":
        yield {"ours": "", "cfssl": ""}
        return
    try:
        import psycopg

        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except Exception:
        yield None
        return
    names = {side: f"{DATABASE_PREFIX}_peer_{side}_{secrets.token_hex(4)}" for side in ("ours", "cfssl")}
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
        yield {side: f"{base}/{name}" for side, name in names.items()}
    finally:
        for name in names.values():
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _phase(bench: ModuleType, tools: dict[str, str], workdir: Path, database: str, urls: dict[str, str],
           csr: bytes, key_types: list[str], seconds: float, rounds: int) -> list:
    workdir.mkdir(parents=True)
    ours_port = bench.free_port()
    env = bench.bench_environment(workdir, PKI_BASE_URL="http://pki.example.com", PKI_ALLOWED_HOSTS="127.0.0.1",
                                  PKI_PUBLIC_RATE_PER_IP="0", CACHE_URL=REDIS_URL)
    if urls["ours"]:
        env["DATABASE_URL"] = urls["ours"]
    _flush_redis()
    bench.migrate(env)
    setup = bench.measure_in_subprocess("peer_setup", {"key_types": key_types}, env)
    gunicorn = [str(bench.PROJECT_DIR / ".venv" / "bin" / "gunicorn"), "--config", "pki_project/gunicorn.conf.py",
                "--bind", f"127.0.0.1:{ours_port}", "--log-level", "warning",
                *(["--workers", WORKERS] if WORKERS else [])]
    rows = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(background(gunicorn, ours_port, cwd=bench.PROJECT_DIR, env=env,
                                                ready_path="/health"))
        peers = {}
        cfssl_db = cfssl_database(workdir, urls["cfssl"])
        for key_type in key_types:
            if KEY_TYPES[key_type] is None:
                continue
            certificate, key = cfssl_ca(tools, workdir / f"cfssl-{key_type}", key_type)
            config = workdir / "cfssl-config.json"
            config.write_text(json.dumps(CFSSL_SIGNING))
            port = bench.free_port()
            stack.enter_context(background(
                [tools["cfssl"], "serve", "-address", "127.0.0.1", "-port", str(port), "-ca", str(certificate),
                 "-ca-key", str(key), "-config", str(config), "-db-config", str(cfssl_db)],
                port))
            peers[key_type] = (port, certificate, key)
        sign_body = json.dumps({"certificate_request": csr.decode()}).encode()
        for key_type in key_types:
            body = json.dumps({"ca": setup["slugs"][key_type], "profile": "server", "csr": csr.decode()}).encode()
            status, answer = post(ours_port, "/api/v1/certificates/", body,
                                  {"Authorization": f"Bearer {setup['key']}", "Content-Type": "application/json"})
            if status != 201:
                raise RuntimeError(f"our issuance check failed: HTTP {status} {answer[:200]!r}")
            check_certificate(json.loads(answer)["certificate_pem"])
            ours_script = lua_post(workdir / f"ours-{key_type}.lua", body, "application/json", setup["key"])
            sides = {"ours": (f"http://127.0.0.1:{ours_port}/api/v1/certificates/", ours_script)}
            if key_type in peers:
                status, answer = post(peers[key_type][0], "/api/v1/cfssl/sign", sign_body,
                                      {"Content-Type": "application/json"})
                if status != 200:
                    raise RuntimeError(f"cfssl check failed: HTTP {status} {answer[:200]!r}")
                check_certificate(json.loads(answer)["result"]["certificate"])
                sides["cfssl"] = (f"http://127.0.0.1:{peers[key_type][0]}/api/v1/cfssl/sign",
                                  lua_post(workdir / f"cfssl-{key_type}.lua", sign_body, "application/json"))
            for connections in CONCURRENCY:
                result = _alternate(tools, sides, connections, seconds, rounds, warm=connections == CONCURRENCY[0])
                rows.append(_row(bench, f"http_issue_{key_type}_c{connections}", database, result, server.pid,
                                 f"POST a P-256 CSR, {connections} connections; cfssl serve + certdb vs "
                                 f"/api/v1/certificates/ (Bearer key, row + audit event)"
                                 + ("" if "cfssl" in sides else "; cfssl: n/a (no Ed25519 CA)")))
        rows += _ocsp_rows(bench, tools, workdir, database, setup, ours_port, server.pid, seconds, rounds)
    return rows


def _ocsp_rows(bench: ModuleType, tools: dict[str, str], workdir: Path, database: str, setup: dict[str, Any],
               ours_port: int, server_pid: int, seconds: float, rounds: int) -> list:
    """cfssl ocspserve (a pre-signed answer about its own leaf) against our GET, cached and uncached."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    fixture = setup["ocsp"]
    request = bytes.fromhex(fixture["request_hex"])
    ocsp_path = f"/pki/ocsp/{fixture['slug']}/"
    cached_url = f"http://127.0.0.1:{ours_port}{ocsp_path}{quote(base64.b64encode(request).decode(), safe='')}"
    leaf = x509.load_der_x509_certificate(bytes.fromhex(fixture["leaf_der_hex"]))
    issuer = x509.load_der_x509_certificate(bytes.fromhex(fixture["issuer_der_hex"]))
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303
    nonce_paths = [ocsp_path + quote(base64.b64encode(builder.add_extension(
        x509.OCSPNonce(os.urandom(16)), critical=False).build().public_bytes(Encoding.DER)).decode(), safe="")
        for _ in range(5000)]
    connection = http.client.HTTPConnection("127.0.0.1", ours_port, timeout=30)
    connection.request("GET", cached_url.split(str(ours_port), 1)[1])
    response = connection.getresponse()
    check_ocsp(response.status, response.read())

    peer_dir = workdir / "cfssl-ocsp"
    certificate, key = cfssl_ca(tools, peer_dir, "ec-p256")
    leaf_pem = peer_dir / "leaf.pem"
    signed = run([tools["cfssl"], "sign", "-ca", str(certificate), "-ca-key", str(key), "-"], input=_csr_pem()).stdout
    leaf_pem.write_text(json.loads(signed)["cert"])
    answer = run([tools["cfssl"], "ocspsign", "-ca", str(certificate), "-responder", str(certificate),
                  "-responder-key", str(key), "-cert", str(leaf_pem), "-status", "good", "-interval", "96h"]).stdout
    responses = peer_dir / "responses.txt"
    responses.write_text(json.loads(answer)["ocspResponse"] + "\n")
    peer_leaf = x509.load_pem_x509_certificate(leaf_pem.read_bytes())
    peer_issuer = x509.load_pem_x509_certificate(certificate.read_bytes())
    peer_request = ocsp.OCSPRequestBuilder().add_certificate(peer_leaf, peer_issuer, hashes.SHA1()).build()  # noqa: S303
    port = bench.free_port()
    rows = []
    with background([tools["cfssl"], "ocspserve", "-address", "127.0.0.1", "-port", str(port), "-responses",
                     str(responses)], port):
        body = peer_request.public_bytes(Encoding.DER)
        check_ocsp(*post(port, "/", body, {"Content-Type": "application/ocsp-request"}))
        cfssl_side = (f"http://127.0.0.1:{port}/",
                      lua_post(workdir / "cfssl-ocsp.lua", body, "application/ocsp-request"))
        for cached in (True, False):
            ours_side = ((cached_url, None) if cached else
                         (f"http://127.0.0.1:{ours_port}/", lua_paths(workdir / "ours-ocsp.lua", nonce_paths)))
            result = _alternate(tools, {"ours": ours_side, "cfssl": cfssl_side}, OCSP_CONCURRENCY, seconds, rounds)
            rows.append(_row(bench, f"http_ocsp_{'cached' if cached else 'uncached'}", database, result, server_pid,
                             f"one good serial, {OCSP_CONCURRENCY} connections; cfssl ocspserve (pre-signed, POST) "
                             "vs our GET " + ("(no nonce: the pre-signed answer)" if cached else
                                              "(a nonce in every request: signed per request)")))
    return rows


def _alternate(tools: dict[str, str], sides: dict[str, tuple[str, Path | None]], connections: int,
               seconds: float, rounds: int, warm: bool = True) -> dict[str, Any]:
    """`rounds` rounds of each side back to back (the order alternating); a short warm-up first if `warm`."""
    for url, script in sides.values() if warm else ():
        wrk(tools, url, connections, 1, script)
    per_round: list[dict[str, dict[str, Any]]] = []
    for index in range(rounds):
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        measured = {side: wrk(tools, sides[side][0], connections, seconds, sides[side][1]) for side in order}
        for side, result in measured.items():
            if result["errors"]:
                raise RuntimeError(f"{side} answered {result['errors']} errors:\n{result['output']}")
        per_round.append(measured)
    ratios = [r["ours"]["rps"] / r["cfssl"]["rps"] for r in per_round if "cfssl" in r]
    middle = sorted(range(len(per_round)), key=lambda i: ratios[i] if ratios else per_round[i]["ours"]["rps"])
    chosen = per_round[middle[len(middle) // 2]]
    return {"ours": chosen["ours"], "cfssl": chosen.get("cfssl"), "ratios": ratios}


def _row(bench: ModuleType, operation: str, database: str, result: dict[str, Any], server_pid: int, notes: str):
    ours, peer = result["ours"], result["cfssl"]
    every = ", ".join(f"{ratio:.2f}" for ratio in result["ratios"])
    return bench.Row(
        operation=f"{operation}_{database.lower()}", n=ours["requests"], median_ms=round(ours["median_ms"], 2),
        raw_median_ms=round(peer["median_ms"], 2) if peer else None, rps=round(ours["rps"], 1),
        peer_rps=round(peer["rps"], 1) if peer else None,
        peer_ratio=round(ours["rps"] / peer["rps"], 2) if peer else None,
        peak_rss_mb=bench.worker_peak_rss_mb(server_pid),
        notes=f"{notes}; {database}; raw_median_ms is cfssl's median latency"
              + (f"; ratio per round: {every}" if every else ""),
    )


def _csr_pem() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    name = "peer.example.com"
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(Encoding.PEM))


def _flush_redis() -> None:
    """The shared cache starts empty (a previous run's answers name CAs that no longer exist)."""
    with contextlib.suppress(Exception):
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
