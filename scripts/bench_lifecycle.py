"""Benchmark suites for the certificate lifecycle, registered into `scripts/bench.py`'s framework.

* issue: `issue_certificate` from a CSR through the service layer (database row and
  audit event included) for each CA key type, beside the raw `cryptography` work for
  the same request (parse the CSR, verify it, build the same extensions, sign). The two
  alternate call by call in one process, so a machine whose speed drifts (this one's
  moves by a third within minutes) slows both alike; the raw work alone in a tight loop,
  in its own process, is in the notes (it runs with warmer caches, so it is faster).
* keygen: issuance with a key generated on the server and sealed in a PKCS#12, beside
  the raw generate + build + sign + PKCS#12 serialization.
* revoke: `revoke_certificate` end to end: row update, audit event, and the issuer's
  CRL re-signed as the revocation commits.
* list: one page of `GET /api/v1/certificates/` through the whole Django stack over a
  100,000-certificate inventory (10,000 with BENCH_QUICK=1), once per filter.
* issue_http: `POST /api/v1/certificates/` with a CSR against gunicorn (several workers) from
  keep-alive client threads on loopback, beside the in-process rate of the same run.
* backup: `create_backup` and `restore_backup` of a 1,000- and a 100,000-certificate
  installation (10,000 with BENCH_QUICK=1): time and peak memory, which must not grow
  with the size.
"""

from __future__ import annotations

import secrets
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

ISSUE_KEY_TYPES = ["ec-p256", "ec-p384", "rsa-2048", "rsa-4096", "ed25519"]
LIST_FILTERS = {
    "none": "",
    "status": "status=valid",
    "ca": "ca={ca}",
    "organization": "organization={organization}",
    "expiring_within": "expiring_within=30",
    "search_cn": "search=host4242",
    "search_serial": "search={serial}",
}


def register(bench: ModuleType) -> None:
    """Add the lifecycle measurements and suites to the framework module `bench`."""
    quick = bench.QUICK
    issue_count = 40 if quick else 200
    inventory = 10_000 if quick else 100_000

    @bench.measurement("lifecycle_setup")
    def lifecycle_setup(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.services.authorities import create_intermediate_ca, create_root_ca
        from organizations.models import Organization
        from pki_project.actor import Actor

        actor = Actor.operator("bench")
        organization = Organization.objects.create(name="Bench Corp", slug="bench")
        slugs = {}
        for key_type in args["key_types"]:
            root = create_root_ca(organization=organization, common_name=f"Bench Root {key_type}",
                                  root_password=bench.BENCH_ROOT_PASSWORD, key_type=key_type, actor=actor)
            inter = create_intermediate_ca(parent=root, common_name=f"Bench Issuing {key_type}",
                                           root_password=bench.BENCH_ROOT_PASSWORD, key_type=key_type, actor=actor)
            slugs[key_type] = inter.slug
        return {"slugs": slugs}

    @bench.measurement("issue_service")
    def issue_service(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.selectors import get_ca
        from certificates.services.issuance import IssuanceRequest, issue_certificate
        from pki_project.actor import Actor

        ca, actor = get_ca(args["slug"]), Actor.operator("bench")
        csrs = iter(_csrs(args["n"] + 1))
        issue_certificate(ca, IssuanceRequest(profile="server", csr=next(csrs)), actor=actor)  # warm the key cache
        return bench._timed(lambda: issue_certificate(ca, IssuanceRequest(profile="server", csr=next(csrs)),
                                                   actor=actor), args["n"])

    @bench.measurement("issue_interleaved")
    def issue_interleaved(args: dict[str, Any]) -> dict[str, Any]:
        """Service and raw issuance alternating call by call, so both see the same machine state."""
        from certificates.keystore import artifact_store
        from certificates.selectors import get_ca
        from certificates.services.issuance import IssuanceRequest, issue_certificate
        from certificates.services.records import load_x509
        from certificates.vault.custody import load_intermediate_key  # the raw baseline signs with the key itself
        from pki_project.actor import Actor

        ca, actor = get_ca(args["slug"]), Actor.operator("bench")
        key, issuer = load_intermediate_key(artifact_store(), ca.key_directory), load_x509(ca.certificate)
        ours_csrs, raw_csrs, floor_csrs = iter(_csrs(args["n"] + 1)), iter(_csrs(args["n"])), iter(_csrs(args["n"]))
        issue_certificate(ca, IssuanceRequest(profile="server", csr=next(ours_csrs)), actor=actor)  # warm up
        functions = {
            "ours": lambda: issue_certificate(ca, IssuanceRequest(profile="server", csr=next(ours_csrs)), actor=actor),
            "raw": lambda: _raw_issue(next(raw_csrs), issuer, key),
        }
        floor = _bare_sqlite_floor(issuer, key, floor_csrs) or _bare_postgres_floor(issuer, key, floor_csrs)
        if floor is not None:
            functions["floor"] = floor
        results = _interleaved_all(functions, args["n"])
        return {**results.pop("ours"), **results}

    @bench.measurement("issue_raw")
    def issue_raw(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.keystore import artifact_store
        from certificates.selectors import get_ca
        from certificates.services.records import load_x509
        from certificates.vault.custody import load_intermediate_key  # the raw baseline signs with the key itself

        ca = get_ca(args["slug"])
        key, issuer = load_intermediate_key(artifact_store(), ca.key_directory), load_x509(ca.certificate)
        csrs = iter(_csrs(args["n"]))
        return bench._timed(lambda: _raw_issue(next(csrs), issuer, key), args["n"])

    @bench.measurement("keygen_service")
    def keygen_service(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.selectors import get_ca
        from certificates.services.issuance import IssuanceRequest, issue_certificate
        from pki_project.actor import Actor

        ca, actor = get_ca(args["slug"]), Actor.operator("bench")
        counter = iter(range(10**9))
        return bench._timed(lambda: issue_certificate(ca, IssuanceRequest(
            profile="client", common_name=f"device-{next(counter)}.example.com", key_type="ec-p256"),
            actor=actor), args["n"])

    @bench.measurement("keygen_raw")
    def keygen_raw(args: dict[str, Any]) -> dict[str, Any]:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import pkcs12

        from certificates.crypto.pkcs12 import build_pkcs12
        from certificates.keystore import artifact_store
        from certificates.selectors import get_ca
        from certificates.services.records import load_x509
        from certificates.vault.custody import load_intermediate_key  # the raw baseline signs with the key itself

        ca = get_ca(args["slug"])
        ca_key, issuer = load_intermediate_key(artifact_store(), ca.key_directory), load_x509(ca.certificate)

        def once() -> bytes:
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = _raw_certificate(issuer, ca_key, key.public_key(), "device.example.com")
            return build_pkcs12(key, certificate, [issuer], secrets.token_urlsafe(24).encode(), None)

        assert pkcs12  # the raw path uses the same PKCS#12 parameters as the product
        return bench._timed(once, args["n"])

    @bench.measurement("revoke_service")
    def revoke_service(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.models import Certificate
        from certificates.selectors import get_ca
        from certificates.services.issuance import IssuanceRequest, issue_certificate
        from certificates.services.revocation import revoke_certificate
        from pki_project.actor import Actor

        ca, actor = get_ca(args["slug"]), Actor.operator("bench")
        targets = iter([issue_certificate(ca, IssuanceRequest(profile="server", csr=csr), actor=actor)
                        for csr in _csrs(args["n"])])
        Certificate.objects.count()
        return bench._timed(lambda: revoke_certificate(next(targets), reason="superseded", actor=actor), args["n"])

    @bench.measurement("inventory_setup")
    def inventory_setup(args: dict[str, Any]) -> dict[str, Any]:
        return _bulk_inventory(args["slug"], args["n"])

    @bench.measurement("list_page")
    def list_page(args: dict[str, Any]) -> dict[str, Any]:
        from django.test import Client

        from organizations.services import create_api_key, ensure_member
        from pki_project.actor import Actor

        user, _ = ensure_member("bench-admin", "admin", None, actor=Actor.operator("bench"))
        client = Client(headers={"Authorization": f"Bearer {create_api_key(user, label='bench').key}"},
                        SERVER_NAME="localhost")  # an ALLOWED_HOSTS name
        url = f"/api/v1/certificates/?{args['query']}"
        first = client.get(url)
        assert first.status_code == 200, (first.status_code, first.content[:300])
        timing = bench._timed(lambda: client.get(url), args["repeat"])
        timing["page_rows"] = len(first.json().get("results", []))
        return timing

    @bench.measurement("api_key_setup")
    def api_key_setup(args: dict[str, Any]) -> dict[str, Any]:
        from organizations.services import create_api_key, ensure_member
        from pki_project.actor import Actor

        user, _ = ensure_member("bench-http", "admin", None, actor=Actor.operator("bench"))
        return {"key": create_api_key(user, label="bench").key}

    @bench.measurement("issue_http_client")
    def issue_http_client(args: dict[str, Any]) -> dict[str, Any]:
        return _http_issuance(args)

    @bench.measurement("backup_create")
    def backup_create(args: dict[str, Any]) -> dict[str, Any]:
        from backups.services import create_backup
        from pki_project.actor import Actor

        start = time.perf_counter()
        with open(args["output"], "wb") as handle:
            create_backup(handle, Actor.operator("bench"))
        return {"median_ms": (time.perf_counter() - start) * 1000, "bytes": Path(args["output"]).stat().st_size}

    @bench.measurement("backup_restore")
    def backup_restore(args: dict[str, Any]) -> dict[str, Any]:
        from backups.services import restore_backup
        from pki_project.actor import Actor

        start = time.perf_counter()
        restore_backup(args["archive"], Actor.operator("bench"))
        return {"median_ms": (time.perf_counter() - start) * 1000}

    @bench.suite("issue_http")
    def issue_http_suite(workdir: Path) -> list:
        """Rounds of (in-process rate, then HTTP rate): each HTTP figure is set against the in-process figure
        taken just before it, and the row reports the median round, so a machine whose speed drifts
        between the two measurements moves one round, not the result."""
        port = bench.free_port()
        env = bench.bench_environment(workdir, PKI_BASE_URL="http://pki.example.com", PKI_ALLOWED_HOSTS="127.0.0.1")
        bench.migrate(env)
        slug = bench.measure_in_subprocess("lifecycle_setup", {"key_types": ["ec-p256"]}, env)["slugs"]["ec-p256"]
        key = bench.measure_in_subprocess("api_key_setup", {}, env)["key"]
        server = _start_gunicorn(bench, env, port, workers=HTTP_WORKERS)
        rounds = []
        try:
            args = {"port": port, "key": key, "ca": slug, "seconds": HTTP_SECONDS, "threads": HTTP_CLIENT_THREADS,
                    "requests": issue_count * 2}
            bench.measure_in_subprocess("issue_http_client", {**args, "seconds": 1, "requests": 10}, env)  # warm-up
            for _ in range(HTTP_ROUNDS):
                in_process = bench.measure_in_subprocess("issue_service", {"slug": slug, "n": issue_count}, env)
                result = bench.measure_in_subprocess("issue_http_client", args, env)
                if result["errors"]:
                    raise RuntimeError(f"HTTP issuance saw errors: {result['first_errors']}")
                in_process_rate = 1000 / in_process["median_ms"]
                rounds.append((100 * result["rps"] / in_process_rate, result, in_process_rate))
            peak = bench.worker_peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
        percent, result, in_process_rate = sorted(rounds, key=lambda item: item[0])[len(rounds) // 2]
        every = ", ".join(f"{item[0]:.0f} %" for item in rounds)
        return [bench.Row(
            operation="issue_http_ec-p256", n=result["requests"], median_ms=round(result["median_ms"], 2),
            peak_rss_mb=peak,
            notes=(f"{result['rps']:.0f} certificates/s over HTTP ({HTTP_WORKERS} gunicorn workers, "
                   f"{HTTP_CLIENT_THREADS} keep-alive client threads) = {percent:.0f} % of the in-process rate "
                   f"measured just before ({in_process_rate:.0f}/s); median of {len(rounds)} rounds ({every})"),
        )]

    @bench.suite("backup")
    def backup_suite(workdir: Path) -> list:
        rows = []
        for n in (1_000, inventory):
            directory = workdir / f"install-{n}"
            directory.mkdir()
            env = bench.bench_environment(directory)
            bench.migrate(env)
            slug = bench.measure_in_subprocess("lifecycle_setup", {"key_types": ["ec-p256"]}, env)["slugs"]["ec-p256"]
            bench.measure_in_subprocess("inventory_setup", {"slug": slug, "n": n}, env)
            archive = directory / "backup.zip"
            made = bench.measure_in_subprocess("backup_create", {"output": str(archive)}, env)
            restored = bench.measure_in_subprocess("backup_restore", {"archive": str(archive)}, env)
            size_mb = made["bytes"] / 1e6
            rows.append(bench.Row(operation=f"backup_{n}", n=n, median_ms=round(made["median_ms"], 1),
                                  peak_rss_mb=made["peak_rss_mb"], notes=f"archive {size_mb:.1f} MB, one run"))
            rows.append(bench.Row(operation=f"restore_{n}", n=n, median_ms=round(restored["median_ms"], 1),
                                  peak_rss_mb=restored["peak_rss_mb"], notes="validate + atomic swap, one run"))
        return rows

    @bench.suite("issue")
    def issue_suite(workdir: Path) -> list:
        env = bench.bench_environment(workdir)
        bench.migrate(env)
        slugs = bench.measure_in_subprocess("lifecycle_setup", {"key_types": ISSUE_KEY_TYPES}, env)["slugs"]
        rows = []
        for key_type in ISSUE_KEY_TYPES:
            args = {"slug": slugs[key_type], "n": issue_count}
            raw_alone = bench.measure_in_subprocess("issue_raw", args, env)  # the raw work's own peak RSS
            ours = bench.measure_in_subprocess("issue_interleaved", args, env)
            raw = {**ours.pop("raw"), "peak_rss_mb": raw_alone["peak_rss_mb"]}
            floor = ours.pop("floor", None)
            floor_note = (f"; floor (raw + the same two rows and commit in bare {bench.DATABASE_LABEL} statements, "
                          "no Python around them): "
                          f"{floor['median_ms']:.3f} ms = ratio {floor['median_ms'] / raw['median_ms']:.2f}"
                          if floor else "")
            row = _compare(bench, f"issue_csr_{key_type}", issue_count, ours, raw,
                           f"issue_certificate (row + audit event, {bench.DATABASE_LABEL}) vs "
                           "parse+verify+build+sign, "
                           f"alternating call by call (raw alone, in a tight loop: "
                           f"{raw_alone['median_ms']:.3f} ms){floor_note}")
            if floor:
                row.floor_ratio = round(ours["median_ms"] / floor["median_ms"], 2)
            rows.append(row)
        args = {"slug": slugs["ec-p256"], "n": max(issue_count // 4, 10)}
        raw = bench.measure_in_subprocess("keygen_raw", args, env)
        ours = bench.measure_in_subprocess("keygen_service", args, env)
        rows.append(_compare(bench, "issue_server_key_p12_ec-p256", args["n"], ours, raw,
                             "key generated here + PKCS#12 sealed at rest vs generate+build+sign+PKCS#12"))
        ours = bench.measure_in_subprocess("revoke_service", args, env)
        rows.append(bench.Row(operation="revoke", n=args["n"], median_ms=round(ours["median_ms"], 3),
                              peak_rss_mb=ours["peak_rss_mb"],
                              notes="row update + audit event + the issuer CRL re-signed on commit"))
        return rows

    @bench.suite("list")
    def list_suite(workdir: Path) -> list:
        env = bench.bench_environment(workdir)
        bench.migrate(env)
        slug = bench.measure_in_subprocess("lifecycle_setup", {"key_types": ["ec-p256"]}, env)["slugs"]["ec-p256"]
        facts = bench.measure_in_subprocess("inventory_setup", {"slug": slug, "n": inventory}, env)
        rows = []
        for name, query in LIST_FILTERS.items():
            query = query.format(ca=facts["ca_id"], organization=facts["organization_id"], serial=facts["serial"])
            ours = bench.measure_in_subprocess("list_page", {"query": query, "repeat": 15}, env)
            rows.append(bench.Row(operation=f"list_page_{name}", n=inventory, median_ms=round(ours["median_ms"], 2),
                                  peak_rss_mb=ours["peak_rss_mb"],
                                  notes=f"GET /api/v1/certificates/?{query} ({ours['page_rows']} rows on the page)"))
        return rows


HTTP_WORKERS = 2
HTTP_ROUNDS = 3
HTTP_CLIENT_THREADS = 4
HTTP_SECONDS = 10


def _start_gunicorn(bench: ModuleType, env: dict[str, str], port: int, workers: int):
    import subprocess

    gunicorn = bench.PROJECT_DIR / ".venv" / "bin" / "gunicorn"
    server = subprocess.Popen(  # noqa: S603 (the project's own gunicorn)
        [str(gunicorn), "pki_project.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--worker-class", "gthread", "--threads", "2", "--keep-alive", "30", "--log-level", "warning"],
        cwd=bench.PROJECT_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    bench.wait_for_server(port, server)
    return server


def _http_issuance(args: dict[str, Any]) -> dict[str, Any]:
    """Threads posting CSRs over keep-alive connections until the count or the time runs out."""
    import http.client
    import json
    import threading

    csrs = _csrs(args["requests"])
    lock, latencies, errors = threading.Lock(), [], []
    deadline = time.monotonic() + args["seconds"]

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", args["port"], timeout=60)
        headers = {"Authorization": f"Bearer {args['key']}", "Content-Type": "application/json"}
        while time.monotonic() < deadline:
            with lock:
                if not csrs:
                    return
                csr = csrs.pop()
            body = json.dumps({"ca": args["ca"], "profile": "server", "csr": csr.decode()})
            start = time.perf_counter()
            connection.request("POST", "/api/v1/certificates/", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                (latencies if response.status == 201 else errors).append(
                    elapsed if response.status == 201 else f"{response.status} {payload[:200]!r}")

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(args["threads"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    return {"requests": len(latencies), "rps": len(latencies) / seconds, "errors": len(errors),
            "first_errors": errors[:3], "median_ms": statistics.median(latencies) if latencies else 0.0}


def _compare(bench: ModuleType, operation: str, n: int, ours: dict, raw: dict, notes: str):
    return bench.Row(
        operation=operation, n=n, median_ms=round(ours["median_ms"], 3), raw_median_ms=round(raw["median_ms"], 3),
        ratio=round(ours["median_ms"] / raw["median_ms"], 2), peak_rss_mb=ours["peak_rss_mb"],
        raw_peak_rss_mb=raw["peak_rss_mb"],
        notes=f"{notes}; CPU {ours['cpu_median_ms']:.3f} vs {raw['cpu_median_ms']:.3f} ms",
    )


def _interleaved_all(functions: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """`bench._timed` of several functions called in turn, call by call: a machine that slows down slows all alike."""
    wall: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(n):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name].append((time.process_time() - start_cpu) * 1000)
    return {name: {"median_ms": statistics.median(wall[name]), "cpu_median_ms": statistics.median(cpu[name]),
                   "runs": n} for name in functions}


def _bare_sqlite_floor(issuer, issuer_key, csrs):
    """The raw issuance plus the same two rows written with no Python around them, or None off SQLite.

    A scratch SQLite file with this installation's schema for the two tables (the same
    columns and indexes, no triggers), WAL and synchronous=NORMAL as configured: BEGIN
    IMMEDIATE, the certificate INSERT, the chain-head SELECT, the audit INSERT, COMMIT,
    through the sqlite3 module with values ready. What no Django service can go below.
    """
    import hashlib
    import sqlite3

    from django.conf import settings
    from django.db import connection

    if connection.vendor != "sqlite":
        return None
    scratch = Path(settings.PKI_DATA_DIR).parent / f"floor-{secrets.token_hex(4)}.db"  # one per measurement
    schema = [sql for (sql,) in connection.cursor().execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name IN ('certificates_certificate', 'audit_auditevent') "
        "AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC")]
    database = sqlite3.connect(scratch, isolation_level=None)
    database.execute("PRAGMA journal_mode=WAL")
    database.execute("PRAGMA synchronous=NORMAL")
    for statement in schema:
        database.execute(statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")
                         .replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
    database.execute("INSERT INTO audit_auditevent (seq, version, created_at, action, outcome, actor_label, "
                     "organization_slug, actor_username, actor_role, target_type, target_id, target_serial, "
                     "source_ip, user_agent, details, prev_hash, hash, mac) VALUES (1, 1, '2026-01-01 00:00:00', "
                     "'x', 'success', '', '', '', '', '', '', '', '', '', '{}', ?, ?, ?)",
                     ("0" * 64, "1" * 64, "2" * 64))
    certificate_sql = ("INSERT INTO certificates_certificate (organization_id, issuer_id, kind, profile, serial, "
                       "common_name, subject, sans, key_type, key_source, not_before, not_after, fingerprint_sha256, "
                       "der, key_path, pkcs12_path, pkcs12_password_path, revocation_reason, created_by, created_at) "
                       "VALUES (1, 1, 'end_entity', 'server', ?, ?, ?, ?, 'ec-p256', 'csr', '2026-01-01 00:00:00', "
                       "'2027-01-01 00:00:00', ?, ?, '', '', '', '', 'cli:bench', '2026-01-01 00:00:00')")
    audit_sql = ("INSERT INTO audit_auditevent (seq, version, created_at, action, outcome, actor_label, "
                 "organization_id, organization_slug, actor_username, actor_role, target_type, target_id, "
                 "target_serial, source_ip, user_agent, details, prev_hash, hash, mac) VALUES (?, 1, "
                 "'2026-01-01 00:00:00', 'certificate.issue', 'success', 'cli:bench', 1, 'bench', '', '', "
                 "'certificate', ?, ?, '', '', '{\"ca\": \"bench\", \"profile\": \"server\"}', ?, ?, ?)")

    def floor() -> None:
        der = _raw_issue(next(csrs), issuer, issuer_key)
        fingerprint = hashlib.sha256(der).hexdigest()
        database.execute("BEGIN IMMEDIATE")
        row_id = database.execute(certificate_sql, (fingerprint[:32], "host.example.com", "CN=host.example.com",
                                                    '["DNS:host.example.com"]', fingerprint, der)).lastrowid
        seq, previous = database.execute("SELECT seq, hash FROM audit_auditevent ORDER BY seq DESC LIMIT 1").fetchone()
        database.execute(audit_sql, (seq + 1, str(row_id), fingerprint[:32], previous, fingerprint, fingerprint))
        database.execute("COMMIT")

    return floor


def _bare_postgres_floor(issuer, issuer_key, csrs):
    """The PostgreSQL floor: the raw issuance plus the same statements through a bare psycopg connection.

    Scratch copies of the two tables (`LIKE ... INCLUDING ALL`: columns, defaults, identity,
    constraints and indexes; no foreign keys) in the installation's own database: BEGIN, the
    chain's advisory lock, the certificate INSERT ... RETURNING id, the chain-head SELECT, the
    audit INSERT, COMMIT, with values ready. None off PostgreSQL.
    """
    import hashlib

    import psycopg
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    from audit.services import CHAIN_LOCK_KEY

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    database = psycopg.connect(**params, autocommit=True)
    suffix = secrets.token_hex(4)
    certificates, events = f"floor_certificate_{suffix}", f"floor_audit_{suffix}"
    database.execute(f"CREATE TABLE {certificates} (LIKE certificates_certificate INCLUDING ALL)")
    database.execute(f"CREATE TABLE {events} (LIKE audit_auditevent INCLUDING ALL)")
    audit_columns = ("seq, version, created_at, action, outcome, actor_label, organization_id, organization_slug, "
                     "actor_username, actor_role, target_type, target_id, target_serial, source_ip, user_agent, "
                     "details, prev_hash, hash, mac")
    database.execute(f"INSERT INTO {events} ({audit_columns}) VALUES (1, 1, now(), 'x', 'success', '', NULL, '', "  # noqa: S608
                     "'', '', '', '', '', '', '', '{}', %s, %s, %s)", ("0" * 64, "1" * 64, "2" * 64))
    certificate_sql = (f"INSERT INTO {certificates} (organization_id, issuer_id, kind, profile, serial, "  # noqa: S608
                       "common_name, subject, sans, key_type, key_source, not_before, not_after, fingerprint_sha256, "
                       "der, key_path, pkcs12_path, pkcs12_password_path, revocation_reason, created_by, created_at) "
                       "VALUES (1, 1, 'end_entity', 'server', %s, %s, %s, %s, 'ec-p256', 'csr', now(), "
                       "now() + interval '90 days', %s, %s, '', '', '', '', 'cli:bench', now()) RETURNING id")
    head_sql = f"SELECT seq, hash FROM {events} ORDER BY seq DESC LIMIT 1"  # noqa: S608
    audit_sql = (f"INSERT INTO {events} ({audit_columns}) VALUES (%s, 1, now(), 'certificate.issue', 'success', "  # noqa: S608
                 "'cli:bench', 1, 'bench', '', '', 'certificate', %s, %s, '', '', "
                 "'{\"ca\": \"bench\", \"profile\": \"server\"}', %s, %s, %s)")

    def floor() -> None:
        der = _raw_issue(next(csrs), issuer, issuer_key)
        fingerprint = hashlib.sha256(der).hexdigest()
        with database.transaction():
            database.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK_KEY,))
            (row_id,) = database.execute(certificate_sql, (fingerprint[:32], "host.example.com", "CN=host.example.com",
                                                           '["DNS:host.example.com"]', fingerprint, der)).fetchone()
            seq, previous = database.execute(head_sql).fetchone()
            database.execute(audit_sql, (seq + 1, str(row_id), fingerprint[:32], previous, fingerprint,
                                         fingerprint))

    return floor


def _csrs(n: int) -> list[bytes]:
    """Subscriber CSRs (EC P-256 keys: the subscriber's key type is not what is measured)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import NameOID

    requests = []
    for index in range(n):
        name = f"host{index}-{secrets.token_hex(4)}.example.com"
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ).add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        requests.append(builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256()).public_bytes(
            Encoding.PEM))
    return requests


def _raw_certificate(issuer, issuer_key, public_key, name: str):
    """What a minimal careful CA does with `cryptography` alone: the same extensions, signed."""
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID

    from certificates.crypto.keys import signature_hash_for

    now = datetime.now(UTC)
    url = "http://pki.example.com/pki"
    builder = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.subject).public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key()), critical=False)
        .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
            [x509.UniformResourceIdentifier(f"{url}/crl/ca.crl")], None, None, None)]), critical=False)
        .add_extension(x509.AuthorityInformationAccess([
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                   x509.UniformResourceIdentifier(f"{url}/ocsp/ca/")),
            x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                   x509.UniformResourceIdentifier(f"{url}/ca/ca.crt"))]), critical=False)
    )
    return builder.sign(issuer_key, signature_hash_for(issuer_key))


def _raw_issue(csr_pem: bytes, issuer, issuer_key) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    csr = x509.load_pem_x509_csr(csr_pem)
    assert csr.is_signature_valid
    name = csr.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    return _raw_certificate(issuer, issuer_key, csr.public_key(), name).public_bytes(Encoding.DER)


def _bulk_inventory(slug: str, n: int) -> dict[str, Any]:
    """`n` certificate rows under one CA (bulk insert; a quarter revoked, a tenth expiring soon)."""
    from certificates.models import Certificate, CertificateKind, KeySource
    from certificates.selectors import get_ca

    ca = get_ca(slug)
    now = datetime.now(UTC).replace(microsecond=0)
    batch: list[Certificate] = []
    serial = ""
    for index in range(n):
        serial = secrets.token_hex(19)
        revoked = index % 4 == 0
        batch.append(Certificate(
            organization_id=ca.organization_id, issuer=ca, kind=CertificateKind.END_ENTITY, profile="server",
            serial=serial, common_name=f"host{index}.example.com", subject=f"CN=host{index}.example.com",
            sans=[f"DNS:host{index}.example.com"], key_type="ec-p256", key_source=KeySource.CSR,
            not_before=now - timedelta(days=10), not_after=now + timedelta(days=5 if index % 10 == 0 else 150),
            fingerprint_sha256=secrets.token_hex(32), der=b"", revoked_at=now if revoked else None,
            revocation_reason="superseded" if revoked else "",
        ))
        if len(batch) == 5000:
            Certificate.objects.bulk_create(batch)
            batch = []
    Certificate.objects.bulk_create(batch)
    return {"ca_id": ca.pk, "organization_id": ca.organization_id, "serial": serial}
