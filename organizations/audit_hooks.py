"""The one place where identity code writes to the audit trail.

`record("LOGIN", ...)` is `audit.services.record_event(AuditAction.LOGIN, ...)`. Success
events are recorded by the caller inside the same `transaction.atomic()` as the write
they describe; failures (refused login, RBAC denial) on their own.
"""

from __future__ import annotations


def record(action_name: str, **kwargs) -> None:
    """Record `AuditAction[action_name]` with `record_event`'s keyword arguments."""
    from audit.actions import AuditAction
    from audit.services import record_event

    record_event(AuditAction[action_name], **kwargs)
