"""manage.py list_certificates: the inventory, filtered, sorted and paged as its help says.

The filters are the API's (`certificates.filters.CertificateFilter`), so a search finds here what it
finds in `GET /api/v1/certificates/`. The total is always the true count of matching rows; a page
that does not show them all says so on stderr (and in `--format json` by `next_offset`).
"""

from __future__ import annotations

import csv
import io
import json

from certificates.filters import CertificateFilter, id_or_slug
from certificates.models import Certificate, CertificateAuthority, CertificateStatus
from pki_project.cli import JsonCommand, command_failed, iso_utc, json_default

FILTERABLE_STATUSES = [CertificateStatus.VALID, CertificateStatus.REVOKED, CertificateStatus.EXPIRED]
SORTS = {
    "newest": ("-created_at", "-id"),
    "oldest": ("created_at", "id"),
    "expiry": ("not_after", "id"),
    "name": ("common_name", "id"),
    "serial": ("serial", "id"),
}
FORMATS = ("table", "json", "jsonl", "csv")
COLUMNS = ["id", "serial", "status", "common_name", "sans", "organization", "ca", "kind", "profile", "not_before",
           "not_after", "revoked_at", "predecessor", "successor", "fingerprint_sha256"]
DEFAULT_LIMIT = 100
MAX_LIMIT = 100_000


class Command(JsonCommand):
    help = ("List certificates (CA certificates included), newest first unless --sort says otherwise, filtered by "
            "status, expiry, CA, organization, profile or a search, one page at a time (--limit/--offset).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--status", choices=[s.value for s in FILTERABLE_STATUSES])
        parser.add_argument("--expiring-within", type=int, metavar="DAYS", help="valid now, expiring within DAYS")
        parser.add_argument("--ca", help="issuing CA: slug or id")
        parser.add_argument("--organization", metavar="ORG", help="organization: slug or id")
        parser.add_argument("--profile", metavar="NAME", help="issued with this profile")
        parser.add_argument("--search", metavar="TEXT",
                            help="serial or fingerprint (hex prefix), common name prefix, or part of a SAN")
        parser.add_argument("--latest-only", action="store_true",
                            help="only the latest of each renewal line (leave out certificates renewed since)")
        parser.add_argument("--sort", choices=list(SORTS), default="newest",
                            help="newest (default: issued last first), oldest, expiry (soonest first), name, serial")
        parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                            help=f"at most this many rows (default {DEFAULT_LIMIT}; a cut is reported on stderr)")
        parser.add_argument("--offset", type=int, default=0, help="skip this many rows first (the next page)")
        parser.add_argument("--format", choices=FORMATS, default=None,
                            help="table (default), json (one object: total, page and rows), jsonl (one row a line) "
                                 "or csv (a header line, then one row a line)")
        parser.add_argument("--json", action="store_true", help="the same as --format json")

    def handle(self, *args, **options) -> None:
        fmt = self._format(options)
        limit, offset = options["limit"], options["offset"]
        if not 0 <= limit <= MAX_LIMIT:
            raise command_failed(f"--limit takes 0 to {MAX_LIMIT}.", code="usage", returncode=2)
        if offset < 0:
            raise command_failed("--offset takes 0 or more.", code="usage", returncode=2)
        queryset = self._filtered(options).order_by(*SORTS[options["sort"]])
        total = queryset.count()
        rows = [self._row(certificate) for certificate in queryset[offset:offset + limit]]
        next_offset = offset + len(rows) if offset + len(rows) < total else None
        self._write(fmt, rows, total, offset, limit, next_offset)
        if next_offset is not None and fmt != "json":
            self.stderr.write(f"Showing {len(rows)} of {total} certificate(s) from offset {offset}: "
                              f"--offset {next_offset} for the next page, or a larger --limit.")

    @staticmethod
    def _format(options) -> str:
        if options["json"] and options["format"] not in (None, "json"):
            raise command_failed("--json is --format json: give one of them.", code="usage", returncode=2)
        return "json" if options["json"] else options["format"] or "table"

    @staticmethod
    def _filtered(options):
        if options["expiring_within"] is not None and options["expiring_within"] < 0:
            raise command_failed("--expiring-within takes a number of days, 0 or more.", code="usage", returncode=2)
        data = {name: str(options[option]) for name, option in (
            ("status", "status"), ("expiring_within", "expiring_within"), ("ca", "ca"),
            ("organization", "organization"), ("profile", "profile"), ("search", "search"))
            if options[option] is not None}
        base = Certificate.objects.select_related("issuer", "organization", "predecessor", "successor")
        filters = CertificateFilter(data=data, queryset=base)
        if not filters.is_valid():
            field, messages = next(iter(filters.errors.items()))
            raise command_failed(f"--{field.replace('_', '-')}: {' '.join(messages)}", code="invalid")
        queryset = filters.qs
        if options["ca"] and not queryset.exists() and not _exists_ca(options["ca"]):
            raise command_failed(f"No CA '{options['ca']}'.", code="not_found")
        if options["latest_only"]:
            queryset = queryset.filter(successor__isnull=True)
        return queryset

    def _write(self, fmt: str, rows: list[dict], total: int, offset: int, limit: int, next_offset: int | None):
        if fmt == "json":
            self.stdout.write(json.dumps({"total": total, "count": len(rows), "offset": offset, "limit": limit,
                                          "next_offset": next_offset, "certificates": rows},
                                         sort_keys=True, default=json_default))
        elif fmt == "jsonl":
            for row in rows:
                self.stdout.write(json.dumps(row, sort_keys=True, default=json_default))
        elif fmt == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "sans": " ".join(row["sans"]),
                                 **{k: iso_utc(row[k]) if row[k] else "" for k in ("not_before", "not_after",
                                                                                    "revoked_at")}})
            self.stdout.write(buffer.getvalue(), ending="")
        else:
            self._table(rows, total, offset)

    def _table(self, rows: list[dict], total: int, offset: int) -> None:
        self.stdout.write(f"{'ID':>6}  {'STATUS':<8} {'NOT AFTER':<20}  {'CA':<24} {'SERIAL':<16}  COMMON NAME")
        for row in rows:
            self.stdout.write(f"{row['id']:>6}  {row['status']:<8} {iso_utc(row['not_after']):<20}  "
                              f"{row['ca']:<24.24} {row['serial'][:16]:<16}  {row['common_name']}")
        shown = f"{offset + 1}-{offset + len(rows)} of " if rows and len(rows) < total else ""
        self.stdout.write(f"{shown}{total} certificate(s).")

    @staticmethod
    def _row(certificate: Certificate) -> dict:
        successor = getattr(certificate, "successor", None)
        return {"id": certificate.pk, "serial": certificate.serial, "status": str(certificate.status),
                "common_name": certificate.common_name, "sans": list(certificate.sans or []),
                "organization": certificate.organization.slug,
                "ca": certificate.issuer.slug if certificate.issuer else "", "kind": certificate.kind,
                "profile": certificate.profile, "not_before": certificate.not_before,
                "not_after": certificate.not_after, "revoked_at": certificate.revoked_at,
                "predecessor": certificate.predecessor.serial if certificate.predecessor_id else None,
                "successor": successor.serial if successor else None,
                "fingerprint_sha256": certificate.fingerprint_sha256}


def _exists_ca(reference: str) -> bool:
    return CertificateAuthority.objects.filter(id_or_slug("id", "slug", reference)).exists()
