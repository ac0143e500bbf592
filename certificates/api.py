"""The CA and certificate REST API under /api/v1/ (the README's interface).

Thin views: each validates the body's shape with a serializer, finds the object in the
caller's organization (another organization's object answers 404, in lists, details,
downloads and actions alike) and calls one service. Which role may call which route
is rbac.json's job; the rules that depend on the object rather than the route live in
the service layer (`certificates.services.permissions`), so the pages, the admin and
the API meet the same ones:

* `GET certificates/{id}/download/?format=p12` needs a manager or an admin (a plain
  user may download the public formats only): 403 `permission_denied`.
* `POST cas/{id}/crl/` for a root CA is for admins (it takes the root password); `POST crls/` skips
  roots for managers.
* `POST certificates/{id}/revoke/` of a CA or OCSP responder certificate is for admins.

Every `ServiceError` becomes its `.status` with `{"error": {"code", "message"}}` (a refusal by
the rules: 403 `permission_denied`).
"""

from __future__ import annotations

from django.http import HttpResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import generics, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response

from approvals.models import IssuanceApproval
from approvals.serializers import IssuanceApprovalSerializer
from approvals.services import submit_issuance
from certificates.errors import NotFound
from certificates.filters import CertificateAuthorityFilter, CertificateFilter, id_or_slug
from certificates.models import Certificate, CertificateAuthority
from certificates.selectors import get_ca
from certificates.serializers import (
    DOWNLOAD_FORMATS,
    CertificateAuthorityCreateSerializer,
    CertificateAuthoritySerializer,
    CertificateDetailSerializer,
    CertificateProfileSerializer,
    CertificateProfileWriteSerializer,
    CertificateSerializer,
    CrlBatchResultSerializer,
    CrlBatchSerializer,
    CrlRequestSerializer,
    CrlSerializer,
    ErrorSerializer,
    IssueSerializer,
    Pkcs12PasswordSerializer,
    RenewSerializer,
    RevokeResultSerializer,
    RevokeSerializer,
    just_issued_certificate_data,
)
from certificates.services.artifacts import DownloadFormat, download_certificate, reveal_pkcs12_password
from certificates.services.authorities import create_intermediate_ca, create_root_ca
from certificates.services.issuance import IssuanceRequest, renew_certificate
from certificates.services.profiles import (
    create_profile,
    delete_profile,
    get_visible_profile,
    update_profile,
    visible_profiles,
)
from certificates.services.publication import publish_crls, publish_crls_for
from certificates.services.revocation import revoke_certificate
from organizations.models import Organization
from pki_project.actor import Actor
from pki_project.api import StableOrdering, principal_of, scope_to_principal

# --- OpenAPI: both ways to authenticate (the rest of the document: pki_project.openapi) ---------------


class PrincipalAuthenticationScheme(OpenApiAuthenticationExtension):
    """`PrincipalAuthentication` accepts a Bearer token (API key or session JWT) or the session cookie."""

    target_class = "pki_project.api.PrincipalAuthentication"
    name = ["bearerAuth", "cookieAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"bearerAuth": []}, {"cookieAuth": []}]  # either one (OpenAPI: alternatives, not both)

    def get_security_definition(self, auto_schema):
        return [
            {"type": "http", "scheme": "bearer",
             "description": "`Authorization: Bearer <API key or session token from POST /auth/session>`."},
            {"type": "apiKey", "in": "cookie", "name": "pki_session",
             "description": "The HttpOnly session cookie set by POST /auth/session. State-changing requests also "
                            "need `X-Requested-With: XMLHttpRequest` from this origin (or the CSRF token)."},
        ]


# --- Shared behaviour ----------------------------------------------------------------------------------


class CaQuerysetMixin:
    def get_queryset(self):
        queryset = CertificateAuthority.objects.select_related("certificate", "organization", "parent")
        return scope_to_principal(queryset, principal_of(self.request), "organization")


class CertificateQuerysetMixin:
    lookup_url_kwarg = "id"
    lookup_field = "pk"

    def get_queryset(self):
        queryset = Certificate.objects.select_related("issuer", "organization")
        return scope_to_principal(queryset, principal_of(self.request), "organization")


def _actor(request) -> Actor:
    return Actor.from_request(request._request)


# --- CAs ---------------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(summary="List the CAs of the caller's organization (all for a global admin)."),
    post=extend_schema(
        summary="Create a root (admins) or an intermediate CA (admins).",
        request=CertificateAuthorityCreateSerializer, responses={201: CertificateAuthoritySerializer},
    ),
)
class CertificateAuthorityList(StableOrdering, CaQuerysetMixin, generics.ListCreateAPIView):
    """CAs are scoped to the caller's organization. Creating one is for admins (rbac.json): a root takes the
    root password it will need from then on; an intermediate below a root takes that root's password."""

    serializer_class = CertificateAuthoritySerializer
    filterset_class = CertificateAuthorityFilter

    def create(self, request, *args, **kwargs):
        data = CertificateAuthorityCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values, principal = data.validated_data, principal_of(request)
        common = {"common_name": values["name"], "actor": _actor(request), "slug": values.get("slug") or None}
        for name in ("key_type", "days", "crl_validity_hours", "key_backend", "token_label"):
            if name in values:
                common[name] = values[name]
        if values["kind"] == CertificateAuthority.Kind.ROOT:
            ca = create_root_ca(organization=self._organization(values.get("organization")),
                                root_password=values.get("root_password", ""),
                                path_length=values.get("path_length"), **common)
        else:
            parent = get_ca(values["parent"], principal)
            extra = {"path_length": values["path_length"]} if "path_length" in values else {}
            ca = create_intermediate_ca(parent=parent, root_password=values.get("root_password") or None,
                                        permitted_names=values.get("permitted_names"),
                                        excluded_names=values.get("excluded_names"),
                                        purposes=values.get("purposes"), policy_oids=values.get("policy_oids"),
                                        **extra, **common)
        ca = self.get_queryset().get(pk=ca.pk)
        return Response(CertificateAuthoritySerializer(ca).data, status=status.HTTP_201_CREATED)

    def _organization(self, reference: str | None) -> Organization:
        """The organization named by id or slug, among those the caller sees (else 404); default: their own."""
        principal = principal_of(self.request)
        if not reference:
            if principal.organization_id is None:
                raise serializers.ValidationError({"organization": ["A global admin must name the organization."]})
            reference = str(principal.organization_id)
        visible = scope_to_principal(Organization.objects.all(), principal, "pk")
        organization = visible.filter(id_or_slug("pk", "slug", reference)).first()
        if organization is None:
            raise NotFound(f"No organization '{reference}'.")
        return organization


@extend_schema_view(get=extend_schema(summary="One CA."))
class CertificateAuthorityDetail(CaQuerysetMixin, generics.RetrieveAPIView):
    """A CA of the caller's organization, with its certificate's PEM."""

    serializer_class = CertificateAuthoritySerializer
    lookup_url_kwarg = "id"
    lookup_field = "pk"


class CrlRegenerate(CaQuerysetMixin, generics.GenericAPIView):
    """Sign a fresh CRL now. A root's CRL needs its password and an admin; an intermediate's, a manager."""

    serializer_class = CrlRequestSerializer
    lookup_url_kwarg = "id"
    lookup_field = "pk"

    @extend_schema(summary="Regenerate the CA's CRL: a full CRL, and for an intermediate a delta CRL against it.",
                   request=CrlRequestSerializer, responses={201: CrlSerializer})
    def post(self, request, *args, **kwargs):
        ca = self.get_object()
        data = CrlRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        crl, *_delta = publish_crls(ca, actor=_actor(request),
                                    root_password=data.validated_data.get("root_password") or None)
        return Response(CrlSerializer(crl).data, status=status.HTTP_201_CREATED,
                        headers={"Location": reverse("pki-crl-der", kwargs={"ca": ca.slug})})


class CrlPublishAll(generics.GenericAPIView):
    """`generate_crl --all` for the CAs the caller manages (a global admin: every CA; otherwise their
    organization's), CA by CA: one CA's failure is reported in its row and does not stop the others.
    Roots are signed only by an admin who gives `root_password`; otherwise they are skipped."""

    serializer_class = CrlBatchSerializer
    filter_backends: list = []
    pagination_class = None

    @extend_schema(summary="Sign the CRLs of every usable CA you manage that is due (or all, with force).",
                   request=CrlBatchSerializer, responses={200: CrlBatchResultSerializer})
    def post(self, request, *args, **kwargs):
        data = CrlBatchSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        principal = principal_of(request)
        cas = scope_to_principal(CertificateAuthority.objects.select_related("certificate", "organization").usable(),
                                 principal, "organization").order_by("organization_id", "id")
        publications = publish_crls_for(
            cas, actor=_actor(request), only_due=not data.validated_data["force"],
            root_password=data.validated_data.get("root_password") or None)
        counts = {outcome: sum(p.outcome == outcome for p in publications)
                  for outcome in ("signed", "current", "skipped", "failed")}
        return Response(CrlBatchResultSerializer({"cas": publications, **counts}).data)


# --- Certificates --------------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(summary="List certificates (CA certificates included), newest first."),
    post=extend_schema(
        summary="Issue a certificate from a CSR or with a key generated on the server (managers, admins).",
        request=IssueSerializer, responses={201: CertificateDetailSerializer, 202: IssuanceApprovalSerializer},
    ),
)
class CertificateList(StableOrdering, CertificateQuerysetMixin, generics.ListCreateAPIView):
    """Certificates of the caller's organization. Issuing names a CA of that organization (another one's: 404,
    nothing issued). `Idempotency-Key` (as on every POST) makes a retry answer the first certificate."""

    serializer_class = CertificateSerializer
    filterset_class = CertificateFilter

    def create(self, request, *args, **kwargs):
        data = IssueSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        certificate = self._issue(data.validated_data)
        if isinstance(certificate, IssuanceApproval):  # waits for a second person (approvals)
            return Response(IssuanceApprovalSerializer(certificate).data, status=status.HTTP_202_ACCEPTED)
        return Response(just_issued_certificate_data(certificate), status=status.HTTP_201_CREATED)

    def _issue(self, values: dict) -> Certificate | IssuanceApproval:
        ca = get_ca(values["ca"], principal_of(self.request))
        issuance = IssuanceRequest(
            profile=values["profile"], csr=values.get("csr") or None, common_name=values.get("common_name") or None,
            sans=tuple(values.get("sans") or ()), key_type=values.get("key_type"), days=values.get("days"),
            hours=values.get("hours"),
        )
        return submit_issuance(ca, issuance, actor=_actor(self.request))


@extend_schema_view(get=extend_schema(summary="One certificate, with its PEM and chain."))
class CertificateDetail(CertificateQuerysetMixin, generics.RetrieveAPIView):
    """A certificate of the caller's organization: status, validity, fingerprint, PEM and chain."""

    serializer_class = CertificateDetailSerializer


class CertificateRenew(CertificateQuerysetMixin, generics.GenericAPIView):
    """Renewal links the new certificate to its predecessor; a certificate is renewed once."""

    serializer_class = RenewSerializer

    @extend_schema(summary="Renew: same subject, SANs and profile; a new key for server-generated keys.",
                   request=RenewSerializer, responses={201: CertificateDetailSerializer})
    def post(self, request, *args, **kwargs):
        certificate = self.get_object()
        data = RenewSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        renewed = renew_certificate(certificate, actor=_actor(request), csr=values.get("csr") or None,
                                    days=values.get("days"), revoke_predecessor=values["revoke_predecessor"],
                                    hours=values.get("hours"))
        renewed = self.get_queryset().get(pk=renewed.pk)
        return Response(CertificateDetailSerializer(renewed).data, status=status.HTTP_201_CREATED,
                        headers={"Location": reverse("certificate-detail", kwargs={"id": renewed.pk})})


class CertificateRevoke(CertificateQuerysetMixin, generics.GenericAPIView):
    """Revocation is final; the issuer's CRL is re-signed right after."""

    serializer_class = RevokeSerializer

    @extend_schema(summary="Revoke (final). A CA or OCSP responder certificate: admins only (a CA's with the root "
                           "password).",
                   request=RevokeSerializer, responses={200: RevokeResultSerializer})
    def post(self, request, *args, **kwargs):
        certificate = self.get_object()
        data = RevokeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        revoked = revoke_certificate(
            certificate, reason=values["reason"], actor=_actor(request),
            invalidity_date=values.get("invalidity_date"), root_password=values.get("root_password") or None,
            revoke_children=values["revoke_children"],
        )
        certificate = self.get_queryset().get(pk=certificate.pk)
        return Response({"revoked": [c.pk for c in revoked],
                         "certificate": CertificateDetailSerializer(certificate).data})


class IgnoreFormatParameter(BaseContentNegotiation):
    """`?format=` names the download's format here, not a DRF renderer; errors are JSON whatever is accepted."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@method_decorator(never_cache, name="get")
class CertificateDownload(CertificateQuerysetMixin, generics.GenericAPIView):
    """pem, der, chain and fullchain for every role; p12 (holds the private key) for managers and admins."""

    content_negotiation_class = IgnoreFormatParameter
    serializer_class = None
    filter_backends: list = []

    @extend_schema(
        summary="Download the certificate (pem, der, chain, fullchain) or its PKCS#12 (p12: managers, admins).",
        parameters=[OpenApiParameter("format", OpenApiTypes.STR, enum=DOWNLOAD_FORMATS, required=False,
                                     description="Default pem.")],
        responses={(200, "application/x-pem-file"): OpenApiResponse(OpenApiTypes.BINARY),
                   (200, "application/pkix-cert"): OpenApiResponse(OpenApiTypes.BINARY),
                   (200, "application/pem-certificate-chain"): OpenApiResponse(OpenApiTypes.BINARY),
                   (200, "application/x-pkcs12"): OpenApiResponse(OpenApiTypes.BINARY),
                   400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request, *args, **kwargs):
        certificate = self.get_object()
        fmt = request.query_params.get("format") or DownloadFormat.PEM.value
        download = download_certificate(certificate, fmt, actor=_actor(request))
        response = HttpResponse(download.content, content_type=download.content_type)
        response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
        return response


class Pkcs12PasswordReveal(CertificateQuerysetMixin, generics.GenericAPIView):
    """Each reveal leaves a `certificate.pkcs12_password_reveal` audit event."""

    serializer_class = None

    @extend_schema(summary="Reveal the PKCS#12 password of a server-generated key (audited).", request=None,
                   responses={200: Pkcs12PasswordSerializer})
    def post(self, request, *args, **kwargs):
        certificate = self.get_object()
        password = reveal_pkcs12_password(certificate, actor=_actor(request))
        response = Response({"password": password})
        response["Cache-Control"] = "no-store"
        return response


# --- Certificate profiles ------------------------------------------------------------------------------


@extend_schema_view(
    get=extend_schema(summary="List the profiles the caller may use: the global ones and the organization's."),
    post=extend_schema(summary="Create a profile (admins, managers: their organization's; a global admin: any).",
                       request=CertificateProfileWriteSerializer, responses={201: CertificateProfileSerializer}),
)
class CertificateProfileList(StableOrdering, generics.ListCreateAPIView):
    """Profiles are data: the issuance of every channel honours the one named in `profile`."""

    serializer_class = CertificateProfileSerializer
    filter_backends: list = []
    tie_breaker = ("id",)

    def get_queryset(self):
        return visible_profiles(_actor(self.request)).order_by("name", "id")

    def create(self, request, *args, **kwargs):
        data = CertificateProfileWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        profile = create_profile(data.validated_data, actor=_actor(request))
        return Response(CertificateProfileSerializer(profile).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="One profile."),
    patch=extend_schema(summary="Change a profile's fields (its name and organization stay).",
                        request=CertificateProfileWriteSerializer, responses={200: CertificateProfileSerializer}),
    put=extend_schema(summary="Change a profile's fields (as PATCH: the fields given).",
                      request=CertificateProfileWriteSerializer, responses={200: CertificateProfileSerializer}),
    delete=extend_schema(summary="Delete a custom profile no certificate was issued with.", responses={204: None}),
)
class CertificateProfileDetail(generics.RetrieveUpdateDestroyAPIView):
    """Built-ins are edited by global admins only and never deleted; another organization's profile is 404."""

    serializer_class = CertificateProfileSerializer
    filter_backends: list = []

    def get_object(self):
        return get_visible_profile(_actor(self.request), self.kwargs["id"])

    def update(self, request, *args, **kwargs):
        data = CertificateProfileWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        profile = update_profile(self.get_object(), data.validated_data, actor=_actor(request))
        return Response(CertificateProfileSerializer(profile).data)

    def destroy(self, request, *args, **kwargs):
        delete_profile(self.get_object(), actor=_actor(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Documentation ------------------------------------------------------------------------------------


class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI at /api/docs/ from local static files, started by a static script: no inline code (CSP)."""

    template_name = "api/swagger_ui.html"
