"""The staff pages for API keys: the list, creation with a one-time reveal, revocation after confirmation.

Thin views: who sees which keys is `organizations.selectors`, who may create or revoke which
is `organizations.services` (the same rules as the API and the commands). The created key is
rendered once, in the answer to the POST, marked `no-store`; it is never stored or logged.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from certificates import staff
from certificates.services.profiles import visible_profiles
from certificates.views import render_page
from organizations.forms import SELF, ApiKeyForm
from organizations.models import ApiKey
from organizations.selectors import key_holders, visible_api_keys
from organizations.services import (
    IdentityError,
    KeyScope,
    NotPermitted,
    create_api_key,
    provision_api_key,
    revoke_api_key,
)
from pki_project.actor import Actor

PAGE_SIZE = 50
_FIELD_OF_ERROR = {"invalid_label": "label", "invalid_expiry": "expires_days", "invalid_allowed_ca": "allowed_cas",
                   "invalid_allowed_profile": "allowed_profiles", "invalid_max_validity": "max_validity_days",
                   "membership_conflict": "user", "invalid_username": "user", "username_realm": "user"}


def _form(request: HttpRequest, data=None) -> ApiKeyForm:
    principal = staff.principal_of(request)
    holders = list(key_holders(principal).exclude(user_id=principal.user_id)) if principal else []
    cas = staff.issuing_cas(principal)
    profiles = visible_profiles(Actor.from_request(request)).filter(enabled=True).order_by("name")
    return ApiKeyForm(data, holders=holders, cas=cas, profiles=profiles)


def _key_status(api_key: ApiKey, now) -> str:
    if api_key.revoked_at is not None:
        return "revoked"
    return "expired" if api_key.expires_at is not None and api_key.expires_at <= now else "active"


def _list_page(request: HttpRequest, form: ApiKeyForm, status: int = 200) -> HttpResponse:
    now = timezone.now()
    page = Paginator(visible_api_keys(staff.principal_of(request)), PAGE_SIZE).get_page(request.GET.get("page"))
    keys = [(api_key, _key_status(api_key, now)) for api_key in page.object_list]
    return render_page(request, "pki/api_keys.html", {"form": form, "keys": keys, "page": page}, status=status)


@require_http_methods(["GET", "POST"])
def api_keys(request: HttpRequest) -> HttpResponse:
    """GET: the keys the caller sees and the creation form. POST: create one and reveal it once."""
    if request.method == "GET":
        return _list_page(request, _form(request))
    form = _form(request, request.POST)
    if not form.is_valid():
        messages.error(request, "No key was created: correct the fields marked below.")
        return _list_page(request, form, status=400)
    try:
        created = _create(request, form.cleaned_data)
    except NotPermitted as error:
        messages.error(request, f"No key was created: {error}")
        return _list_page(request, form, status=403)
    except IdentityError as error:
        form.add_error(_FIELD_OF_ERROR.get(error.code), str(error))
        messages.error(request, "No key was created: correct the fields marked below.")
        return _list_page(request, form, status=400)
    response = render_page(request, "pki/api_key_created.html", {"api_key": created.api_key, "key": created.key})
    response["Cache-Control"] = "no-store"
    return response


def _create(request: HttpRequest, data: dict):
    principal = staff.principal_of(request)
    days = data.get("expires_days")
    expires_at = timezone.now() + timezone.timedelta(days=days) if days else None
    scope = KeyScope(cas=tuple(data.get("allowed_cas") or ()), profiles=tuple(data.get("allowed_profiles") or ()),
                     max_validity_days=data.get("max_validity_days"))
    holder = data.get("user") or SELF
    if holder != SELF:
        member = key_holders(principal).filter(user__username=holder).first()
        if member is None:
            raise IdentityError("Choose a member from the list.", code="invalid_username")
        return provision_api_key(holder, member.role, member.organization.slug if member.organization_id else None,
                                 label=data.get("label", ""), expires_at=expires_at, scope=scope, request=request,
                                 principal=principal).created
    user = get_user_model().objects.get(pk=principal.user_id)
    return create_api_key(user, label=data.get("label", ""), expires_at=expires_at, scope=scope, request=request,
                          principal=principal)


@require_http_methods(["GET", "POST"])
def api_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm; POST revokes the key and every session it opened."""
    api_key = visible_api_keys(staff.principal_of(request)).filter(pk=pk).first()
    if api_key is None:
        raise Http404
    if request.method == "GET":
        return render_page(request, "pki/api_key_revoke.html", {"api_key": api_key})
    if revoke_api_key(api_key, request=request, principal=staff.principal_of(request)):
        messages.success(request, f"API key {api_key.prefix} ({api_key.label or 'no label'}) revoked; "
                                  "its sessions end on their next request.")
    else:
        messages.info(request, f"API key {api_key.prefix} was already revoked.")
    return HttpResponseRedirect(reverse("pki-api-keys"))
