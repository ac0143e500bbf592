"""Writes for organizations. Interfaces (API, admin, commands, pages) call these."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from organizations.models import Organization

MAX_NAME_LENGTH = 200


class OrganizationError(ValueError):
    """The request to create or change an organization is not acceptable; the message says why."""

    def __init__(self, message: str, code: str = "invalid_organization") -> None:
        super().__init__(message)
        self.code = code


def clean_organization_name(name: str) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise OrganizationError("An organization needs a name.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise OrganizationError(f"An organization name has at most {MAX_NAME_LENGTH} characters.")
    return cleaned


def clean_organization_slug(slug: str | None, name: str) -> str:
    cleaned = slugify(slug if slug else name)[:64].strip("-")
    if not cleaned:
        raise OrganizationError("The slug must contain letters or digits.", code="invalid_slug")
    if slug and cleaned != slug:
        raise OrganizationError(
            "A slug may contain only lower-case letters, digits and hyphens.", code="invalid_slug"
        )
    return cleaned


def create_organization(name: str, slug: str | None = None) -> Organization:
    """Create an organization; a duplicate name or slug is refused with a clear message."""
    name = clean_organization_name(name)
    slug = clean_organization_slug(slug, name)
    if Organization.objects.filter(slug=slug).exists():
        raise OrganizationError(f"An organization with the slug '{slug}' already exists.", code="duplicate")
    if Organization.objects.filter(name__iexact=name).exists():
        raise OrganizationError(f"An organization named '{name}' already exists.", code="duplicate")
    try:
        with transaction.atomic():
            return Organization.objects.create(name=name, slug=slug)
    except IntegrityError as error:  # a concurrent request won the race
        raise OrganizationError("That organization already exists.", code="duplicate") from error
