"""Uniform errors: JSON `{"error": {"code", "message"}}` for API clients, a generic page for browsers.

No stack trace, exception text or internal detail reaches a client: the 500 handler
answers a fixed sentence, and Django's `django.request` logger keeps the traceback in
the server log.
"""

from __future__ import annotations

import logging
import math
import sys

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.template import loader
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_default_handler

from kernel.errors import ServiceError

logger = logging.getLogger(__name__)

GENERIC_MESSAGES = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication required."),
    403: ("permission_denied", "You do not have permission to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    408: ("request_timeout", "The request did not arrive in time."),
    411: ("length_required", "Send the request with a Content-Length header."),
    413: ("too_large", "The request body is too large."),
    415: ("unsupported_media_type", "This route does not take that kind of body."),
    429: ("rate_limited", "Too many requests; try again later."),
    500: ("server_error", "Internal server error."),
    503: ("unavailable", "The service is temporarily unavailable; try again later."),
}
TITLES = {
    400: "Bad request",
    401: "Sign-in required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    411: "Length required",
    413: "Request too large",
    415: "Unsupported body",
    429: "Too many requests",
    500: "Server error",
    503: "Service unavailable",
}


def wants_json(request: HttpRequest) -> bool:
    """API clients get JSON: anything under /api/, Bearer callers, and JSON-preferring clients."""
    if request.path.startswith("/api/") or request.META.get("HTTP_AUTHORIZATION"):
        return True
    accept = request.META.get("HTTP_ACCEPT", "")
    content_type = request.META.get("CONTENT_TYPE", "")
    if "text/html" in accept:
        return False
    return "application/json" in accept or content_type.startswith("application/json")


def json_error(
    status: int, code: str, message: str, *, fields: dict | None = None, headers: dict | None = None
) -> JsonResponse:
    body: dict = {"error": {"code": code, "message": message}}
    if fields:
        body["error"]["fields"] = fields
    response = JsonResponse(body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    response.error_code = code  # read by the denial recorder (audit.denials), never sent
    return response


#: What a signed-in member's error page says when the view gave no reason of its own.
PAGE_EXPLANATIONS = {
    403: "Your role ({role}) may not open this page or do this. Ask an admin of your organization if you need to.",
    404: "There is no such page or object, or it belongs to another organization than yours.",
    405: "This page does not take that kind of request.",
}


def _page_context(request: HttpRequest, status: int, message: str | None) -> tuple[str, dict]:
    """The template and context of an error page: a signed-in member keeps the staff navigation."""
    from certificates import staff

    title = TITLES.get(status, "Error")
    principal = getattr(request, "principal", None)
    if principal is None:
        return "errors/error.html", {"status": status, "title": title,
                                     "message": message or GENERIC_MESSAGES.get(status, ("", "The request failed."))[1]}
    explanation = PAGE_EXPLANATIONS.get(status, GENERIC_MESSAGES.get(status, ("", "The request failed."))[1])
    generic = GENERIC_MESSAGES.get(status, ("", None))[1]
    return "pki/error.html", {
        "status": status, "title": title,
        "message": message if message and message != generic else explanation.format(role=principal.role.value),
        "principal": principal, "can_operate": staff.can_operate(principal), "is_admin": staff.is_admin(principal),
        "is_global_admin": staff.can_create_organizations(principal),
    }


def page_error(request: HttpRequest, status: int, message: str | None = None, *, headers: dict | None = None):
    title = TITLES.get(status, "Error")
    try:
        template, context = _page_context(request, status, message)
        content = loader.render_to_string(template, context, request=request)
    except Exception:  # a broken template must not turn an error page into a traceback
        logger.exception("Error page template failed")
        content = f"<!doctype html><title>{title}</title><h1>{title}</h1>"
    response = HttpResponse(content, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(
    request: HttpRequest, status: int, code: str | None = None, message: str | None = None, *,
    headers: dict | None = None,
):
    """JSON or page, depending on who asks."""
    default_code, default_message = GENERIC_MESSAGES.get(status, ("error", "The request failed."))
    if wants_json(request):
        return json_error(status, code or default_code, message or default_message, headers=headers)
    response = page_error(request, status, message, headers=headers)
    response.error_code = code or default_code
    return response


# --- Django's handlers (wired in urls.py and settings.CSRF_FAILURE_VIEW) --------------------


def bad_request(request, exception=None):
    return error_response(request, 400)


def permission_denied(request, exception=None):
    return error_response(request, 403)


def page_not_found(request, exception=None):
    return error_response(request, 404)


def server_error(request):
    if _database_unavailable():  # an outage, not a bug: 503 tells clients and balancers to retry
        return error_response(request, 503, "database_unavailable", "The database is unavailable; try again later.")
    return error_response(request, 500)


def _database_unavailable() -> bool:
    """Django calls handler500 inside its `except`: the exception being handled is at hand."""
    from django.db import InterfaceError, OperationalError

    return isinstance(sys.exc_info()[1], OperationalError | InterfaceError)


def csrf_failure(request, reason=""):
    logger.warning("CSRF refused on %s %s: %s", request.method, request.path, reason)
    return error_response(
        request, 403, "csrf_failed",
        "CSRF check failed: send the CSRF token, or X-Requested-With: XMLHttpRequest from the same origin.",
    )


# --- DRF ------------------------------------------------------------------------------------


def _readable(detail) -> str:
    """The first message of a DRF error detail, prefixed with its field when there is one."""
    if isinstance(detail, dict):
        for field, value in detail.items():
            text = _readable(value)
            return text if field in ("non_field_errors", "detail") else f"{field}: {text}"
        return "Invalid input."
    if isinstance(detail, list):
        return _readable(detail[0]) if detail else "Invalid input."
    return str(detail)


def api_exception_handler(exc, context):
    """Every DRF error as `{"error": {"code", "message"}}` (plus `fields` for validation errors).

    A service-layer refusal (`kernel.errors.ServiceError`, whichever app raised it) keeps its own
    status, code and message, so every API view answers the same way for the same rule; one that
    names a request field answers as DRF's validation does.
    """
    if isinstance(exc, ServiceError):
        if exc.field is None:
            return json_error(exc.status, exc.code, exc.client_message or exc.message)
        exc = exceptions.ValidationError({exc.field: [exc.message]})  # as any invalid field: `invalid`, `fields`
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_default_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500 handler answers and the log keeps the trace
    headers = {name: response[name] for name in ("WWW-Authenticate", "Retry-After", "Allow") if name in response}
    status = response.status_code
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return json_error(400, "invalid", _readable(exc.detail), fields=fields, headers=headers)
    if isinstance(exc, exceptions.AuthenticationFailed):
        code, message = "not_authenticated", "Invalid credentials."
    elif isinstance(exc, exceptions.NotAuthenticated):
        code, message = GENERIC_MESSAGES[401]
    elif isinstance(exc, exceptions.Throttled):
        code, message = GENERIC_MESSAGES[429]
        if exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    elif isinstance(exc, exceptions.ParseError):
        code, message = "parse_error", "The request body could not be parsed."
    elif isinstance(exc, exceptions.APIException) and status in GENERIC_MESSAGES:
        code, message = GENERIC_MESSAGES[status]
        if status not in (401, 404, 500):
            detail = exc.detail
            message = str(detail) if isinstance(detail, str) else message
            code = exc.get_codes() if isinstance(exc.get_codes(), str) else code
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        detail = getattr(exc, "detail", "The request failed.")
        message = detail if isinstance(detail, str) else _readable(detail)
    return json_error(status, str(code), str(message), headers=headers)
