from datetime import timedelta

from django.utils import timezone

from organizations.management.commands._output import emit, fail
from organizations.services import MAX_KEY_VALIDITY_DAYS, IdentityError, KeyScope, provision_api_key
from pki_project.actor import Actor
from pki_project.cli import JsonCommand

MAX_EXPIRES_DAYS = 3650


class Command(JsonCommand):
    help = "Create an API key for a user (created with the role if missing). The key is shown once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--role", required=True, choices=["admin", "manager", "user"])
        parser.add_argument("--organization", help="organization slug; omit only for a global admin")
        parser.add_argument("--expires-days", type=int, help=f"expire after N days (1..{MAX_EXPIRES_DAYS})")
        parser.add_argument("--label", default="", help="a note to recognise the key by")
        parser.add_argument("--allowed-ca", action="append", default=[], metavar="CA",
                            help="issue only from this CA (slug); repeat for more. Default: every CA")
        parser.add_argument("--allowed-profile", action="append", default=[], metavar="PROFILE",
                            help="issue only with this profile; repeat for more. Default: every profile")
        parser.add_argument("--max-days", type=int,
                            help=f"the longest validity the key may ask for (1..{MAX_KEY_VALIDITY_DAYS} days)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        expires_at = None
        if options["expires_days"] is not None:
            if not 1 <= options["expires_days"] <= MAX_EXPIRES_DAYS:
                raise fail(f"--expires-days must be between 1 and {MAX_EXPIRES_DAYS}.")
            expires_at = timezone.now() + timedelta(days=options["expires_days"])
        scope = KeyScope(cas=tuple(options["allowed_ca"]), profiles=tuple(options["allowed_profile"]),
                         max_validity_days=options["max_days"])
        try:
            provisioned = provision_api_key(options["user"], options["role"], options["organization"] or None,
                                            label=options["label"], expires_at=expires_at, scope=scope,
                                            actor_label=Actor.operator("create_api_key").label)
        except IdentityError as error:
            raise fail(str(error)) from None
        user, created, organization = provisioned.user, provisioned.user_created, provisioned.organization
        created_key = provisioned.created
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
            "allowed_cas": sorted(ca.slug for ca in api_key.allowed_cas.all()),
            "allowed_profiles": api_key.allowed_profiles,
            "max_validity_days": api_key.max_validity_days,
        }
        where = f"of '{organization.slug}'" if organization else "(global)"
        emit(self, options, payload,
             f"{'Created user' if created else 'User'} '{user.get_username()}' ({options['role']} {where}).\n"
             f"API key id {api_key.pk} (prefix {api_key.prefix}). It is shown only now; store it safely:\n"
             f"{created_key.key}")
