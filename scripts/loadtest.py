"""Load test on loopback: mixed traffic against gunicorn, with throughput, latency percentiles and errors.

    .venv/bin/python scripts/loadtest.py --managed [--duration 180] [--workers 4] [--concurrency 8]
    .venv/bin/python scripts/loadtest.py --url http://127.0.0.1:8000 --api-key KEY --ca SLUG [--duration 60]

`--managed` (what `make loadtest` runs) sets everything up and tears it down: a fresh
PostgreSQL database on PKI_TEST_POSTGRES_URL's server, `manage.py migrate`, an
organization, a root and an intermediate CA and a manager API key made with the
operator commands, a temporary data directory, gunicorn with `--workers` processes and
CACHE_URL on Redis (PKI_TEST_REDIS_URL, default redis://127.0.0.1:6379/14). The public
endpoints' per-IP rate limit is switched off there: every request comes from 127.0.0.1,
and the test measures the server, not the limiter.

Traffic (weights): issuance from a CSR (POST /api/v1/certificates/), listing, detail,
downloads (pem, chain), OCSP (POST /pki/ocsp/{ca}/ about a certificate issued here), CRL
fetch (/pki/crl/{ca}.crl). Each client thread keeps its own HTTP/1.1 connection
(http.client; it reconnects when a sync worker closes it). The run ends after
`--duration` seconds or `--max-requests` requests, whichever comes first. Any unexpected
status, unparsable answer or connection error counts as an error; the exit status is 1
when there was any. Results: a table on stdout and JSON in `--json-out`.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

PROJECT_DIR = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("PKI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("PKI_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
ROOT_PASSWORD = "load test root password 0123"  # noqa: S105 (a throw-away installation)
WEIGHTS = {"issue": 10, "list": 12, "detail": 10, "download": 13, "ocsp": 35, "crl": 20}
CSR_POOL = 64


# --- measurements ----------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, operation: str, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.setdefault(operation, []).append(seconds)
            if error:
                self.errors[operation] = self.errors.get(operation, 0) + 1
                if len(self.samples) < 20:
                    self.samples.append(f"{operation}: {error}")

    @property
    def total(self) -> int:
        with self.lock:
            return sum(len(values) for values in self.latencies.values())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def summarize(stats: Stats, elapsed: float, meta: dict[str, object]) -> dict[str, object]:
    operations = {}
    for name, values in sorted(stats.latencies.items()):
        operations[name] = {
            "requests": len(values), "errors": stats.errors.get(name, 0), "rps": round(len(values) / elapsed, 2),
            "p50_ms": round(percentile(values, 0.50) * 1000, 1), "p90_ms": round(percentile(values, 0.90) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1), "max_ms": round(max(values) * 1000, 1),
        }
    every = [value for values in stats.latencies.values() for value in values]
    total = {"requests": len(every), "errors": sum(stats.errors.values()),
             "rps": round(len(every) / elapsed, 2) if elapsed else 0.0,
             "p50_ms": round(percentile(every, 0.50) * 1000, 1) if every else 0.0,
             "p90_ms": round(percentile(every, 0.90) * 1000, 1) if every else 0.0,
             "p99_ms": round(percentile(every, 0.99) * 1000, 1) if every else 0.0}
    return {**meta, "duration_s": round(elapsed, 1), "total": total, "operations": operations,
            "error_samples": stats.samples}


def print_table(result: dict[str, object]) -> None:
    header = f"{'operation':<10} {'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    rows = [*result["operations"].items(), ("TOTAL", result["total"])]  # type: ignore[union-attr]
    for name, row in rows:
        print(f"{name:<10} {row['requests']:>9} {row['errors']:>7} {row['rps']:>8} {row['p50_ms']:>8} "
              f"{row['p90_ms']:>8} {row['p99_ms']:>8}")
    print(f"duration {result['duration_s']} s; {result['total']['requests']} requests, "  # type: ignore[index]
          f"{result['total']['errors']} errors")  # type: ignore[index]
    for sample in result["error_samples"]:  # type: ignore[union-attr]
        print(f"  error: {sample}")


# --- the client ------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection to 127.0.0.1 (reopened when the server closes it)."""

    def __init__(self, port: int, api_key: str) -> None:
        self.port, self.api_key = port, api_key
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str = "",
             auth: bool = True) -> tuple[int, bytes]:
        headers = {"Host": "127.0.0.1"}
        if auth:
            headers["Authorization"] = f"Bearer {self.api_key}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # a fresh connection next time; this request counts as failed
            raise


@dataclass
class Target:
    port: int
    api_key: str
    ca: str
    issuer: x509.Certificate
    csrs: list[str]
    issued: list[tuple[int, x509.Certificate]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, pk: int, pem: str) -> None:
        with self.lock:
            self.issued.append((pk, x509.load_pem_x509_certificate(pem.encode())))

    def pick(self) -> tuple[int, x509.Certificate]:
        with self.lock:
            return random.choice(self.issued)  # noqa: S311 (traffic mix, not a secret)


def expect(status: int, wanted: int, body: bytes) -> None:
    if status != wanted:
        raise AssertionError(f"HTTP {status} (wanted {wanted}): {body[:160]!r}")


def op_issue(client: Client, target: Target) -> None:
    csr = random.choice(target.csrs)  # noqa: S311
    body = json.dumps({"ca": target.ca, "profile": "server", "csr": csr}).encode()
    status, answer = client.call("POST", "/api/v1/certificates/", body, "application/json")
    expect(status, 201, answer)
    document = json.loads(answer)
    target.add(document["id"], document["certificate_pem"])


def op_list(client: Client, target: Target) -> None:
    status, answer = client.call("GET", f"/api/v1/certificates/?ca={target.ca}&page_size=20")
    expect(status, 200, answer)
    json.loads(answer)


def op_detail(client: Client, target: Target) -> None:
    pk, _ = target.pick()
    status, answer = client.call("GET", f"/api/v1/certificates/{pk}/")
    expect(status, 200, answer)
    json.loads(answer)


def op_download(client: Client, target: Target) -> None:
    pk, _ = target.pick()
    fmt = random.choice(["pem", "chain"])  # noqa: S311
    status, answer = client.call("GET", f"/api/v1/certificates/{pk}/download/?format={fmt}")
    expect(status, 200, answer)
    x509.load_pem_x509_certificates(answer)


def op_ocsp(client: Client, target: Target) -> None:
    _, certificate = target.pick()
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, target.issuer, hashes.SHA1()).build()  # noqa: S303
    status, answer = client.call("POST", f"/pki/ocsp/{target.ca}/", request.public_bytes(Encoding.DER),
                                 "application/ocsp-request", auth=False)
    expect(status, 200, answer)
    response = ocsp.load_der_ocsp_response(answer)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise AssertionError(f"OCSP {response.response_status.name}")


def op_crl(client: Client, target: Target) -> None:
    status, answer = client.call("GET", f"/pki/crl/{target.ca}.crl", auth=False)
    expect(status, 200, answer)
    x509.load_der_x509_crl(answer)


OPERATIONS: dict[str, Callable[[Client, Target], None]] = {
    "issue": op_issue, "list": op_list, "detail": op_detail, "download": op_download, "ocsp": op_ocsp,
    "crl": op_crl,
}


def run_clients(target: Target, concurrency: int, duration: float, max_requests: int) -> tuple[Stats, float]:
    stats, stop = Stats(), threading.Event()
    names, weights = list(WEIGHTS), list(WEIGHTS.values())
    started = time.perf_counter()
    deadline = started + duration

    def loop() -> None:
        client = Client(target.port, target.api_key)
        while not stop.is_set() and time.perf_counter() < deadline:
            if stats.total >= max_requests:
                stop.set()
                break
            name = random.choices(names, weights)[0]  # noqa: S311 (traffic mix, not a secret)
            began = time.perf_counter()
            error = None
            try:
                OPERATIONS[name](client, target)
            except Exception as exc:  # every failure is counted and sampled, never fatal to the run
                error = f"{exc.__class__.__name__}: {exc}"
            stats.record(name, time.perf_counter() - began, error)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 300)
    return stats, time.perf_counter() - started


def make_csrs(count: int) -> list[str]:
    csrs = []
    for index in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"load-{index}.example.com"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
               .sign(key, hashes.SHA256()))
        csrs.append(csr.public_bytes(Encoding.PEM).decode())
    return csrs


def prepare(port: int, api_key: str, ca: str, warm: int = 8) -> Target:
    """The issuer's certificate and a few certificates to ask OCSP and download about."""
    client = Client(port, api_key)
    status, pem = client.call("GET", f"/pki/ca/{ca}.pem", auth=False)
    expect(status, 200, pem)
    target = Target(port, api_key, ca, x509.load_pem_x509_certificate(pem), make_csrs(CSR_POOL))
    for _ in range(warm):
        op_issue(client, target)
    op_crl(client, target)
    return target


# --- a managed installation ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def manage(env: dict[str, str], *args: str) -> str:
    command = [sys.executable, str(PROJECT_DIR / "manage.py"), *args]
    result = subprocess.run(command, env=env, cwd=PROJECT_DIR,  # noqa: S603 (our own manage.py)
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def managed_environment(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PKI_", "DJANGO_")) and key not in {"DATABASE_URL", "CACHE_URL"}}
    env.update({
        "DJANGO_SETTINGS_MODULE": "pki_project.settings", "DATABASE_URL": database_url, "CACHE_URL": REDIS_URL,
        "PKI_DATA_DIR": str(data_dir), "PKI_ENV_FILE": str(data_dir.parent / "no.env"),
        "PKI_JWT_SECRET": secrets.token_urlsafe(48), "PKI_ENCRYPTION_KEY": secrets.token_urlsafe(48),
        "PKI_ENCRYPTION_SALT": secrets.token_urlsafe(24), "PKI_COOKIE_SECURE": "false",
        "PKI_ALLOWED_HOSTS": "127.0.0.1", "PKI_ROOT_KDF_LOG2_N": "14", "PKI_PUBLIC_RATE_PER_IP": "0",
        "PKI_LOG_LEVEL": "WARNING", "ROOT_PASSWORD": ROOT_PASSWORD,
    })
    return env


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    import psycopg

    name = f"pki_loadtest_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bootstrap(env: dict[str, str]) -> str:
    """Migrate, then an organization, a root, an intermediate, its first CRL and a manager key."""
    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "create_organization", "--name", "Load Test", "--slug", "load")
    manage(env, "init_root_ca", "--organization", "load", "--name", "Load Root", "--key-type", "ec-p256",
           "--password-env", "ROOT_PASSWORD")
    manage(env, "create_intermediate_ca", "--root", "load-root", "--name", "Load Issuing", "--key-type",
           "ec-p256", "--password-env", "ROOT_PASSWORD")
    manage(env, "generate_crl", "--ca", "load-issuing")
    return json.loads(manage(env, "create_api_key", "--user", "loadtest", "--role", "manager",
                             "--organization", "load", "--json"))["key"]


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int, log: Path) -> Iterator[None]:
    command = [str(Path(sys.executable).parent / "gunicorn"), "pki_project.wsgi:application", "--bind",
               f"127.0.0.1:{port}", "--workers", str(workers), "--timeout", "120"]
    with log.open("w") as stderr:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=stderr, stderr=stderr)  # noqa: S603
        try:
            wait_ready(port, process)
            yield
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit("gunicorn exited during start-up; see its log")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        time.sleep(0.5)
    raise SystemExit("gunicorn never became ready")


def run_managed(args: argparse.Namespace) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="pki-loadtest-"))
    try:
        with postgres_database() as database_url:
            env = managed_environment(database_url, workdir / "data")
            print(f"Setting up: PostgreSQL database, migrations, CAs, API key (in {workdir}) ...", flush=True)
            api_key = bootstrap(env)
            port = free_port()
            with gunicorn(env, port, args.workers, workdir / "gunicorn.log"):
                print(f"gunicorn: {args.workers} workers on 127.0.0.1:{port}, PostgreSQL, Redis cache; "
                      f"{args.concurrency} clients for {args.duration:g} s ...", flush=True)
                result = load(port, api_key, "load-issuing", args)
            consistency = subprocess.run(  # noqa: S603 (our own manage.py)
                [sys.executable, str(PROJECT_DIR / "manage.py"), "check_consistency", "--json"], env=env,
                cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600, check=False)
            result["consistency_exit_status"] = consistency.returncode
            result["consistency"] = json.loads(consistency.stdout or "{}")
            result["setup"] = {"database": "postgresql", "cache": "redis", "gunicorn_workers": args.workers}
            return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def load(port: int, api_key: str, ca: str, args: argparse.Namespace) -> dict[str, object]:
    target = prepare(port, api_key, ca)
    stats, elapsed = run_clients(target, args.concurrency, args.duration, args.max_requests)
    return summarize(stats, elapsed, {"concurrency": args.concurrency, "weights": WEIGHTS,
                                      "certificates_issued": len(target.issued)})


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--managed", action="store_true", help="set up PostgreSQL, Redis and gunicorn, then load")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="a running server (127.0.0.1 only)")
    parser.add_argument("--api-key", default=os.environ.get("PKI_LOADTEST_API_KEY", ""))
    parser.add_argument("--ca", default="", help="the issuing CA's slug (not --managed)")
    parser.add_argument("--duration", type=float, default=float(os.environ.get("LOAD_SECONDS", 180)))
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (--managed)")
    parser.add_argument("--json-out", type=Path, default=PROJECT_DIR / "loadtest-results.json")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.managed:
        result = run_managed(args)
    else:
        parts = urlsplit(args.url)
        if parts.hostname != "127.0.0.1" or not args.api_key or not args.ca:
            raise SystemExit("Give --url http://127.0.0.1:PORT (loopback only), --api-key and --ca, or --managed.")
        result = load(parts.port or 80, args.api_key, args.ca, args)
    print_table(result)
    args.json_out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"results written to {args.json_out}")
    failed = result["total"]["errors"] or result.get("consistency_exit_status", 0)  # type: ignore[index]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
