import json

from django.core.management.base import BaseCommand, CommandError

from certificates.models import Certificate, CertificateStatus
from certificates.selectors import get_ca
from pki_project.cli import service_errors_as_command_errors

FILTERABLE_STATUSES = [CertificateStatus.VALID, CertificateStatus.REVOKED, CertificateStatus.EXPIRED]


class Command(BaseCommand):
    help = "List certificates, newest first, by status, expiry window or CA."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--status", choices=[s.value for s in FILTERABLE_STATUSES])
        parser.add_argument("--expiring-within", type=int, metavar="DAYS")
        parser.add_argument("--ca", help="issuing CA: slug or id")
        parser.add_argument("--limit", type=int, default=1000, help="at most this many rows (default 1000)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        if options["expiring_within"] is not None and options["expiring_within"] < 0:
            raise CommandError("--expiring-within takes a number of days, 0 or more.")
        queryset = Certificate.objects.select_related("issuer").order_by("not_after", "pk")
        if options["status"]:
            queryset = queryset.with_status(options["status"])
        if options["expiring_within"] is not None:
            queryset = queryset.expiring_within(options["expiring_within"])
        if options["ca"]:
            with service_errors_as_command_errors():
                queryset = queryset.issued_by(get_ca(options["ca"]))
        rows = [self._row(c) for c in queryset[: max(options["limit"], 0)]]
        if options["json"]:
            self.stdout.write(json.dumps({"count": len(rows), "certificates": rows}, default=str))
            return
        self.stdout.write(f"{'ID':>6}  {'STATUS':<8} {'NOT AFTER':<10}  {'CA':<24} {'SERIAL':<16}  COMMON NAME")
        for row in rows:
            self.stdout.write(f"{row['id']:>6}  {row['status']:<8} {row['not_after']:%Y-%m-%d}  {row['ca']:<24.24} "
                              f"{row['serial'][:16]:<16}  {row['common_name']}")
        self.stdout.write(f"{len(rows)} certificate(s).")

    @staticmethod
    def _row(certificate: Certificate) -> dict:
        return {"id": certificate.pk, "serial": certificate.serial, "status": str(certificate.status),
                "common_name": certificate.common_name, "ca": certificate.issuer.slug if certificate.issuer else "",
                "kind": certificate.kind, "profile": certificate.profile, "not_after": certificate.not_after,
                "fingerprint_sha256": certificate.fingerprint_sha256}
