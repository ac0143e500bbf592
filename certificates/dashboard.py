"""Reads for the dashboard at `/`: a handful of aggregate queries, none per row.

* one query counts certificates by status and by expiry band (conditional COUNTs);
* one lists the CAs with their latest full CRL's nextUpdate (a subquery, not a loop);
* one reads the recent audit events the caller may see;
* two group issuance and expiry by month for the chart;
* one counts the certificates ACME issued and the accounts they went to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncMonth
from django.utils import timezone

from audit.selectors import events_visible_to
from certificates.models import Certificate, CertificateAuthority, CertificateRevocationList
from certificates.selectors import acme_summary
from certificates.staff import visible_cas, visible_certificates
from organizations.principal import Principal

EXPIRY_BANDS = (7, 30, 90)
CHART_MONTHS_BACK = 6
CHART_MONTHS_AHEAD = 12
RECENT_EVENTS = 10


@dataclass(frozen=True)
class ChartBar:
    x: int
    y: int
    height: int
    value: int
    css: str


@dataclass
class Chart:
    """An SVG bar chart drawn by the template from precomputed coordinates (no script, no inline style)."""

    width: int
    height: int
    baseline: int
    months: list[dict] = field(default_factory=list)  # label, x, issued bar, expiring bar
    max_value: int = 0


def status_counts(certificates: QuerySet[Certificate], now: datetime) -> dict[str, int]:
    """Counts by status and expiry band, in a single aggregate query."""
    live = Q(revoked_at__isnull=True)
    valid = live & Q(not_before__lte=now, not_after__gt=now)
    aggregates = {
        "total": Count("pk"),
        "valid": Count("pk", filter=valid),
        "revoked": Count("pk", filter=Q(revoked_at__isnull=False)),
        "expired": Count("pk", filter=live & Q(not_after__lte=now)),
        "not_yet_valid": Count("pk", filter=live & Q(not_before__gt=now)),
    }
    for days in EXPIRY_BANDS:
        aggregates[f"expiring_{days}"] = Count("pk", filter=valid & Q(not_after__lte=now + timedelta(days=days)))
    return certificates.aggregate(**aggregates)


def cas_with_crl_status(cas: QuerySet[CertificateAuthority]) -> list[CertificateAuthority]:
    """Every CA with `crl_next_update` and `crl_number_latest` of its latest full CRL (one query)."""
    latest = CertificateRevocationList.objects.filter(ca=OuterRef("pk"), delta_base_number__isnull=True).order_by(
        "-number"
    )
    return list(
        cas.annotate(
            crl_next_update=Subquery(latest.values("next_update")[:1]),
            crl_number_latest=Subquery(latest.values("number")[:1]),
        ).order_by("organization__slug", "parent_id", "name")
    )


def _month_start(moment: datetime, offset: int) -> datetime:
    month_index = moment.year * 12 + moment.month - 1 + offset
    return moment.replace(year=month_index // 12, month=month_index % 12 + 1, day=1, hour=0, minute=0, second=0,
                          microsecond=0)


def _per_month(queryset: QuerySet[Certificate], field_name: str, start: datetime, end: datetime) -> dict:
    rows = (
        queryset.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end})
        .annotate(month=TruncMonth(field_name))
        .values("month")
        .annotate(count=Count("pk"))
        .order_by()
    )
    return {(row["month"].year, row["month"].month): row["count"] for row in rows}


def issuance_chart(certificates: QuerySet[Certificate], now: datetime) -> Chart:
    """Certificates issued (by notBefore) and expiring (by notAfter) per month around today."""
    start = _month_start(now, -CHART_MONTHS_BACK)
    end = _month_start(now, CHART_MONTHS_AHEAD + 1)
    issued = _per_month(certificates, "not_before", start, end)
    expiring = _per_month(certificates, "not_after", start, end)
    months = [_month_start(now, offset) for offset in range(-CHART_MONTHS_BACK, CHART_MONTHS_AHEAD + 1)]
    values = [issued.get((m.year, m.month), 0) for m in months] + [expiring.get((m.year, m.month), 0) for m in months]
    top = max([*values, 1])
    slot, bar, plot_height, baseline = 44, 18, 120, 140
    chart = Chart(width=slot * len(months) + 16, height=baseline + 24, baseline=baseline, max_value=top)
    for index, month in enumerate(months):
        x = 8 + index * slot
        bars = []
        for offset, (series, css) in enumerate(((issued, "bar-issued"), (expiring, "bar-expiring"))):
            value = series.get((month.year, month.month), 0)
            height = round(plot_height * value / top)
            bars.append(ChartBar(x=x + 4 + offset * (bar + 2), y=baseline - height, height=height, value=value,
                                 css=css))
        chart.months.append({"label": month.strftime("%b %y"), "x": x + slot // 2 - 4, "bars": bars,
                             "current": (month.year, month.month) == (now.year, now.month)})
    return chart


def dashboard_context(principal: Principal | None, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    certificates = visible_certificates(principal)
    return {
        "now": now,
        "counts": status_counts(certificates, now),
        "expiry_bands": EXPIRY_BANDS,
        "cas": cas_with_crl_status(visible_cas(principal)),
        "events": list(events_visible_to(principal)[:RECENT_EVENTS]),
        "chart": issuance_chart(certificates, now),
        "acme": acme_summary(certificates),
        "recent_certificates": list(
            certificates.end_entities().select_related("issuer").order_by("-created_at", "-id")[:8]
        ),
    }
