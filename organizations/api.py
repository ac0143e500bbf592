"""`GET, POST /api/v1/organizations/` and `GET /api/v1/organizations/{id}/`.

Lists are scoped: a global admin sees every organization, anyone else only their own;
another organization's detail answers 404. Creating is for global admins only.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from organizations.models import ApiKey, Organization
from organizations.roles import Role
from organizations.services import (
    IdentityError,
    OrganizationError,
    create_api_key,
    create_organization,
    revoke_api_key,
)
from pki_project.api import (
    HasPrincipal,
    IsGlobalAdmin,
    OrganizationScopedQuerysetMixin,
    StrictCharField,
    principal_of,
    scope_to_principal,
)


class OrganizationSerializer(serializers.ModelSerializer):
    # No silent trimming: the limits apply to what was sent; the service normalizes spaces.
    name = StrictCharField(max_length=200, trim_whitespace=False)
    slug = StrictCharField(max_length=64, required=False, allow_blank=True, trim_whitespace=False)

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "created_at"]


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "That already exists."


class OrganizationList(OrganizationScopedQuerysetMixin, generics.ListCreateAPIView):
    queryset = Organization.objects.all()
    serializer_class = OrganizationSerializer
    organization_field = "pk"

    def get_permissions(self):
        if self.request.method == "POST":
            return [HasPrincipal(), IsGlobalAdmin()]
        return [HasPrincipal()]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            organization = create_organization(
                serializer.validated_data["name"],
                serializer.validated_data.get("slug") or None,
                request=request._request,
                principal=principal_of(request),
            )
        except OrganizationError as error:
            if error.code == "duplicate":
                raise Conflict(str(error)) from None
            raise serializers.ValidationError({"slug" if "slug" in error.code else "name": [str(error)]}) from None
        return Response(self.get_serializer(organization).data, status=status.HTTP_201_CREATED)


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

    class Meta:
        model = ApiKey
        fields = ["id", "prefix", "label", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    label = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    expires_days = serializers.IntegerField(min_value=1, max_value=3650, required=False, allow_null=True)


def _visible_keys(principal):
    """Own keys; an admin also sees the keys of their organization's users (a global admin: all)."""
    keys = ApiKey.objects.select_related("user")
    if principal is None:  # schema generation, or a request that escaped RBAC
        return keys.none()
    if principal.role == Role.ADMIN:
        return scope_to_principal(keys, principal, "user__membership__organization")
    return keys.filter(user_id=principal.user_id)


class ApiKeyList(generics.ListCreateAPIView):
    serializer_class = ApiKeySerializer

    def get_queryset(self):
        return _visible_keys(principal_of(self.request))

    def create(self, request, *args, **kwargs):
        """Create a key for the caller; the answer carries `key`, shown this once only."""
        data = ApiKeyCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        days = data.validated_data.get("expires_days")
        expires_at = timezone.now() + timedelta(days=days) if days else None
        try:
            created = create_api_key(request.user, label=data.validated_data["label"], expires_at=expires_at,
                                     request=request._request, principal=principal_of(request))
        except IdentityError as error:
            raise serializers.ValidationError({"non_field_errors": [str(error)]}) from None
        body = {**ApiKeySerializer(created.api_key).data, "key": created.key}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyRevoke(generics.GenericAPIView):
    serializer_class = ApiKeySerializer
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return _visible_keys(principal_of(self.request))

    def post(self, request, *args, **kwargs):
        api_key = self.get_object()  # 404 for keys the caller may not see
        revoke_api_key(api_key, request=request._request, principal=principal_of(request))
        api_key.refresh_from_db()
        return Response(ApiKeySerializer(api_key).data)
