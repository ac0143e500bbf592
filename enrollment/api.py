"""`/api/v1/enrollment-tokens/`: create (the token is in that answer only), list, detail, revoke.

rbac.json lets admins and managers call them; the list and the lookups are scoped to the caller's
organization (another organization's token answers 404); the service checks the role again.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from certificates.errors import NotFound
from certificates.models import CertificateAuthority
from enrollment.models import EnrollmentToken
from enrollment.services.tokens import MAX_LIFETIME, create_token, revoke_token
from organizations.selectors import organization_for_caller
from pki_project.actor import Actor
from pki_project.api import StableOrdering, StrictCharField, principal_of, scope_to_principal


class EnrollmentTokenSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    ca = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    profile = serializers.SlugRelatedField(slug_field="name", read_only=True)
    certificate = serializers.PrimaryKeyRelatedField(read_only=True)
    state = serializers.CharField(read_only=True)

    class Meta:
        model = EnrollmentToken
        fields = ["id", "token_id", "organization", "ca", "profile", "san_patterns", "label", "state", "created_by",
                  "created_at", "expires_at", "used_at", "revoked_at", "certificate"]
        read_only_fields = fields


class EnrollmentTokenCreateSerializer(serializers.Serializer):
    organization = StrictCharField(max_length=64, required=False, help_text="Slug; default: your organization.")
    ca = StrictCharField(max_length=64, help_text="Slug or id of the intermediate CA that issues.")
    profile = StrictCharField(max_length=64, help_text="A profile's name (GET profiles/).")
    san_patterns = serializers.ListField(child=StrictCharField(max_length=260), min_length=1, max_length=50,
                                         help_text='Allowed names, e.g. ["DNS:*.robots.example.com", "IP:10.0.0.0/8"].')
    expires_in = serializers.IntegerField(required=False, min_value=60, max_value=int(MAX_LIFETIME.total_seconds()),
                                          help_text="Seconds until the token expires (default 86400).")
    label = StrictCharField(max_length=100, required=False, allow_blank=True, default="")


class EnrollmentTokenCreatedSerializer(EnrollmentTokenSerializer):
    token = serializers.CharField(help_text="The one-time token: shown only in this answer.")

    class Meta(EnrollmentTokenSerializer.Meta):
        fields = [*EnrollmentTokenSerializer.Meta.fields, "token"]


class TokenQuerysetMixin:
    lookup_url_kwarg = "id"

    def get_queryset(self):
        queryset = EnrollmentToken.objects.select_related("organization", "ca", "profile")
        return scope_to_principal(queryset, principal_of(self.request))


class EnrollmentTokenList(TokenQuerysetMixin, StableOrdering, generics.ListCreateAPIView):
    serializer_class = EnrollmentTokenSerializer

    @extend_schema(summary="Create a one-time enrollment token (the token is shown once).",
                   request=EnrollmentTokenCreateSerializer, responses={201: EnrollmentTokenCreatedSerializer})
    def post(self, request, *args, **kwargs):
        data = EnrollmentTokenCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        organization = organization_for_caller(values.get("organization"), principal_of(request))
        ca = CertificateAuthority.objects.by_reference(values["ca"]).filter(organization=organization).first()
        if ca is None:
            raise NotFound("No such CA in that organization.", code="unknown_ca")
        created = create_token(organization, ca=ca, profile=values["profile"], san_patterns=values["san_patterns"],
                               expires_in=values.get("expires_in"), label=values["label"],
                               actor=Actor.from_request(request._request))
        body = {**EnrollmentTokenSerializer(created.token).data, "token": created.secret}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class EnrollmentTokenDetail(TokenQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = EnrollmentTokenSerializer


class EnrollmentTokenRevoke(TokenQuerysetMixin, generics.GenericAPIView):
    serializer_class = EnrollmentTokenSerializer

    @extend_schema(summary="Revoke an unused enrollment token.", request=None,
                   responses={200: EnrollmentTokenSerializer})
    def post(self, request, *args, **kwargs):
        token = revoke_token(self.get_object(), actor=Actor.from_request(request._request))
        return Response(EnrollmentTokenSerializer(token).data)
