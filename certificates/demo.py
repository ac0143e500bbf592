"""The idempotent demo installation that `make run` bootstraps.

Each step creates what is missing and reports what already existed, so running it
again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from organizations.models import ApiKey, Organization
from organizations.services import create_api_key, create_organization, ensure_member

DEMO_ORGANIZATION_SLUG = "demo"
DEMO_ORGANIZATION_NAME = "Demo Organization"
DEMO_ADMIN_USERNAME = "demo-admin"


def ensure_demo_organization(say: Callable[[str], None]) -> Organization:
    organization = Organization.objects.filter(slug=DEMO_ORGANIZATION_SLUG).first()
    if organization:
        say(f"Organization '{DEMO_ORGANIZATION_SLUG}' already exists.")
        return organization
    organization = create_organization(DEMO_ORGANIZATION_NAME, DEMO_ORGANIZATION_SLUG)
    say(f"Created organization '{DEMO_ORGANIZATION_SLUG}'.")
    return organization


def ensure_demo_admin(say: Callable[[str], None]) -> str | None:
    """The global admin `demo-admin` (no organization: sees and manages every one).

    Its first API key is printed once, when created; a re-run only says that a key
    exists. Returns the new key, or None when one already existed.
    """
    user, created = ensure_member(DEMO_ADMIN_USERNAME, "admin", None)
    if not created and ApiKey.objects.filter(user=user, revoked_at__isnull=True).exists():
        say(f"Admin '{DEMO_ADMIN_USERNAME}' already has an API key (shown only when it was created). "
            f"Make another with: manage.py create_api_key --user {DEMO_ADMIN_USERNAME} --role admin")
        return None
    created_key = create_api_key(user, label="demo bootstrap")
    say(f"Created global admin '{DEMO_ADMIN_USERNAME}'. Its API key, shown only now; sign in with it at /auth/login:")
    say(f"    {created_key.key}")
    return created_key.key


def bootstrap_demo(say: Callable[[str], None]) -> None:
    ensure_demo_organization(say)
    ensure_demo_admin(say)
