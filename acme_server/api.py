"""ACME external account keys over the API: create (the HMAC key shown in that answer only), list, read, revoke.

rbac.json lets admins and managers call these; the service scopes them to the caller's organization
(a global admin names any organization and sees all).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from acme_server.models import ExternalAccountKey
from acme_server.services.eab import create_eab_key, revoke_eab_key, visible_eab_keys
from certificates.errors import NotFound
from certificates.models import CertificateAuthority
from organizations.selectors import organization_for_caller
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


class EabSerializer(serializers.ModelSerializer):
    """A credential as staff see it after creation: never its HMAC key."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    ca = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    account = serializers.SerializerMethodField(help_text="The name of the ACME account it bound, if any.")

    class Meta:
        model = ExternalAccountKey
        fields = ["id", "key_id", "organization", "ca", "label", "created_by", "created_at", "used_at",
                  "revoked_at", "account"]
        read_only_fields = fields

    def get_account(self, credential: ExternalAccountKey) -> str | None:
        account = getattr(credential, "account", None)
        return account.name if account is not None else None


class _VisibleEabKeys:
    """The credentials the caller may manage; another organization's are 404."""

    serializer_class = EabSerializer
    filter_backends: list = []
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return visible_eab_keys(Actor.from_request(self.request._request))


@extend_schema_view(get=extend_schema(summary="The ACME external account keys of your organization (never their "
                                              "HMAC keys)."))
class EabList(_VisibleEabKeys, generics.ListAPIView):


    @extend_schema(summary="Create an ACME external account key (the HMAC key is shown once).",
                   request=EabCreateSerializer, responses={201: EabCreatedSerializer})
    def post(self, request, *args, **kwargs):
        data = EabCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        principal = principal_of(request)
        organization = organization_for_caller(values.get("organization"), principal)
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


@extend_schema_view(get=extend_schema(summary="One ACME external account key (never its HMAC key)."))
class EabDetail(_VisibleEabKeys, generics.RetrieveAPIView):
    """Read-only: the HMAC key is never shown again."""


class EabRevoke(_VisibleEabKeys, generics.GenericAPIView):
    @extend_schema(summary="Revoke an ACME external account key: it binds no new account (a bound account stays).",
                   request=None, responses={200: EabSerializer})
    def post(self, request, *args, **kwargs):
        credential = self.get_object()  # 404 for another organization's
        revoked = revoke_eab_key(credential, actor=Actor.from_request(request._request))
        return Response(EabSerializer(revoked).data)
