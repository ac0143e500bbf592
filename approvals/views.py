"""The approvals page: the organization's certificate requests, and approve/reject forms for the others' ones.

Thin: the services decide (`approvals.services`); a refusal (the requester's own request, another
organization's, a decided or expired one) is the page again with its message and its status, and
nothing changed. No inline script or style (the CSP forbids them).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from approvals.models import MAX_REASON_LENGTH, ApprovalStatus, IssuanceApproval
from approvals.services import approve, get_visible_approval, may_decide, reject, visible_approvals
from certificates.errors import NotFound, ServiceError
from certificates.views import render_page
from pki_project.actor import Actor

RECENT_DECISIONS = 50


class RejectForm(forms.Form):
    reason = forms.CharField(label="Reason", max_length=MAX_REASON_LENGTH,
                             widget=forms.TextInput(attrs={"autocomplete": "off"}))


def _rows(actor: Actor) -> tuple[list[dict], list[IssuanceApproval]]:
    approvals = visible_approvals(actor)
    pending = [{"approval": approval, "can_decide": may_decide(approval, actor), "reject_form": RejectForm()}
               for approval in approvals.filter(status=ApprovalStatus.PENDING).order_by("expires_at", "id")[:500]]
    decided = list(approvals.exclude(status=ApprovalStatus.PENDING).order_by("-decided_at", "-id")
                   [:RECENT_DECISIONS])
    return pending, decided


def _page(request: HttpRequest, status: int = 200) -> HttpResponse:
    pending, decided = _rows(Actor.from_request(request))
    return render_page(request, "pki/approvals.html", {"pending": pending, "decided": decided}, status=status)


@require_GET
def approvals_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _approval_or_404(actor: Actor, pk: int) -> IssuanceApproval:
    try:
        return get_visible_approval(actor, pk)
    except NotFound:
        raise Http404 from None


@require_POST
def approve_view(request: HttpRequest, pk: int) -> HttpResponse:
    actor = Actor.from_request(request)
    approval = _approval_or_404(actor, pk)
    try:
        approved = approve(approval, actor=actor)
    except ServiceError as error:
        messages.error(request, f"Request {pk} was not approved: {error.message}")
        return _page(request, status=error.status)
    certificate = approved.certificate
    messages.success(request, f"Request {pk} approved: certificate {certificate.serial} issued.")
    return HttpResponseRedirect(reverse("pki-certificate", args=[certificate.pk]))


@require_POST
def reject_view(request: HttpRequest, pk: int) -> HttpResponse:
    actor = Actor.from_request(request)
    approval = _approval_or_404(actor, pk)
    form = RejectForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Request {pk} was not rejected: give a reason (at most {MAX_REASON_LENGTH} "
                                "characters).")
        return _page(request, status=400)
    try:
        reject(approval, actor=actor, reason=form.cleaned_data["reason"])
    except ServiceError as error:
        messages.error(request, f"Request {pk} was not rejected: {error.message}")
        return _page(request, status=error.status)
    messages.success(request, f"Request {pk} rejected.")
    return HttpResponseRedirect(reverse("pki-approvals"))
