"""`GET, POST /api/v1/organizations/` and `GET /api/v1/organizations/{id}/`.

Lists are scoped: a global admin sees every organization, anyone else only their own;
another organization's detail answers 404. Creating is for global admins only.
"""

from __future__ import annotations

from rest_framework import generics, serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from organizations.models import Organization
from organizations.services import OrganizationError, create_organization
from pki_project.api import HasPrincipal, IsGlobalAdmin, OrganizationScopedQuerysetMixin, principal_of


class OrganizationSerializer(serializers.ModelSerializer):
    slug = serializers.CharField(max_length=64, required=False, allow_blank=True)

    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {"name": {"max_length": 200}}


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
