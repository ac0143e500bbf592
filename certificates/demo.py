"""The idempotent demo installation that `make run` bootstraps.

Each step creates what is missing and reports what already existed, so running it
again changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from organizations.models import Organization
from organizations.services import create_organization

DEMO_ORGANIZATION_SLUG = "demo"
DEMO_ORGANIZATION_NAME = "Demo Organization"


def ensure_demo_organization(say: Callable[[str], None]) -> Organization:
    organization = Organization.objects.filter(slug=DEMO_ORGANIZATION_SLUG).first()
    if organization:
        say(f"Organization '{DEMO_ORGANIZATION_SLUG}' already exists.")
        return organization
    organization = create_organization(DEMO_ORGANIZATION_NAME, DEMO_ORGANIZATION_SLUG)
    say(f"Created organization '{DEMO_ORGANIZATION_SLUG}'.")
    return organization


def bootstrap_demo(say: Callable[[str], None]) -> None:
    ensure_demo_organization(say)
