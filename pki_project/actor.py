"""Who performs a service-layer operation: for the audit trail and for the permission rules.

Interfaces build an `Actor` (from a request, or for a `manage.py` command) and pass
it to services; services hand `audit_kwargs()` to `audit.services.record_event` and
the actor to `certificates.services.permissions`, which lets an operator (only an
actor made by `Actor.operator`) do everything and a signed-in member what their role allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from organizations.principal import Principal


@dataclass(frozen=True)
class Actor:
    principal: Principal | None = None
    request: HttpRequest | None = None
    label: str = ""
    is_operator: bool = False  # the console's full trust: set only by `Actor.operator`, never from a request
    # An ACME account (acme_server): no user, no role; may issue from and revoke within its organization only
    # (certificates.services.permissions); the account's name is the audit trail's actor label.
    acme_account_id: int | None = None
    acme_organization_id: int | None = None
    # A machine enrolling with a one-time token or its current certificate (enrollment, EST): no user, no
    # role; may issue from and renew within its organization only (certificates.services.permissions).
    enrollment_organization_id: int | None = None

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        return cls(principal=getattr(request, "principal", None), request=request)

    @classmethod
    def operator(cls, command: str) -> Actor:
        """An operator at the console: commands run with the machine's full trust."""
        return cls(label=f"cli:{command}", is_operator=True)

    @classmethod
    def acme_account(cls, account, request: HttpRequest | None = None) -> Actor:
        """An ACME account acting through the protocol (RFC 8555): the audit trail names it `acme:<name>`."""
        return cls(request=request, label=f"acme:{account.name}", acme_account_id=account.pk,
                   acme_organization_id=account.organization_id)

    @classmethod
    def enrolling_machine(cls, label: str, organization_id: int, request: HttpRequest | None = None) -> Actor:
        """A machine enrolling (`enroll:<token id>`, `est:<certificate serial>`): the audit trail's actor label."""
        return cls(request=request, label=label, enrollment_organization_id=organization_id)

    @property
    def is_enrolling_machine(self) -> bool:
        return self.enrollment_organization_id is not None

    @property
    def is_acme_account(self) -> bool:
        return self.acme_account_id is not None

    @property
    def username(self) -> str:
        return self.principal.username if self.principal else self.label

    def audit_kwargs(self) -> dict[str, Any]:
        return {"request": self.request, "principal": self.principal, "actor_label": self.label}
