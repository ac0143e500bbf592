"""Who is making a request: set on `request.principal` by the session middleware.

Services, audit and selectors read this instead of reaching into JWTs or API keys.
"""

from __future__ import annotations

from dataclasses import dataclass

from organizations.roles import Role


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: Role
    organization_id: int | None  # None only for a global admin
    api_key_id: int | None = None  # the key that opened the session or signed the request
    token_id: str | None = None  # the JWT `jti` when the request came with a session token

    @property
    def is_global_admin(self) -> bool:
        return self.role is Role.ADMIN and self.organization_id is None

    def can_see_organization(self, organization_id: int | None) -> bool:
        """Tenancy: a global admin sees every organization, anyone else only their own."""
        return self.is_global_admin or (organization_id is not None and organization_id == self.organization_id)
