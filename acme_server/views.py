"""The ACME endpoints (RFC 8555 7.1): HTTP in, service call, HTTP out. Public routes in rbac.json.

Every answer carries a fresh Replay-Nonce, `Cache-Control: no-store` and `Link: <directory>;rel="index"`;
every refusal is a problem document (`application/problem+json`, RFC 8555 6.7), never a 5xx for a
client's input.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import wraps

from csp.decorators import csp_exempt
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from acme_server.services import accounts, orders, revocation
from acme_server.services.context import AcmeContext
from acme_server.services.nonces import issue_nonce
from acme_server.services.problems import AcmeProblem
from acme_server.services.ratelimits import check_new_account_rate, check_new_order_rate
from acme_server.services.renewal_info import RETRY_AFTER_SECONDS, renewal_info_document
from acme_server.services.requests import VerifiedRequest, verify_request
from certificates.models import CertificateAuthority
from pki_project.ratelimit import client_ip

logger = logging.getLogger(__name__)
JOSE_JSON = "application/jose+json"
MAX_BODY = 65536


def _context(request: HttpRequest, ca: str) -> AcmeContext:
    authority = (CertificateAuthority.objects.filter(slug=ca, parent__isnull=False)
                 .select_related("certificate", "organization").first())
    if authority is None:
        raise AcmeProblem("malformed", "No ACME directory here.", status=404)
    return AcmeContext(authority, request.build_absolute_uri(f"/acme/{authority.slug}"), client_ip(request))


def _json(document: dict, status: int = 200, content_type: str = "application/json") -> HttpResponse:
    return HttpResponse(json.dumps(document), status=status, content_type=content_type)


def _finish(response: HttpResponse, request: HttpRequest, ca: str) -> HttpResponse:
    try:
        response["Replay-Nonce"] = issue_nonce()
    except Exception:  # the database is down: the outage middleware's 503 is the real answer
        logger.exception("Could not issue an ACME nonce")
    response["Cache-Control"] = "no-store"
    index = request.build_absolute_uri(f"/acme/{ca}/directory")
    link = f'<{index}>;rel="index"'
    response["Link"] = f"{response['Link']}, {link}" if response.has_header("Link") else link
    return response


def acme_endpoint(methods: tuple[str, ...]) -> Callable:
    """Method and content-type checks, problem documents, the headers every ACME answer carries."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt  # anonymous, no cookies: a JWS-signed request is no CSRF target
        @csp_exempt()
        @wraps(view)
        def wrapped(request: HttpRequest, ca: str, **kwargs) -> HttpResponse:
            try:
                if request.method not in methods:
                    response = _json(AcmeProblem("malformed", f"Use {' or '.join(methods)}.", status=405).document(),
                                     405, "application/problem+json")
                    response["Allow"] = ", ".join(methods)
                    return _finish(response, request, ca)
                if request.method == "POST":
                    content_type = request.content_type
                    if content_type != JOSE_JSON:  # RFC 8555 6.2
                        raise AcmeProblem("malformed", f"The Content-Type must be {JOSE_JSON}.", status=415)
                    if len(request.body) > MAX_BODY:
                        raise AcmeProblem("malformed", "The request body is too large.", status=413)
                context = _context(request, ca)
                response = view(request, context, **kwargs)
            except AcmeProblem as problem:
                response = _json(problem.document(), problem.status or 400, "application/problem+json")
                for name, value in problem.headers.items():
                    response[name] = value
            return _finish(response, request, ca)

        wrapped.acme_methods = methods
        return wrapped

    return decorate


def _verified(request: HttpRequest, context: AcmeContext, key: str = "kid") -> VerifiedRequest:
    return verify_request(context, request.body, request.build_absolute_uri(request.path), key=key)  # type: ignore[arg-type]


#: RFC 8555 7.4: how long a client waits before it asks again about an order that is processing
#: (one waiting for a second person's approval stays processing until the decision).
PROCESSING_RETRY_AFTER_SECONDS = 30


def _created_or_ok(document: dict, location: str, created: bool = False) -> HttpResponse:
    response = _json(document, 201 if created else 200)
    response["Location"] = location
    if document.get("status") == "processing":
        response["Retry-After"] = str(PROCESSING_RETRY_AFTER_SECONDS)
    return response


@acme_endpoint(("GET", "HEAD"))
def directory(request: HttpRequest, context: AcmeContext) -> HttpResponse:
    return _json(context.directory(terms_of_service=settings.PKI_ACME_TERMS_OF_SERVICE,
                                   eab_required=settings.PKI_ACME_EAB_REQUIRED))


@acme_endpoint(("GET", "HEAD"))
def new_nonce(request: HttpRequest, context: AcmeContext) -> HttpResponse:
    """RFC 8555 7.2: HEAD answers 200, GET 204."""
    return HttpResponse(status=200 if request.method == "HEAD" else 204)


@acme_endpoint(("POST",))
def new_account(request: HttpRequest, context: AcmeContext) -> HttpResponse:
    verified = _verified(request, context, key="jwk")
    check_new_account_rate(context.client_ip)
    result = accounts.new_account(context, verified)
    return _created_or_ok(accounts.account_document(context, result.account),
                          context.account_url(result.account.name), result.created)


@acme_endpoint(("POST",))
def account(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    updated = accounts.update_account(verified, name)
    return _created_or_ok(accounts.account_document(context, updated), context.account_url(updated.name))


@acme_endpoint(("POST",))
def account_orders(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    if verified.account.name != name:
        raise AcmeProblem("unauthorized", "An account's orders are read by that account only.")
    return _json(orders.orders_of(context, verified.account))


@acme_endpoint(("POST",))
def key_change(request: HttpRequest, context: AcmeContext) -> HttpResponse:
    verified = _verified(request, context)
    changed = accounts.change_key(context, verified, request.build_absolute_uri(request.path))
    return _created_or_ok(accounts.account_document(context, changed), context.account_url(changed.name))


@acme_endpoint(("POST",))
def new_order(request: HttpRequest, context: AcmeContext) -> HttpResponse:
    verified = _verified(request, context)
    check_new_order_rate(verified.account.name, context.client_ip)
    order = orders.new_order(context, verified.account, verified.payload_object(), request=None)
    return _created_or_ok(orders.order_document(context, order), context.order_url(order.name), True)


@acme_endpoint(("POST",))
def order(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    found = orders.get_order(verified.account, name)
    return _created_or_ok(orders.order_document(context, found), context.order_url(found.name))


@acme_endpoint(("POST",))
def finalize(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    found = orders.get_order(verified.account, name)
    finalized = orders.finalize_order(context, found, verified.account, verified.payload_object())
    return _created_or_ok(orders.order_document(context, finalized), context.order_url(finalized.name))


@acme_endpoint(("POST",))
def authorization(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    authz = orders.get_authorization(verified.account, name)
    if not verified.is_post_as_get:
        authz = orders.deactivate_authorization(authz, verified.payload_object())
    return _json(orders.authorization_document(context, authz))


@acme_endpoint(("POST",))
def challenge(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    found = orders.get_challenge(verified.account, name)
    if not verified.is_post_as_get:  # RFC 8555 7.5.1: the client says it is ready with an empty object
        if verified.payload_object():
            raise AcmeProblem("malformed", "Respond to a challenge with an empty JSON object.")
        found = orders.respond_to_challenge(found, verified.account)
    response = _json(orders.challenge_document(context, found))
    response["Link"] = f'<{context.authz_url(found.authorization.name)}>;rel="up"'
    return response


@acme_endpoint(("POST",))
def certificate(request: HttpRequest, context: AcmeContext, name: str) -> HttpResponse:
    verified = _verified(request, context)
    found = orders.get_order(verified.account, name)
    return HttpResponse(orders.certificate_chain_pem(found), content_type="application/pem-certificate-chain")


@acme_endpoint(("POST",))
def revoke_cert(request: HttpRequest, context: AcmeContext) -> HttpResponse:
    verified = _verified(request, context, key="either")
    revocation.revoke(verified, context.ca.organization_id)
    return HttpResponse(status=200)


@acme_endpoint(("GET", "HEAD"))
def renewal_info(request: HttpRequest, context: AcmeContext, cert_id: str) -> HttpResponse:
    """RFC 9773 4.2: unauthenticated GET; Retry-After says when to ask again (4.3)."""
    response = _json(renewal_info_document(context.ca, cert_id))
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
