from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from organizations.management.commands._output import emit, fail
from organizations.models import Organization
from organizations.services import IdentityError, create_api_key, ensure_member

MAX_EXPIRES_DAYS = 3650


class Command(BaseCommand):
    help = "Create an API key for a user (created with the role if missing). The key is shown once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--role", required=True, choices=["admin", "manager", "user"])
        parser.add_argument("--organization", help="organization slug; omit only for a global admin")
        parser.add_argument("--expires-days", type=int, help=f"expire after N days (1..{MAX_EXPIRES_DAYS})")
        parser.add_argument("--label", default="", help="a note to recognise the key by")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        organization = None
        if options["organization"]:
            organization = Organization.objects.filter(slug=options["organization"]).first()
            if organization is None:
                raise fail(f"No organization with the slug '{options['organization']}'.")
        expires_at = None
        if options["expires_days"] is not None:
            if not 1 <= options["expires_days"] <= MAX_EXPIRES_DAYS:
                raise fail(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS}.")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        try:
            user, created = ensure_member(options["user"], options["role"], organization)
            created_key = create_api_key(user, label=options["label"], expires_at=expires_at)
        except IdentityError as error:
            raise fail(str(error)) from None
        api_key = created_key.api_key
        payload = {
            "id": api_key.pk,
            "key": created_key.key,
            "prefix": api_key.prefix,
            "user": user.get_username(),
            "role": options["role"],
            "organization": organization.slug if organization else None,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "user_created": created,
        }
        where = f"of '{organization.slug}'" if organization else "(global)"
        emit(self, options, payload,
             f"{'Created user' if created else 'User'} '{user.get_username()}' ({options['role']} {where}).\n"
             f"API key id {api_key.pk} (prefix {api_key.prefix}). It is shown only now; store it safely:\n"
             f"{created_key.key}")
