"""`GET, POST /api/v1/client-certificate-bindings/` and `GET, DELETE …/{id}/`: who signs in with which certificate.

Admins bind a certificate of their organization (a global admin: of any) to a member of the same
organization; managers see their organization's bindings, users their own. Another
organization's binding or certificate does not exist for the caller (404 / a 400 naming the field).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from certificates.models import Certificate
from organizations.client_certificates import bind_client_certificate, unbind_client_certificate
from organizations.models import ClientCertificateBinding, Membership
from organizations.roles import Role
from organizations.services import IdentityError, NotPermitted
from pki_project.actor import Actor
from pki_project.api import StrictCharField, principal_of, scope_to_principal


class ClientCertificateBindingSerializer(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username", read_only=True)
    certificate = serializers.IntegerField(source="certificate_id", read_only=True)
    serial = serializers.CharField(source="certificate.serial", read_only=True)
    fingerprint_sha256 = serializers.CharField(source="certificate.fingerprint_sha256", read_only=True)
    organization = serializers.CharField(source="certificate.organization.slug", read_only=True)

    class Meta:
        model = ClientCertificateBinding
        fields = ["id", "user", "certificate", "serial", "fingerprint_sha256", "organization", "created_at",
                  "created_by"]
        read_only_fields = fields


class ClientCertificateBindingCreateSerializer(serializers.Serializer):
    user = StrictCharField(max_length=150, help_text="The member who signs in with the certificate.")
    certificate = serializers.IntegerField(min_value=1, help_text="The certificate's id.")


def _visible_bindings(principal):
    bindings = ClientCertificateBinding.objects.select_related("user", "certificate__organization")
    if principal is None:
        return bindings.none()
    if principal.role in (Role.ADMIN, Role.MANAGER):
        return scope_to_principal(bindings, principal, "certificate__organization")
    return bindings.filter(user_id=principal.user_id)


def _certificate_for(principal, certificate_id: int) -> Certificate:
    certificate = scope_to_principal(Certificate.objects.select_related("issuer__certificate", "organization"),
                                     principal).filter(pk=certificate_id).first()
    if certificate is None:
        raise serializers.ValidationError({"certificate": [f"No certificate {certificate_id}."]})
    return certificate


def _member_of(certificate: Certificate, username: str):
    """The user among the certificate's organization's members: any other name reads the same, whoever it is."""
    membership = (Membership.objects.select_related("user")
                  .filter(user__username=username, organization_id=certificate.organization_id).first())
    if membership is None:
        raise serializers.ValidationError(
            {"user": [f"No member '{username}' in the certificate's organization."]})
    return membership.user


@extend_schema_view(
    get=extend_schema(summary="Client-certificate bindings (yours; your organization's for managers and admins)."),
    post=extend_schema(summary="Bind a certificate to the member who signs in with it (mTLS; admins).",
                       request=ClientCertificateBindingCreateSerializer,
                       responses={201: ClientCertificateBindingSerializer}),
)
class ClientCertificateBindingList(generics.ListCreateAPIView):
    serializer_class = ClientCertificateBindingSerializer

    def get_queryset(self):
        return _visible_bindings(principal_of(self.request))

    def create(self, request, *args, **kwargs):
        data = ClientCertificateBindingCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        principal = principal_of(request)
        certificate = _certificate_for(principal, data.validated_data["certificate"])
        user = _member_of(certificate, data.validated_data["user"].strip())
        try:
            binding = bind_client_certificate(user, certificate, actor=Actor.from_request(request._request))
        except NotPermitted as error:
            raise PermissionDenied(str(error)) from None
        except IdentityError as error:
            field = "user" if error.code in ("wrong_organization", "user_inactive") else "certificate"
            raise serializers.ValidationError({field: [str(error)]}) from None
        return Response(ClientCertificateBindingSerializer(binding).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(summary="One client-certificate binding."),
    delete=extend_schema(summary="Remove a binding: its sessions end on their next request (admins)."),
)
class ClientCertificateBindingDetail(generics.RetrieveDestroyAPIView):
    serializer_class = ClientCertificateBindingSerializer
    lookup_url_kwarg = "id"

    def get_queryset(self):
        return _visible_bindings(principal_of(self.request))

    def perform_destroy(self, instance: ClientCertificateBinding) -> None:
        try:
            unbind_client_certificate(instance, actor=Actor.from_request(self.request._request))
        except NotPermitted as error:
            raise PermissionDenied(str(error)) from None

