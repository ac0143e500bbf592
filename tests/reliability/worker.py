"""A separate OS process that drives the services, for the concurrency and fault tests.

    python -m tests.reliability.worker setup --ca SLUG
    python -m tests.reliability.worker issue --ca SLUG --count N [--server-key] [--go-file F] [--label L]
    python -m tests.reliability.worker revoke --ids 1,2,3 [--go-file F]
    python -m tests.reliability.worker revoke --ca SLUG --count N      # the CA's valid certificates, oldest first
    python -m tests.reliability.worker crl --ca SLUG --count N [--go-file F]
    python -m tests.reliability.worker summary --ca SLUG
    python -m tests.reliability.worker hold-restore-lock --seconds S

`--count 0` means "until killed" (the SIGKILL tests). Settings come from the environment
(DJANGO_SETTINGS_MODULE, DATABASE_URL, PKI_DATA_DIR, ROOT_PASSWORD). Every process connects
first and then waits for the shared START_AT moment, so they really run at once. Each
finished operation prints one JSON line (flushed), so a test knows the loop is running.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator

ORGANIZATION = "reliable"
ROOT_SLUG = "reliable-root"


def say(payload: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def counted(count: int) -> Iterator[int]:
    return itertools.count() if count == 0 else iter(range(count))


def wait_for_start(args: argparse.Namespace) -> None:
    """Connected and warmed up: say so, then wait for the go file (or the START_AT moment)."""
    from django.db import connection

    connection.ensure_connection()
    if args.go_file:
        say({"ready": True})
        deadline = time.time() + 120
        while not os.path.exists(args.go_file):
            if time.time() > deadline:
                raise SystemExit("the go file never appeared")
            time.sleep(0.01)
    time.sleep(max(0.0, args.start_at - time.time()))


def actor():
    from pki_project.actor import Actor

    return Actor.operator("reliability-worker")


def setup(args: argparse.Namespace) -> None:
    from certificates.models import CertificateAuthority
    from certificates.services.authorities import create_intermediate_ca, create_root_ca
    from organizations.models import Organization

    password = os.environ["ROOT_PASSWORD"]
    organization, _ = Organization.objects.get_or_create(slug=ORGANIZATION, defaults={"name": "Reliable Corp"})
    root = CertificateAuthority.objects.filter(slug=ROOT_SLUG).first() or create_root_ca(
        organization=organization, common_name="Reliable Root", slug=ROOT_SLUG, root_password=password,
        key_type="ec-p256", path_length=1, actor=actor(),
    )
    ca = create_intermediate_ca(parent=root, common_name=args.ca, slug=args.ca, root_password=password,
                                key_type="ec-p256", actor=actor())
    say({"ca": ca.slug, "id": ca.pk})


def issue(args: argparse.Namespace) -> None:
    from certificates.selectors import get_ca
    from certificates.services.issuance import IssuanceRequest, issue_certificate
    from certificates.signers import intermediate_signer

    ca = get_ca(args.ca)
    intermediate_signer(ca)  # the key derivation and unlock happen before the start line
    wait_for_start(args)
    for index in counted(args.count):
        name = f"{args.label}-{index}.example.com"
        if args.server_key:
            request = IssuanceRequest(profile="server", common_name=name)
        else:
            from tests.certificates.csrs import make_csr

            request = IssuanceRequest(profile="server", csr=make_csr(name))
        began = time.time()  # wall clock: comparable across the racing processes
        row = issue_certificate(ca, request, actor=actor())
        say({"id": row.pk, "serial": row.serial, "began": began, "ended": time.time()})


def _revocation_targets(args: argparse.Namespace) -> Iterator[int]:
    from certificates.models import Certificate, CertificateKind

    if args.ids:
        yield from (int(pk) for pk in args.ids.split(","))
        return
    for _ in counted(args.count):
        pk = (Certificate.objects.filter(issuer__slug=args.ca, kind=CertificateKind.END_ENTITY,
                                         revoked_at__isnull=True).order_by("pk").values_list("pk", flat=True).first())
        if pk is None:
            return
        yield pk


def revoke(args: argparse.Namespace) -> None:
    from certificates.keystore import artifact_cipher
    from certificates.models import Certificate
    from certificates.services.revocation import revoke_certificate

    artifact_cipher()
    wait_for_start(args)
    for pk in _revocation_targets(args):
        revoked = revoke_certificate(Certificate.objects.get(pk=pk), reason="keyCompromise", actor=actor())
        say({"revoked": [c.serial for c in revoked]})


def crl(args: argparse.Namespace) -> None:
    from certificates.selectors import get_ca
    from certificates.services.publication import generate_crl
    from certificates.signers import intermediate_signer

    ca = get_ca(args.ca)
    intermediate_signer(ca)
    wait_for_start(args)
    for _ in counted(args.count):
        row = generate_crl(ca, actor=actor())
        say({"number": row.number})


def summary(args: argparse.Namespace) -> None:
    from cryptography import x509

    from audit.models import AuditEvent
    from audit.verification import verify_chain
    from certificates.crypto.serials import serial_to_hex
    from certificates.models import Certificate, CertificateKind
    from certificates.selectors import get_ca
    from certificates.services.crls import latest_crl, latest_delta_crl

    ca = get_ca(args.ca)
    rows = list(Certificate.objects.filter(issuer=ca, kind=CertificateKind.END_ENTITY)
                .values("pk", "serial", "fingerprint_sha256", "revoked_at"))
    ids = [str(row["pk"]) for row in rows]
    latest = latest_crl(ca)
    listed = [] if latest is None else [
        serial_to_hex(entry.serial_number) for entry in x509.load_der_x509_crl(bytes(latest.der))
    ]
    # What a client reading deltas sees: the base and the latest delta against it (RFC 5280 5.2.4).
    delta = latest_delta_crl(ca)
    published = set(listed)
    if delta is not None and latest is not None and delta.delta_base_number == latest.number:
        published |= {serial_to_hex(entry.serial_number) for entry in x509.load_der_x509_crl(bytes(delta.der))}
    chain = verify_chain()
    say({
        "ids": [row["pk"] for row in rows],
        "serials": [row["serial"] for row in rows],
        "fingerprints": [row["fingerprint_sha256"] for row in rows],
        "revoked": [row["serial"] for row in rows if row["revoked_at"] is not None],
        "issue_events": AuditEvent.objects.filter(action="certificate.issue", target_type="certificate",
                                                  target_id__in=ids).count(),
        "revoke_events": AuditEvent.objects.filter(action="certificate.revoke", target_id__in=ids).count(),
        "crl_numbers": list(ca.crls.order_by("pk").values_list("number", flat=True)),
        "crl_counter": type(ca).objects.get(pk=ca.pk).crl_number,
        "latest_crl": None if latest is None else latest.number,
        "latest_crl_serials": listed,
        "published_serials": sorted(published),
        "audit_ok": chain.ok,
        "audit_count": chain.count,
    })


def hold_restore_lock(args: argparse.Namespace) -> None:
    from pathlib import Path

    from django.conf import settings

    from backups.locking import restore_lock

    with restore_lock(Path(settings.PKI_DATA_DIR), exclusive=True):
        say({"locked": True})
        time.sleep(args.seconds)


ACTIONS = {"setup": setup, "issue": issue, "revoke": revoke, "crl": crl, "summary": summary,
           "hold-restore-lock": hold_restore_lock}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="worker")
    parser.add_argument("action", choices=sorted(ACTIONS))
    parser.add_argument("--ca", default="")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--ids", default="")
    parser.add_argument("--label", default="w")
    parser.add_argument("--server-key", action="store_true")
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--go-file", default="", help="print a ready line, then wait for this file to exist")
    parser.add_argument("--seconds", type=float, default=30.0)
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pki_project.settings")
    import django

    django.setup()
    ACTIONS[args.action](args)


if __name__ == "__main__":
    main(sys.argv[1:])
