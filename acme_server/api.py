"""`POST /api/v1/acme/eab/`: a new ACME external account key, its HMAC key shown in this answer only.

rbac.json lets admins and managers call it; the service scopes it to the caller's organization
(a global admin names any organization).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from acme_server.services.eab import create_eab_key
from certificates.errors import InvalidInput, NotFound
from certificates.models import CertificateAuthority
from organizations.models import Organization
from pki_project.actor import Actor
from pki_project.api import StrictCharField, principal_of


class EabCreateSerializer(serializers.Serializer):
    organization = StrictCharField(max_length=64, required=False, help_text="Slug; default: your organization.")
    ca = StrictCharField(max_length=64, required=False, help_text="Slug or id of the intermediate CA it binds to.")
    label = StrictCharField(max_length=100, required=False, allow_blank=True, default="")


class EabCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key_id = serializers.CharField()
    hmac_key = serializers.CharField(help_text="base64url; shown only in this answer.")
    organization = serializers.CharField()
    ca = serializers.CharField(allow_null=True)
    label = serializers.CharField()
    created_at = serializers.DateTimeField()


def _organization(slug: str | None, principal) -> Organization:
    if slug is None:
        if principal is None or principal.organization_id is None:
            raise InvalidInput("Name the organization (a global admin has none of their own).",
                               code="organization_required")
        return Organization.objects.get(pk=principal.organization_id)
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None or principal is None or not principal.can_see_organization(organization.pk):
        raise NotFound("No such organization.", code="unknown_organization")
    return organization


class EabCreate(generics.GenericAPIView):
    serializer_class = EabCreateSerializer

    @extend_schema(summary="Create an ACME external account key (the HMAC key is shown once).",
                   request=EabCreateSerializer, responses={201: EabCreatedSerializer})
    def post(self, request, *args, **kwargs):
        data = EabCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        principal = principal_of(request)
        organization = _organization(values.get("organization"), principal)
        ca = None
        if values.get("ca"):
            ca = CertificateAuthority.objects.by_reference(values["ca"]).filter(organization=organization).first()
            if ca is None:
                raise NotFound("No such CA in that organization.", code="unknown_ca")
        created = create_eab_key(organization, actor=Actor.from_request(request._request), ca=ca,
                                 label=values["label"])
        credential = created.credential
        body = {"id": credential.pk, "key_id": credential.key_id, "hmac_key": created.hmac_key,
                "organization": organization.slug, "ca": ca.slug if ca else None, "label": credential.label,
                "created_at": credential.created_at.isoformat()}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response
