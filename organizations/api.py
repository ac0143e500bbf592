"""`GET, POST /api/v1/organizations/`, `GET /api/v1/organizations/{id}/` and the API keys.

Lists are scoped: a global admin sees every organization, anyone else only their own;
another organization's detail answers 404. Creating is for global admins only.

`POST /api/v1/api-keys/` is self-service (a key for the caller) unless the body names a
`user` and `role`: then it is the `create_api_key` command for admins
(`organizations.services.provision_api_key` decides who may grant what: nobody changes their
own membership this way, and an organization's admin names a member of their organization or
a new `NAME@<slug>`, so the answer never depends on other organizations' users).
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from organizations.filters import OrganizationFilter
from organizations.models import ApiKey, Organization
from organizations.roles import Role
from organizations.selectors import visible_api_keys
from organizations.services import (
    KeyScope,
    create_api_key,
    create_organization,
    provision_api_key,
    revoke_api_key,
)
from pki_project.api import (
    HasPrincipal,
    IsGlobalAdmin,
    OrganizationScopedQuerysetMixin,
    StableOrdering,
    StrictCharField,
    principal_of,
)


class OrganizationSerializer(serializers.ModelSerializer):
    # No silent trimming: the limits apply to what was sent; the service normalizes spaces.
    name = StrictCharField(max_length=200, trim_whitespace=False)
    slug = StrictCharField(max_length=64, required=False, allow_blank=True, trim_whitespace=False)

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "created_at"]


@extend_schema_view(
    get=extend_schema(summary="List organizations (your own; every one for a global admin)."),
    post=extend_schema(summary="Create an organization (global admins)."),
)
class OrganizationList(StableOrdering, OrganizationScopedQuerysetMixin, generics.ListCreateAPIView):
    queryset = Organization.objects.all()
    serializer_class = OrganizationSerializer
    organization_field = "pk"
    filterset_class = OrganizationFilter

    def get_permissions(self):
        if self.request.method == "POST":
            return [HasPrincipal(), IsGlobalAdmin()]
        return [HasPrincipal()]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = create_organization(  # its refusals answer through the one error mapping
            serializer.validated_data["name"],
            serializer.validated_data.get("slug") or None,
            request=request._request,
            principal=principal_of(request),
        )
        return Response(self.get_serializer(organization).data, status=status.HTTP_201_CREATED)


@extend_schema_view(get=extend_schema(summary="One organization."))
class OrganizationDetail(OrganizationScopedQuerysetMixin, generics.RetrieveAPIView):
    queryset = Organization.objects.all()
    serializer_class = OrganizationSerializer
    organization_field = "pk"
    lookup_url_kwarg = "id"
    lookup_field = "pk"


# --- Self-service API keys: GET, POST /api/v1/api-keys/ and POST /api/v1/api-keys/{id}/revoke/ ---


class ApiKeySerializer(serializers.ModelSerializer):
    """A key as listed: never the key itself, never its hash."""

    user = serializers.CharField(source="user.username", read_only=True)
    allowed_cas = serializers.SlugRelatedField(many=True, read_only=True, slug_field="slug",
                                               help_text="CA slugs the key may issue from; empty: every CA.")
    allowed_profiles = serializers.ListField(child=serializers.CharField(), read_only=True,
                                             help_text="Profiles the key may issue with; empty: every profile.")

    class Meta:
        model = ApiKey
        fields = ["id", "prefix", "label", "user", "created_at", "expires_at", "revoked_at", "last_used_at",
                  "allowed_cas", "allowed_profiles", "max_validity_days"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    """Without `user`: a key for the caller. With `user` and `role`: a key for that user (admins only)."""

    label = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    expires_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)
    user = StrictCharField(
        max_length=150, required=False,
        help_text="Admins only: the username to create the key for; created with `role` when missing. "
                  "An organization's admin names a member of their organization or a new `NAME@<slug>`.",
    )
    role = serializers.ChoiceField(choices=[role.value for role in Role], required=False,
                                   help_text="With `user`: the user's role (an existing user's must match).")
    organization = StrictCharField(
        max_length=64, required=False, allow_null=True,
        help_text="With `user`: the organization's slug. Default: the caller's own (none for a global admin, "
                  "which with role admin makes a global admin).",
    )
    allowed_cas = serializers.ListField(child=StrictCharField(max_length=64), required=False, max_length=100,
                                        help_text="CA slugs the key may issue from; omitted or empty: every CA.")
    allowed_profiles = serializers.ListField(child=StrictCharField(max_length=64), required=False, max_length=100,
                                             help_text="Profiles the key may issue with; omitted: every profile.")
    max_validity_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True,
                                                 help_text="The longest validity the key may ask for.")

    def scope(self) -> KeyScope:
        values = self.validated_data
        return KeyScope(cas=tuple(values.get("allowed_cas") or ()),
                        profiles=tuple(values.get("allowed_profiles") or ()),
                        max_validity_days=values.get("max_validity_days"))

    def validate(self, attrs: dict) -> dict:
        if "user" not in attrs and ("role" in attrs or "organization" in attrs):
            raise serializers.ValidationError({"user": ["Name the user the role and organization are for."]})
        if "user" in attrs and "role" not in attrs:
            raise serializers.ValidationError({"role": ["A key for another user needs their role."]})
        return attrs


class ApiKeyCreatedSerializer(ApiKeySerializer):
    """The answer to a creation: the key itself, this once, and whom it was made for."""

    key = serializers.CharField(read_only=True, help_text="The whole key. Shown only in this answer.")
    role = serializers.CharField(read_only=True)
    organization = serializers.CharField(read_only=True, allow_null=True, help_text="Slug; null: global admin.")
    user_created = serializers.BooleanField(read_only=True)

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key", "role", "organization", "user_created"]
        read_only_fields = fields


@extend_schema_view(
    get=extend_schema(summary="Your API keys (an admin also sees their organization's; a global admin all)."),
    post=extend_schema(
        summary="Create an API key: your own, or (admins) one for another user, created with its role if missing.",
        request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer},
    ),
)
class ApiKeyList(generics.ListCreateAPIView):
    serializer_class = ApiKeySerializer

    def get_queryset(self):
        return visible_api_keys(principal_of(self.request))

    def create(self, request, *args, **kwargs):
        """Create a key; the answer carries `key`, shown this once only (and never cached)."""
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        days = values.get("expires_days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        principal = principal_of(request)
        if "user" in values:
            provisioned = provision_api_key(
                values["user"], values["role"], values.get("organization") or None, label=values["label"],
                expires_at=expires_at, request=request._request, principal=principal, scope=data.scope())
            created, user_created = provisioned.created, provisioned.user_created
        else:
            created = create_api_key(request.user, label=values["label"], expires_at=expires_at,
                                     request=request._request, principal=principal, scope=data.scope())
            user_created = False
        membership = created.api_key.user.membership
        body = {**ApiKeySerializer(created.api_key).data, "key": created.key, "role": membership.role,
                "organization": membership.organization.slug if membership.organization_id else None,
                "user_created": user_created}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


@extend_schema_view(get=extend_schema(summary="One API key you can see (never the key itself)."))
class ApiKeyDetail(generics.RetrieveAPIView):
    serializer_class = ApiKeySerializer
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return visible_api_keys(principal_of(self.request))


class ApiKeyRevoke(generics.GenericAPIView):
    serializer_class = ApiKeySerializer
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return visible_api_keys(principal_of(self.request))

    @extend_schema(summary="Revoke an API key you can see, and every session it opened.", request=None,
                   responses={200: ApiKeySerializer})
    def post(self, request, *args, **kwargs):
        api_key = self.get_object()  # 404 for keys the caller may not see
        revoke_api_key(api_key, request=request._request, principal=principal_of(request))
        api_key.refresh_from_db()
        return Response(ApiKeySerializer(api_key).data)
