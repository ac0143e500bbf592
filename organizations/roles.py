"""The three roles of the PKI and what `rbac.json` may name."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"  # everything; may be global (no organization)
    MANAGER = "manager"  # certificate work inside their organization
    USER = "user"  # read-only inside their organization


PUBLIC = "public"  # rbac.json sentinel: no authentication needed
RBAC_NAMES = frozenset({PUBLIC, *(role.value for role in Role)})
