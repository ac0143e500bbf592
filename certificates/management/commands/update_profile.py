from django.core.management.base import CommandError

from certificates.management.profile_options import add_profile_field_arguments, profile_as_dict, profile_values
from certificates.services.profiles import get_visible_profile, update_profile
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, service_errors_as_command_errors


class Command(JsonCommand):
    help = "Change the given fields of a certificate profile (built-ins included; the name stays)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("profile", metavar="PROFILE", help="the profile's name or id")
        add_profile_field_arguments(parser)
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        values = profile_values(options)
        if not values:
            raise CommandError("Nothing to change: give at least one field option (see --help).")
        actor = Actor.operator("update_profile")
        with service_errors_as_command_errors():
            profile = update_profile(get_visible_profile(actor, options["profile"]), values, actor=actor)
        emit(self, options, profile_as_dict(profile), f"Updated profile {profile.name} (id {profile.pk}).")
