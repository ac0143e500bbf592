"""`/api/v1/approvals/`: the requests waiting for a second person, and their approval or rejection.

Thin views over `approvals.services`: the list and detail show the caller's organization (a global
admin's: all); approving or rejecting another organization's request answers 404, the requester's
own 403 `own_request`, a request already decided or expired 409.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response

from approvals.models import IssuanceApproval
from approvals.serializers import IssuanceApprovalSerializer, RejectSerializer
from approvals.services import approve, get_visible_approval, reject, visible_approvals
from certificates.serializers import CertificateDetailSerializer
from pki_project.actor import Actor
from pki_project.api import StableOrdering


def _actor(request) -> Actor:
    return Actor.from_request(request._request)


@extend_schema_view(get=extend_schema(summary="List the certificate requests of the organization (pending first)."))
class ApprovalList(StableOrdering, generics.ListAPIView):
    serializer_class = IssuanceApprovalSerializer
    filter_backends: list = []

    def get_queryset(self):
        queryset = visible_approvals(_actor(self.request))
        wanted = self.request.query_params.get("status")
        if wanted:
            queryset = queryset.filter(status=wanted[:16])
        return queryset.order_by("-id")


@extend_schema_view(get=extend_schema(summary="One certificate request."))
class ApprovalDetail(generics.RetrieveAPIView):
    serializer_class = IssuanceApprovalSerializer
    filter_backends: list = []

    def get_object(self) -> IssuanceApproval:
        return get_visible_approval(_actor(self.request), self.kwargs["id"])


class ApprovalApprove(generics.GenericAPIView):
    """Approve (not the requester; admins and managers): the certificate is issued now, exactly once."""

    serializer_class = None
    filter_backends: list = []

    @extend_schema(summary="Approve a pending request: issues its certificate.", request=None,
                   responses={200: IssuanceApprovalSerializer})
    def post(self, request, *args, **kwargs):
        actor = _actor(request)
        approved = approve(get_visible_approval(actor, kwargs["id"]), actor=actor)
        body = IssuanceApprovalSerializer(approved).data
        body["issued"] = CertificateDetailSerializer(approved.certificate).data
        return Response(body, status=status.HTTP_200_OK)


class ApprovalReject(generics.GenericAPIView):
    """Reject with a reason (not the requester; admins and managers): nothing is issued."""

    serializer_class = RejectSerializer
    filter_backends: list = []

    @extend_schema(summary="Reject a pending request with a reason.", request=RejectSerializer,
                   responses={200: IssuanceApprovalSerializer})
    def post(self, request, *args, **kwargs):
        data = RejectSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = _actor(request)
        rejected = reject(get_visible_approval(actor, kwargs["id"]), actor=actor, reason=data.validated_data["reason"])
        return Response(IssuanceApprovalSerializer(rejected).data)
