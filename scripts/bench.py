"""Benchmarks: `make bench` (or `.venv/bin/python scripts/bench.py`); BENCH_QUICK=1 for a run under a minute.

Every row is measured in a fresh subprocess, so the peak RSS of one row (ru_maxrss of that
process, Django loaded in every one of them) is not polluted by another. Rows:

    operation, n, median_ms, raw_median_ms, ratio, peak_rss_mb, raw_peak_rss_mb, notes

printed as a table and written to bench-results.json. A row whose operation has a "raw"
counterpart (the same work done directly with `cryptography`) shows both and their ratio.

Extending: write a function that returns rows, decorate it with `@suite("name")`; put what
must run isolated in a `@measurement("name")` function (it receives its JSON arguments and
returns a JSON dict) and call it with `measure_in_subprocess(name, args, env)`.

Current suites:
* crl: `generate_crl` end to end from the database (rows bulk-inserted) for
  1,000 / 10,000 / 100,000 revoked certificates, beside the raw `cryptography` build of the
  same entries with the same key in the same run.
* ocsp: responses per second over HTTP on loopback against gunicorn ((2 x cores) + 1 gthread
  workers by default; BENCH_OCSP_WORKERS, BENCH_OCSP_THREADS, BENCH_OCSP_WORKER_CLASS),
  keep-alive clients on threads; cached (RFC 5019 style, no nonce) and uncached (a nonce in
  every request forces a signature); the peak RSS is the largest worker's.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
# PostgreSQL when DATABASE_URL names a server: each suite gets a throw-away database there.
SERVER_DATABASE_URL = os.environ.get("DATABASE_URL", "") if os.environ.get(
    "DATABASE_URL", "").startswith(("postgres://", "postgresql://")) else ""
DATABASE_LABEL = "PostgreSQL" if SERVER_DATABASE_URL else "SQLite"
_suite_database_url = ""  # the current suite's throw-away PostgreSQL database
RESULTS_FILE = PROJECT_DIR / "bench-results.json"
BENCH_ROOT_PASSWORD = "benchmark root password, not a secret"  # noqa: S105

# --- The framework -------------------------------------------------------------------------


@dataclass
class Row:
    operation: str
    n: int
    median_ms: float
    raw_median_ms: float | None = None
    ratio: float | None = None
    peak_rss_mb: float | None = None
    raw_peak_rss_mb: float | None = None
    rps: float | None = None  # HTTP rows: our throughput
    peer_rps: float | None = None  # HTTP rows: cfssl's throughput in the same rounds
    peer_ratio: float | None = None  # rps / peer_rps: above 1, faster than cfssl
    floor_ratio: float | None = None  # in-process rows: ours / (raw work + the same statements in bare SQL)
    notes: str = ""


SUITES: dict[str, Callable[[Path], list[Row]]] = {}
MEASUREMENTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def suite(name: str) -> Callable:
    def register(function: Callable[[Path], list[Row]]) -> Callable[[Path], list[Row]]:
        SUITES[name] = function
        return function

    return register


def measurement(name: str) -> Callable:
    def register(function: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
        MEASUREMENTS[name] = function
        return function

    return register


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_environment(workdir: Path, **extra: str) -> dict[str, str]:
    """A self-contained installation in `workdir`: its database (a SQLite file there, or the suite's
    throw-away PostgreSQL database), data directory and throwaway secrets."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PKI_", "DJANGO_")) and key not in ("DATABASE_URL", "CACHE_URL")}
    env.update({
        "PKI_JWT_SECRET": "bench-jwt-secret-0123456789abcdefghijklmnop",
        "PKI_ENCRYPTION_KEY": "bench-encryption-key-0123456789abcdefghij",
        "PKI_ENCRYPTION_SALT": "bench-salt-0123456789ab",
        "PKI_ENV_FILE": str(workdir / "none.env"),
        "PKI_DATA_DIR": str(workdir / "data"),
        "DATABASE_URL": _suite_database_url or f"sqlite:///{workdir / 'pki.db'}",
        "PKI_COOKIE_SECURE": "false",
        "PKI_ROOT_KDF_LOG2_N": "12",
        "PKI_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "pki_project.settings",
    })
    env.update(extra)
    return env


def measure_in_subprocess(name: str, args: dict[str, Any], env: dict[str, str], timeout: int = 1800) -> dict:
    """Run measurement `name` in a fresh interpreter and return its JSON result (with its peak RSS)."""
    result = subprocess.run(  # noqa: S603 (this very script)
        [PYTHON, str(Path(__file__).resolve()), "--measure", name, json.dumps(args)],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"measurement {name} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_measurement(name: str, args: dict[str, Any]) -> None:
    sys.path.insert(0, str(PROJECT_DIR))
    import django

    django.setup()
    result = MEASUREMENTS[name](args)
    result.setdefault("peak_rss_mb", peak_rss_mb())
    print(json.dumps(result))


def print_table(rows: list[Row]) -> None:
    headers = ["operation", "n", "median_ms", "raw_median_ms", "ratio", "floor_ratio", "rps", "peer_rps",
               "peer_ratio", "peak_rss_mb", "raw_peak_rss_mb", "notes"]
    cells = [[_cell(getattr(row, h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    return str(value)


def migrate(env: dict[str, str]) -> None:
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],  # noqa: S603 (our manage.py)
                   cwd=PROJECT_DIR, env=env, check=True)


# --- CRL suite ----------------------------------------------------------------------------------

CRL_SIZES = [1_000, 10_000] if QUICK else [1_000, 10_000, 100_000]
REASONS = ["keyCompromise", "superseded", "unspecified", "cessationOfOperation", "affiliationChanged"]


@measurement("crl_setup")
def crl_setup(args: dict[str, Any]) -> dict[str, Any]:
    """A root, one intermediate per size, and n revoked certificate rows under each (bulk_create)."""
    from certificates.models import Certificate, CertificateKind, KeySource
    from certificates.services.authorities import create_intermediate_ca, create_root_ca
    from organizations.models import Organization
    from pki_project.actor import Actor

    actor = Actor.operator("bench")
    organization = Organization.objects.create(name="Bench Corp", slug="bench")
    root = create_root_ca(organization=organization, common_name="Bench Root", root_password=BENCH_ROOT_PASSWORD,
                          key_type="ec-p256", path_length=1, actor=actor)
    now = datetime.now(UTC).replace(microsecond=0)
    slugs = {}
    for n in args["sizes"]:
        ca = create_intermediate_ca(parent=root, common_name=f"Bench Issuing {n}", root_password=BENCH_ROOT_PASSWORD,
                                    key_type="ec-p256", slug=f"bench-{n}", actor=actor)
        slugs[n] = ca.slug
        batch = []
        for index in range(n):
            revoked_at = now - timedelta(minutes=index % 10_000)
            batch.append(Certificate(
                organization=organization, issuer=ca, kind=CertificateKind.END_ENTITY, profile="server",
                serial=secrets.token_hex(19), common_name=f"host{index}.example.com",
                subject=f"CN=host{index}.example.com", key_type="ec-p256", key_source=KeySource.CSR,
                not_before=now - timedelta(days=30), not_after=now + timedelta(days=300),
                fingerprint_sha256=secrets.token_hex(32), der=b"", revoked_at=revoked_at,
                revocation_reason=REASONS[index % len(REASONS)],
                invalidity_date=revoked_at - timedelta(hours=1) if index % 3 == 0 else None,
            ))
            if len(batch) == 5000:
                Certificate.objects.bulk_create(batch)
                batch = []
        Certificate.objects.bulk_create(batch)
    return {"slugs": slugs}


def _timed(function: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Median wall-clock and CPU milliseconds of `repeat` calls (CPU time is what a busy machine distorts least)."""
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return {"median_ms": statistics.median(wall), "best_ms": min(wall), "cpu_median_ms": statistics.median(cpu),
            "runs": repeat}


@measurement("crl_end_to_end")
def crl_end_to_end(args: dict[str, Any]) -> dict[str, Any]:
    """`generate_crl` as the service runs it: allocate a number, stream rows, build, sign, store."""
    from certificates.selectors import get_ca
    from certificates.services.publication import generate_crl
    from pki_project.actor import Actor

    ca = get_ca(args["slug"])
    actor = Actor.operator("bench")
    entries: list[int] = []
    timing = _timed(lambda: entries.append(generate_crl(ca, actor=actor).entry_count), args["repeat"])
    assert set(entries) == {args["n"]}, entries
    return timing


@measurement("crl_raw")
def crl_raw(args: dict[str, Any]) -> dict[str, Any]:
    """The same entries (read beforehand) built and signed directly with cryptography, the same key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from django.db import connection

    from certificates.crypto.crl import parse_reason
    from certificates.keystore import artifact_store
    from certificates.selectors import get_ca
    from certificates.services.records import load_x509
    from certificates.vault.custody import load_intermediate_key  # the raw baseline signs with the key itself

    ca = get_ca(args["slug"])
    key, issuer = load_intermediate_key(artifact_store(), ca.key_directory), load_x509(ca.certificate)
    with connection.cursor() as cursor:
        cursor.execute("SELECT serial, revoked_at, revocation_reason, invalidity_date FROM certificates_certificate "
                       "WHERE issuer_id = %s AND revoked_at IS NOT NULL", [ca.pk])
        rows = cursor.fetchall()

    def when(value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value).replace(tzinfo=UTC)

    entries = [(int(s, 16), when(r), parse_reason(reason), when(i)) for s, r, reason, i in rows]
    now = datetime.now(UTC).replace(microsecond=0)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())

    def build() -> bytes:
        revoked = []
        for serial, revoked_at, reason, invalidity in entries:
            builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
            if reason is not x509.ReasonFlags.unspecified:
                builder = builder.add_extension(x509.CRLReason(reason), critical=False)
            if invalidity is not None:
                builder = builder.add_extension(x509.InvalidityDate(invalidity), critical=False)
            revoked.append(builder.build())
        crl = x509.CertificateRevocationListBuilder(
            issuer_name=issuer.subject, last_update=now, next_update=now + timedelta(days=7),
            extensions=[x509.Extension(aki.oid, False, aki),
                        x509.Extension(x509.CRLNumber.oid, False, x509.CRLNumber(1))],
            revoked_certificates=revoked,
        ).sign(key, hashes.SHA256())
        assert len(crl) == args["n"]
        return crl.public_bytes(Encoding.DER)

    return _timed(build, args["repeat"])


@suite("crl")
def crl_suite(workdir: Path) -> list[Row]:
    env = bench_environment(workdir)
    migrate(env)
    slugs = measure_in_subprocess("crl_setup", {"sizes": CRL_SIZES}, env)["slugs"]
    rows = []
    for n in CRL_SIZES:
        repeat = 5 if n >= 100_000 else 7
        args = {"slug": slugs[str(n)], "n": n, "repeat": repeat}
        raw = measure_in_subprocess("crl_raw", args, env)
        ours = measure_in_subprocess("crl_end_to_end", args, env)
        rows.append(Row(
            operation=f"crl_build_{n}", n=n, median_ms=round(ours["median_ms"], 1),
            raw_median_ms=round(raw["median_ms"], 1), ratio=round(ours["median_ms"] / raw["median_ms"], 2),
            peak_rss_mb=ours["peak_rss_mb"], raw_peak_rss_mb=raw["peak_rss_mb"],
            notes=(f"generate_crl from {DATABASE_LABEL} vs raw cryptography, median of {repeat}; "
                   f"best {ours['best_ms']:.0f} vs "
                   f"{raw['best_ms']:.0f} ms (ratio {ours['best_ms'] / raw['best_ms']:.2f}); CPU "
                   f"{ours['cpu_median_ms']:.0f} vs {raw['cpu_median_ms']:.0f} ms "
                   f"(ratio {ours['cpu_median_ms'] / raw['cpu_median_ms']:.2f})"),
        ))
    return rows


# --- OCSP suite ----------------------------------------------------------------------------------

OCSP_SECONDS = 3 if QUICK else 10
OCSP_MAX_REQUESTS = 20_000 if QUICK else 100_000
OCSP_CLIENT_THREADS = 8
# gunicorn's own sizing advice: (2 x cores) + 1 workers; gthread workers keep connections alive.
OCSP_WORKERS = int(os.environ.get("BENCH_OCSP_WORKERS", str(2 * (os.cpu_count() or 1) + 1)))
OCSP_THREADS = int(os.environ.get("BENCH_OCSP_THREADS", "2"))
OCSP_WORKER_CLASS = os.environ.get("BENCH_OCSP_WORKER_CLASS", "gthread")


@measurement("ocsp_setup")
def ocsp_setup(args: dict[str, Any]) -> dict[str, Any]:
    """A hierarchy and one leaf; write the OCSP requests (DER) the clients send."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    from certificates.crypto.keys import generate_private_key
    from certificates.services.authorities import create_intermediate_ca, create_root_ca
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from certificates.services.records import load_x509
    from organizations.models import Organization
    from pki_project.actor import Actor

    actor = Actor.operator("bench")
    organization = Organization.objects.create(name="Bench OCSP", slug="bench-ocsp")
    root = create_root_ca(organization=organization, common_name="Bench OCSP Root",
                          root_password=BENCH_ROOT_PASSWORD, key_type="ec-p256", path_length=1, actor=actor)
    inter = create_intermediate_ca(parent=root, common_name="Bench OCSP Issuing", root_password=BENCH_ROOT_PASSWORD,
                                   key_type="ec-p256", slug="bench-ocsp", actor=actor)
    subscriber_key = generate_private_key("ec-p256")
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "ocsp.example.com")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("ocsp.example.com")]), critical=False)
           .sign(subscriber_key, hashes.SHA256()).public_bytes(Encoding.PEM))
    leaf = issue_certificate(inter, IssuanceRequest(profile="server", csr=csr), actor=actor)
    request = (ocsp.OCSPRequestBuilder()
               .add_certificate(load_x509(leaf), load_x509(inter.certificate), hashes.SHA1())  # noqa: S303
               .build().public_bytes(Encoding.DER))
    return {"slug": inter.slug, "request_hex": request.hex(), "leaf_der_hex": bytes(leaf.der).hex(),
            "issuer_der_hex": bytes(inter.certificate.der).hex()}


def _nonce_request(leaf_der: bytes, issuer_der: bytes) -> Callable[[], bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509 import ocsp

    leaf, issuer = x509.load_der_x509_certificate(leaf_der), x509.load_der_x509_certificate(issuer_der)
    prefix = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())  # noqa: S303

    def make() -> bytes:
        return prefix.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False).build().public_bytes(Encoding.DER)

    return make


@measurement("ocsp_client")
def ocsp_client(args: dict[str, Any]) -> dict[str, Any]:
    """Keep-alive HTTP clients on threads; bounded in time and count. Each answer is checked."""
    fixed = bytes.fromhex(args["request_hex"])
    make_nonce_request = _nonce_request(bytes.fromhex(args["leaf_der_hex"]), bytes.fromhex(args["issuer_der_hex"]))
    # Prepared before the clock starts so the clients' own signing work stays out of the figure.
    bodies = [fixed] if args["cached"] else [make_nonce_request() for _ in range(min(args["max_requests"], 20_000))]
    path = f"/pki/ocsp/{args['slug']}/"
    deadline = time.perf_counter() + args["seconds"]
    latencies: list[list[float]] = [[] for _ in range(args["threads"])]
    errors: list[str] = []
    counter = iter(range(args["max_requests"]))
    lock = threading.Lock()

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", args["port"], timeout=30)
        mine = latencies[index]
        while time.perf_counter() < deadline:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            body = bodies[number % len(bodies)]
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/ocsp-request"})
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", args["port"], timeout=30)
                continue
            mine.append((time.perf_counter() - start) * 1000)
            if response.status != 200 or len(payload) < 100:
                errors.append(f"HTTP {response.status}: {payload[:40]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    done = [value for per_thread in latencies for value in per_thread]
    return {"requests": len(done), "rps": len(done) / elapsed, "median_ms": statistics.median(done) if done else 0,
            "errors": len(errors), "first_errors": errors[:3]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _workers(master_pid: int) -> list[str]:
    return Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()


def worker_peak_rss_mb(master_pid: int) -> float:
    """The largest VmHWM (peak RSS) among gunicorn's worker processes."""
    peaks = []
    for child in _workers(master_pid):
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return round(max(peaks), 1) if peaks else 0.0


def workers_cpu_seconds(master_pid: int) -> float:
    """User + system CPU time of all gunicorn workers so far (/proc/PID/stat fields 14 and 15)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for child in _workers(master_pid):
        fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def wait_for_server(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("gunicorn exited early")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not start")


@suite("ocsp")
def ocsp_suite(workdir: Path) -> list[Row]:
    port = free_port()
    env = bench_environment(workdir, PKI_BASE_URL=f"http://127.0.0.1:{port}", PKI_PUBLIC_RATE_PER_IP="100000000")
    migrate(env)
    setup = measure_in_subprocess("ocsp_setup", {}, env)
    gunicorn = PROJECT_DIR / ".venv" / "bin" / "gunicorn"
    server = subprocess.Popen(  # noqa: S603 (the project's gunicorn)
        [str(gunicorn), "pki_project.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(OCSP_WORKERS), "--worker-class", OCSP_WORKER_CLASS, "--threads", str(OCSP_THREADS),
         "--keep-alive", "30", "--log-level", "warning"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    rows = []
    try:
        wait_for_server(port, server)
        for cached in (True, False):
            args = {**setup, "port": port, "cached": cached, "seconds": OCSP_SECONDS, "threads": OCSP_CLIENT_THREADS,
                    "max_requests": OCSP_MAX_REQUESTS}
            measure_in_subprocess("ocsp_client", {**args, "seconds": 1}, env)  # warm-up: keys, caches, responder
            cpu_before = workers_cpu_seconds(server.pid)
            result = measure_in_subprocess("ocsp_client", args, env)
            server_cpu_ms = (workers_cpu_seconds(server.pid) - cpu_before) * 1000 / max(1, result["requests"])
            if result["errors"]:
                raise RuntimeError(f"OCSP benchmark saw errors: {result['first_errors']}")
            # What the machine could serve if the server had every core to itself (busy machines distort rps).
            capacity = (os.cpu_count() or 1) * 1000 / max(server_cpu_ms, 1e-6)
            rows.append(Row(
                operation="ocsp_http_cached" if cached else "ocsp_http_uncached", n=result["requests"],
                median_ms=round(result["median_ms"], 3), peak_rss_mb=worker_peak_rss_mb(server.pid),
                notes=(f"{result['rps']:.0f} responses/s measured; server CPU {server_cpu_ms:.3f} ms/response "
                       f"(= {capacity:.0f}/s on {os.cpu_count()} cores); gunicorn {OCSP_WORKERS} {OCSP_WORKER_CLASS} "
                       f"workers x "
                       f"{OCSP_THREADS} threads, {OCSP_CLIENT_THREADS} keep-alive client threads, {OCSP_SECONDS} s; "
                       + ("same request, no nonce (served from the cache)" if cached
                          else "a nonce in every request (signed per request)")),
            ))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return rows


# --- Main ----------------------------------------------------------------------------------------


# The lifecycle suites (issue, keygen, revoke, list) live beside this file and register here.
import bench_lifecycle  # noqa: E402  (needs the framework above)
import bench_peer  # noqa: E402

bench_lifecycle.register(sys.modules[__name__])
bench_peer.register(sys.modules[__name__])


@contextlib.contextmanager
def suite_database(suite: str) -> Iterator[None]:
    """On PostgreSQL, a database of the suite's own for its duration (dropped after); on SQLite, nothing."""
    global _suite_database_url
    if not SERVER_DATABASE_URL:
        yield
        return
    import psycopg

    name = f"{os.environ.get('BENCH_DATABASE_PREFIX', 'pki_bench')}_{suite}_{secrets.token_hex(4)}"
    with psycopg.connect(SERVER_DATABASE_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    _suite_database_url = SERVER_DATABASE_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield
    finally:
        _suite_database_url = ""
        with psycopg.connect(SERVER_DATABASE_URL, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--measure", nargs=2, metavar=("NAME", "JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--suite", action="append", choices=sorted(SUITES), help="run only these suites")
    options = parser.parse_args()
    if options.measure:
        run_measurement(options.measure[0], json.loads(options.measure[1]))
        return 0
    rows: list[Row] = []
    failed: dict[str, str] = {}
    started = time.perf_counter()
    for name in options.suite or list(SUITES):
        workdir = Path(tempfile.mkdtemp(prefix=f"pki-bench-{name}-"))
        try:
            with suite_database(name):
                rows.extend(SUITES[name](workdir))
        except Exception as error:  # one broken suite must not cost the figures of the others
            failed[name] = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
            print(f"Suite {name} failed: {error}", file=sys.stderr)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(rows)
    payload = {"quick": QUICK, "cpus": os.cpu_count(), "database": DATABASE_LABEL,
               "seconds": round(time.perf_counter() - started, 1), "rows": [asdict(row) for row in rows],
               "failed_suites": failed}
    RESULTS_FILE.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nWritten to {RESULTS_FILE.name} ({payload['seconds']} s on {DATABASE_LABEL}"
          f"{', quick run' if QUICK else ''}).")
    if failed:
        print(f"Failed suites: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
