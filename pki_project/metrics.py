"""Prometheus metrics at `GET /metrics`, for the roles rbac.json gives it (admin by default).

Two kinds of figures:

* **State, read from the database at each scrape**, so every worker and host agrees:
  certificates by organization, CA and status; valid certificates expiring within 7, 30 and
  90 days; each CA's CRL age and the seconds left before its nextUpdate (negative: stale);
  issued certificates per CA; and, for a global admin, the audit chain's length. An
  organization's admin sees only its organization's series.
* **Traffic, counted in the serving processes** (`MetricsMiddleware`): requests and their
  latency per route (the route's name, e.g. `pki-ocsp-get`, `certificate-list`), hence OCSP
  answers and API issuance latency. Under gunicorn these are shared between workers through
  prometheus-client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, which
  `pki_project/gunicorn.conf.py` sets to a private directory it empties at start). Traffic is
  shown to global admins only: it is the whole installation's, not one organization's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, Max, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from organizations.principal import Principal

EXPIRY_BANDS_DAYS = (7, 30, 90)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "unmatched"  # a path no route serves: one series, whatever was asked (no label explosion)

REQUESTS = Counter("pki_http_requests", "HTTP requests answered, by route name, method and status class.",
                   ["route", "method", "status"])
LATENCY = Histogram("pki_http_request_duration_seconds", "Time to answer, by route name.", ["route"],
                    buckets=LATENCY_BUCKETS)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class MetricsMiddleware:
    """Counts and times every request by the name of the route that served it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.view_name or UNMATCHED) if match is not None else UNMATCHED
        method = request.method if request.method in METHODS else "other"
        LATENCY.labels(route).observe(time.perf_counter() - started)
        REQUESTS.labels(route, method, f"{response.status_code // 100}xx").inc()
        return response


# --- State from the database -------------------------------------------------------------------------


class DatabaseCollector:
    """The PKI's state as gauges, limited to what `principal` may see."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    def _scoped(self, queryset, field: str = "organization_id"):
        if self.principal.is_global_admin:
            return queryset
        return queryset.filter(**{field: self.principal.organization_id})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from audit.models import AuditEvent
        from certificates.models import Certificate, CertificateAuthority

        now = timezone.now()
        cas = {ca.pk: ca for ca in self._scoped(CertificateAuthority.objects.select_related("organization"))}
        yield self._certificates_by_status(Certificate, cas, now)
        yield self._expiring(Certificate, cas, now)
        yield from self._crl_freshness(cas, now)
        if self.principal.is_global_admin:
            chain = GaugeMetricFamily("pki_audit_chain_length", "Events in the audit chain (its last seq).")
            chain.add_metric([], AuditEvent.objects.aggregate(last=Max("seq"))["last"] or 0)
            yield chain

    @staticmethod
    def _labels(ca) -> list[str]:
        return [ca.organization.slug, ca.slug]

    def _certificates_by_status(self, certificate_model, cas, now) -> GaugeMetricFamily:
        family = GaugeMetricFamily("pki_certificates", "Certificates issued by each CA, by status.",
                                   labels=["organization", "ca", "status"])
        counts = (certificate_model.objects.filter(issuer_id__in=cas.keys()).values("issuer_id").annotate(
            revoked=Count("pk", filter=Q(revoked_at__isnull=False)),
            expired=Count("pk", filter=Q(revoked_at__isnull=True, not_after__lte=now)),
            not_yet_valid=Count("pk", filter=Q(revoked_at__isnull=True, not_before__gt=now)),
            valid=Count("pk", filter=Q(revoked_at__isnull=True, not_before__lte=now, not_after__gt=now)),
        ))
        by_ca = {row["issuer_id"]: row for row in counts}
        for pk, ca in sorted(cas.items()):
            row = by_ca.get(pk, {})
            for status in ("valid", "revoked", "expired", "not_yet_valid"):
                family.add_metric([*self._labels(ca), status], row.get(status, 0))
        return family

    def _expiring(self, certificate_model, cas, now) -> GaugeMetricFamily:
        family = GaugeMetricFamily("pki_certificates_expiring", "Valid certificates expiring within N days.",
                                   labels=["organization", "ca", "within_days"])
        valid = certificate_model.objects.filter(issuer_id__in=cas.keys()).valid(now)
        aggregates = {f"d{days}": Count("pk", filter=Q(not_after__lte=now + timedelta(days=days)))
                      for days in EXPIRY_BANDS_DAYS}
        by_ca = {row["issuer_id"]: row for row in valid.values("issuer_id").annotate(**aggregates)}
        for pk, ca in sorted(cas.items()):
            row = by_ca.get(pk, {})
            for days in EXPIRY_BANDS_DAYS:
                family.add_metric([*self._labels(ca), str(days)], row.get(f"d{days}", 0))
        return family

    def _crl_freshness(self, cas, now) -> Iterator[GaugeMetricFamily]:
        from certificates.models import CertificateRevocationList

        age = GaugeMetricFamily("pki_crl_age_seconds", "Seconds since the thisUpdate of the CA's newest CRL.",
                                labels=["organization", "ca"])
        left = GaugeMetricFamily("pki_crl_next_update_seconds",
                                 "Seconds until the nextUpdate of the CA's newest CRL (negative: stale).",
                                 labels=["organization", "ca"])
        newest = {}
        for crl in (CertificateRevocationList.objects.filter(ca_id__in=cas.keys()).order_by("ca_id", "-number")
                    .only("ca_id", "number", "this_update", "next_update")):
            newest.setdefault(crl.ca_id, crl)
        for pk, crl in sorted(newest.items()):
            age.add_metric(self._labels(cas[pk]), (now - crl.this_update).total_seconds())
            left.add_metric(self._labels(cas[pk]), (crl.next_update - now).total_seconds())
        yield age
        yield left


# --- Exposition ------------------------------------------------------------------------------------


def traffic_registry() -> CollectorRegistry | None:
    """The counters of every worker in multiprocess mode; else this process's default registry."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def exposition(principal: Principal) -> bytes:
    """The text a scrape gets: the database gauges in scope, and the traffic for a global admin."""
    from prometheus_client import REGISTRY

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(principal))
    body = generate_latest(registry)
    if principal.is_global_admin:
        body += generate_latest(traffic_registry() or REGISTRY)
    return body


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: rbac.json decides who reaches it (an API key as Bearer, as Prometheus sends it)."""
    response = HttpResponse(exposition(request.principal), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
