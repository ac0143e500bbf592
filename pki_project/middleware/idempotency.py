"""Every POST under /api/v1/: `Idempotency-Key` honoured, and a 201 answer names what it created.

Both are done here, around the view, so that every API route has them without asking for
them (`certificates.idempotency` holds the rules and the stored claims):

* A POST that carries `Idempotency-Key` from a signed-in caller is claimed before the view
  runs; the view then runs inside one transaction with the recording of its answer, so the
  answer is stored if and only if what the view did is committed. A replay answers the
  stored answer with `Idempotent-Replayed: true` without running the view.
* A 201 without a `Location` header gets one when the body's `id` names a detail route
  below the request's path (`POST /api/v1/cas/` -> `/api/v1/cas/{id}/`). A view whose
  created object lives elsewhere (a renewal's new certificate, a CRL) sets it itself.

Sits last in MIDDLEWARE: authentication and RBAC have run (a refused request claims nothing)
and the body has been read and bounded (`pki_project.middleware.body`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve

from certificates import idempotency
from certificates.errors import ServiceError
from pki_project.errors import json_error

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
REPLAY_WITHHELD = ("The first request with this Idempotency-Key succeeded; its answer held a secret that is shown only "
                "once, so it is not repeated. Location names what it created.")


def _is_api_post(request: HttpRequest) -> bool:
    return request.method == "POST" and request.path.startswith(API_PREFIX)


def derived_location(request: HttpRequest, response: HttpResponse) -> str | None:
    """`{path}{id}/` when the created body's `id` names an existing route, else None."""
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or not isinstance(body.get("id"), int) or isinstance(body.get("id"), bool):
        return None
    candidate = f"{request.path.rstrip('/')}/{body['id']}/"
    try:
        resolve(candidate)
    except Resolver404:
        return None
    return candidate


def _storable_body(response: HttpResponse):
    """The body to replay, or None when the answer held a one-time secret (never stored)."""
    if hasattr(response, "idempotency_body"):
        return response.idempotency_body
    if "no-store" in response.get("Cache-Control", ""):
        return None
    try:
        return json.loads(response.content) if response.content else {}
    except (ValueError, UnicodeDecodeError):
        return None


def _replay(answer: idempotency.StoredAnswer) -> HttpResponse:
    if answer.body is None:
        response = json_error(409, "idempotency_secret_shown", REPLAY_WITHHELD)
    else:
        response = JsonResponse(answer.body, status=answer.status, safe=False)
    if answer.location:
        response["Location"] = answer.location
    response[idempotency.REPLAYED_HEADER] = "true"
    response["Cache-Control"] = "no-store"
    return response


class ApiWriteMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_api_post(request):
            return self.get_response(request)
        principal = getattr(request, "principal", None)
        raw_key = request.headers.get(idempotency.HEADER)
        if raw_key is None or principal is None or principal.user_id is None:
            return self._with_location(request, self.get_response(request))
        try:
            key = idempotency.validated_key(raw_key)
            claim = idempotency.claim_or_replay(
                principal.user_id, key,
                idempotency.fingerprint(request.body, method=request.method, path=request.get_full_path()))
        except ServiceError as error:
            return json_error(error.status, error.code, error.message)
        if isinstance(claim, idempotency.StoredAnswer):
            return _replay(claim)
        return self._run_under(claim, request)

    def _run_under(self, claim: idempotency.IdempotencyKey, request: HttpRequest) -> HttpResponse:
        try:
            with transaction.atomic():
                response = self._with_location(request, self.get_response(request))
                if 200 <= response.status_code < 300:
                    idempotency.record(claim, idempotency.StoredAnswer(
                        response.status_code, _storable_body(response), response.get("Location", "")))
                elif response.status_code >= 500:
                    transaction.set_rollback(True)  # a failure inside the view: keep nothing it did
        except BaseException:
            idempotency.release(claim)
            raise
        if not 200 <= response.status_code < 300:
            idempotency.release(claim)
        return response

    @staticmethod
    def _with_location(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if response.status_code == 201 and not response.has_header("Location"):
            location = derived_location(request, response)
            if location:
                response["Location"] = location
        return response
