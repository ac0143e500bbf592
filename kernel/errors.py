"""The one error family of the service layer, mapped once to HTTP, command lines and pages.

Every service refusal (certificates, identity, backups, ACME's staff side, approvals, enrollment)
is a `ServiceError`: a `status` (the HTTP answer), a short machine-readable `code` (the API's
`{"error": {"code", "message"}}`, a `--json` command's error object) and a `message` safe to
show the caller (never a secret, never internal detail). `field` names the request field at
fault, where there is one: the API then answers as for any invalid field (`invalid` with
`fields`). The mappings: `pki_project.errors.api_exception_handler` (API),
`pki_project.cli.service_errors_as_command_errors` (commands), and the pages show `message`
with `status`.
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    default_code = "invalid"
    #: What a remote client is told instead of `message`, where the message would tell more than it
    #: may know (e.g. whether another organization exists); None: the message itself.
    client_message: str | None = None

    def __init__(self, message: str, code: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field


class InvalidInput(ServiceError):
    """The request itself is wrong (bad field, bad CSR, weak key...)."""


class PolicyViolation(ServiceError):
    """Well-formed, but the PKI's rules refuse it (name constraints, revoked issuer...)."""

    status = 422
    default_code = "policy"


class NotFound(ServiceError):
    """No such object, or not one the caller may see (tenancy answers 404, never 403)."""

    status = 404
    default_code = "not_found"


class Conflict(ServiceError):
    status = 409
    default_code = "conflict"


class PermissionRefused(ServiceError):
    """The caller's role may not do this to this kind of object (`certificates.services.permissions`).

    Every channel maps it the same way: the API's 403 `permission_denied`, a page's 403 with
    the message, an admin action's refusal page; nothing has changed when it is raised.
    """

    status = 403
    default_code = "permission_denied"


class Unavailable(ServiceError):
    """Something the operation needs is down or full: nothing was done; try later."""

    status = 503
    default_code = "unavailable"
