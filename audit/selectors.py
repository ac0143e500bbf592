"""Reads of the audit trail, scoped to who is asking.

The trail is for those who answer for an organization: a global admin sees every
event, an organization's admin or manager the events of their organization, a
read-only user none. Events without an organization (a global admin's own
actions, refused logins of unknown keys) are seen by global admins only.
"""

from __future__ import annotations

from audit.models import AuditEvent, AuditEventQuerySet
from organizations.principal import Principal
from organizations.roles import Role

READER_ROLES = frozenset({Role.ADMIN, Role.MANAGER})


def events_visible_to(principal: Principal | None) -> AuditEventQuerySet:
    events: AuditEventQuerySet = AuditEvent.objects.newest_first()
    if principal is None or principal.role not in READER_ROLES:
        return events.none()
    if principal.is_global_admin:
        return events
    if principal.organization_id is None:
        return events.none()
    return events.for_organization(principal.organization_id)
