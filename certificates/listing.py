"""The staff certificate list: search, filters, sort and the CSV export, on the caller's certificates.

A query string drives it (`q`, `status`, `expiring`, `kind`, `sort`), so a list, its next page
and its CSV export are the same selection. Anything unknown in it is ignored in favour of the
default rather than refused: a hand-edited link still shows a list.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import QueryDict
from django.utils import timezone

from certificates.models import Certificate, CertificateKind, CertificateStatus
from certificates.templatetags.pki_format import iso_utc_text

#: Valid certificates expiring within this many days get a "renew" control in the list.
RENEW_WINDOW_DAYS = 30
MAX_QUERY_LENGTH = 200
SORTS = {
    "expires": ("not_after", "id"), "-expires": ("-not_after", "-id"),
    "name": ("common_name", "id"), "-name": ("-common_name", "-id"),
    "serial": ("serial", "id"), "-serial": ("-serial", "-id"),
    "issued": ("not_before", "id"), "-issued": ("-not_before", "-id"),
}
DEFAULT_SORT = "expires"
EXPIRING_CHOICES = ("7", "30", "90")
KIND_LABELS = {CertificateKind.END_ENTITY: "end entity", CertificateKind.ROOT_CA: "root CA",
               CertificateKind.INTERMEDIATE_CA: "intermediate CA", CertificateKind.OCSP_RESPONDER: "OCSP responder"}
CSV_COLUMNS = ["id", "common_name", "serial", "sans", "kind", "profile", "status", "issuer", "organization",
               "not_before", "not_after", "days_left", "revoked_at", "revocation_reason"]


@dataclass(frozen=True)
class Selection:
    """What the query string asks for, cleaned."""

    q: str = ""
    status: str = ""
    expiring: str = ""
    kind: str = ""
    sort: str = DEFAULT_SORT

    @classmethod
    def from_query(cls, query: QueryDict) -> Selection:
        status = query.get("status", "")
        expiring = query.get("expiring", "")
        kind = query.get("kind", "")
        sort = query.get("sort", DEFAULT_SORT)
        return cls(
            q=" ".join(query.get("q", "").split())[:MAX_QUERY_LENGTH],
            status=status if status in CertificateStatus.values else "",
            expiring=expiring if expiring in EXPIRING_CHOICES else "",
            kind=kind if kind in CertificateKind.values else "",
            sort=sort if sort in SORTS else DEFAULT_SORT,
        )

    def query_string(self, **changes: str) -> str:
        """This selection as a query string, with `changes` (e.g. another sort or page)."""
        values = {"q": self.q, "status": self.status, "expiring": self.expiring, "kind": self.kind,
                  "sort": self.sort if self.sort != DEFAULT_SORT else "", **changes}
        query = QueryDict(mutable=True)
        for name, value in values.items():
            if value:
                query[name] = value
        return query.urlencode()


def _serial_text(text: str) -> str:
    """A serial as typed (`0A:1B …`, `0x0a1b`) in the stored form: lower-case hex without separators."""
    cleaned = text.lower().replace(":", "").replace(" ", "")
    return cleaned[2:] if cleaned.startswith("0x") else cleaned


def _searched(queryset: QuerySet[Certificate], q: str) -> QuerySet[Certificate]:
    """Common name, subject, SANs (`DNS:…`, `IP:…`, `EMAIL:…`) or serial containing the text."""
    if not q:
        return queryset
    condition = Q(common_name__icontains=q) | Q(subject__icontains=q) | Q(sans_text__icontains=q)
    serial = _serial_text(q)
    if serial and all(character in "0123456789abcdef" for character in serial):
        condition |= Q(serial__contains=serial)
    return queryset.annotate(sans_text=Cast("sans", TextField())).filter(condition)


def select_certificates(visible: QuerySet[Certificate], selection: Selection,
                        now: datetime | None = None) -> QuerySet[Certificate]:
    now = now or timezone.now()
    queryset = visible.select_related("issuer", "organization")
    if selection.status:
        queryset = queryset.with_status(selection.status, now)
    if selection.expiring:
        queryset = queryset.expiring_within(int(selection.expiring), now)
    if selection.kind:
        queryset = queryset.filter(kind=selection.kind)
    return _searched(queryset, selection.q).order_by(*SORTS[selection.sort])


def days_left(certificate: Certificate, now: datetime) -> int:
    """Whole days until `not_after` (0 on its last day; negative once expired)."""
    return (certificate.not_after - now).days


@dataclass(frozen=True)
class Row:
    certificate: Certificate
    status: str
    days_left: int
    kind_label: str
    renewable: bool  # valid, end entity, within the renewal window; the caller's role is checked apart


def rows(certificates: Iterable[Certificate], now: datetime, renewed_ids: set[int]) -> list[Row]:
    result = []
    for certificate in certificates:
        status = certificate.status_at(now)
        left = days_left(certificate, now)
        renewable = (status == CertificateStatus.VALID and certificate.kind == CertificateKind.END_ENTITY
                     and left <= RENEW_WINDOW_DAYS and certificate.pk not in renewed_ids)
        result.append(Row(certificate, str(status), left, KIND_LABELS.get(certificate.kind, certificate.kind),
                          renewable))
    return result


def _cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: a leading =, +, -, @ would be run as a formula."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)  # a number: a negative count of days stays a number
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_export(certificates: Iterable[Certificate], now: datetime) -> str:
    """The selection as CSV (RFC 4180), dates as `YYYY-MM-DD HH:MM UTC`, one row per certificate."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for certificate in certificates:
        writer.writerow([_cell(value) for value in (
            certificate.pk, certificate.common_name, certificate.serial, " ".join(certificate.sans),
            certificate.kind, certificate.profile, certificate.status_at(now), certificate.issuer.name
            if certificate.issuer_id else "", certificate.organization.slug, iso_utc_text(certificate.not_before),
            iso_utc_text(certificate.not_after), days_left(certificate, now), iso_utc_text(certificate.revoked_at),
            certificate.revocation_reason,
        )])
    return out.getvalue()
