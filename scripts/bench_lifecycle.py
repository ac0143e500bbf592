"""Benchmark suites for the certificate lifecycle, registered into `scripts/bench.py`'s framework.

* issue: `issue_certificate` from a CSR through the service layer (database row and
  audit event included) for each CA key type, beside the raw `cryptography` work for
  the same request (parse the CSR, verify it, build the same extensions, sign).
* keygen: issuance with a key generated on the server and sealed in a PKCS#12, beside
  the raw generate + build + sign + PKCS#12 serialization.
* revoke: `revoke_certificate` end to end: row update, audit event, and the issuer's
  CRL re-signed as the revocation commits.
* list: one page of `GET /api/v1/certificates/` through the whole Django stack over a
  100,000-certificate inventory (10,000 with BENCH_QUICK=1), once per filter.
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
        return _per_call(lambda: issue_certificate(ca, IssuanceRequest(profile="server", csr=next(csrs)),
                                                   actor=actor), args["n"])

    @bench.measurement("issue_raw")
    def issue_raw(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.keystore import intermediate_signing_key
        from certificates.selectors import get_ca
        from certificates.services.records import load_x509

        ca = get_ca(args["slug"])
        key, issuer = intermediate_signing_key(ca), load_x509(ca.certificate)
        csrs = iter(_csrs(args["n"]))
        return _per_call(lambda: _raw_issue(next(csrs), issuer, key), args["n"])

    @bench.measurement("keygen_service")
    def keygen_service(args: dict[str, Any]) -> dict[str, Any]:
        from certificates.selectors import get_ca
        from certificates.services.issuance import IssuanceRequest, issue_certificate
        from pki_project.actor import Actor

        ca, actor = get_ca(args["slug"]), Actor.operator("bench")
        counter = iter(range(10**9))
        return _per_call(lambda: issue_certificate(ca, IssuanceRequest(
            profile="client", common_name=f"device-{next(counter)}.example.com", key_type="ec-p256"),
            actor=actor), args["n"])

    @bench.measurement("keygen_raw")
    def keygen_raw(args: dict[str, Any]) -> dict[str, Any]:
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.serialization import pkcs12

        from certificates.crypto.pkcs12 import build_pkcs12
        from certificates.keystore import intermediate_signing_key
        from certificates.selectors import get_ca
        from certificates.services.records import load_x509

        ca = get_ca(args["slug"])
        ca_key, issuer = intermediate_signing_key(ca), load_x509(ca.certificate)

        def once() -> bytes:
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = _raw_certificate(issuer, ca_key, key.public_key(), "device.example.com")
            return build_pkcs12(key, certificate, [issuer], secrets.token_urlsafe(24).encode(), None)

        assert pkcs12  # the raw path uses the same PKCS#12 parameters as the product
        return _per_call(once, args["n"])

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
        return _per_call(lambda: revoke_certificate(next(targets), reason="superseded", actor=actor), args["n"])

    @bench.measurement("inventory_setup")
    def inventory_setup(args: dict[str, Any]) -> dict[str, Any]:
        return _bulk_inventory(args["slug"], args["n"])

    @bench.measurement("list_page")
    def list_page(args: dict[str, Any]) -> dict[str, Any]:
        from django.test import Client

        from organizations.services import create_api_key, ensure_member

        user, _ = ensure_member("bench-admin", "admin", None)
        client = Client(headers={"Authorization": f"Bearer {create_api_key(user, label='bench').key}"},
                        SERVER_NAME="localhost")  # an ALLOWED_HOSTS name
        url = f"/api/v1/certificates/?{args['query']}"
        first = client.get(url)
        assert first.status_code == 200, (first.status_code, first.content[:300])
        timing = bench._timed(lambda: client.get(url), args["repeat"])
        timing["page_rows"] = len(first.json().get("results", []))
        return timing

    @bench.suite("issue")
    def issue_suite(workdir: Path) -> list:
        env = bench.bench_environment(workdir)
        bench.migrate(env)
        slugs = bench.measure_in_subprocess("lifecycle_setup", {"key_types": ISSUE_KEY_TYPES}, env)["slugs"]
        rows = []
        for key_type in ISSUE_KEY_TYPES:
            args = {"slug": slugs[key_type], "n": issue_count}
            raw = bench.measure_in_subprocess("issue_raw", args, env)
            ours = bench.measure_in_subprocess("issue_service", args, env)
            rows.append(_compare(bench, f"issue_csr_{key_type}", issue_count, ours, raw,
                                 "issue_certificate (row + audit event, SQLite) vs parse+verify+build+sign"))
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


def _compare(bench: ModuleType, operation: str, n: int, ours: dict, raw: dict, notes: str):
    return bench.Row(
        operation=operation, n=n, median_ms=round(ours["median_ms"], 3), raw_median_ms=round(raw["median_ms"], 3),
        ratio=round(ours["median_ms"] / raw["median_ms"], 2), peak_rss_mb=ours["peak_rss_mb"],
        raw_peak_rss_mb=raw["peak_rss_mb"],
        notes=f"{notes}; CPU {ours['cpu_median_ms']:.3f} vs {raw['cpu_median_ms']:.3f} ms",
    )


def _per_call(function, n: int) -> dict[str, float]:
    """Median wall-clock and CPU milliseconds per call over `n` calls."""
    wall, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return {"median_ms": statistics.median(wall), "cpu_median_ms": statistics.median(cpu), "runs": n}


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
