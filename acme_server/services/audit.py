"""ACME audit events: the account is the actor (`acme:<account name>` in actor_label)."""

from __future__ import annotations

from acme_server.models import Account
from audit.actions import AuditAction
from audit.services import record_event
from pki_project.actor import Actor


def record_acme_event(action: AuditAction, account: Account, *, target_type: str, target_id: str,
                      details: dict | None = None, outcome: str = "success", request=None,
                      target_serial: str = "") -> None:
    actor = Actor.acme_account(account, request)
    record_event(action, **actor.audit_kwargs(), outcome=outcome, organization_id=account.organization_id,
                 target_type=target_type, target_id=target_id, target_serial=target_serial,
                 details={"account": account.name, **(details or {})})
