
from certificates.management.profile_options import add_profile_field_arguments, profile_as_dict, profile_values
from certificates.services.profiles import create_profile
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, service_errors_as_command_errors


class Command(JsonCommand):
    help = "Create a certificate profile (global, or an organization's with --organization)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="lower-case letters, digits and hyphens")
        parser.add_argument("--organization", metavar="SLUG", help="the organization it belongs to (default: global)")
        add_profile_field_arguments(parser)
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        values = {"name": options["name"], "organization": options["organization"], **profile_values(options)}
        with service_errors_as_command_errors():
            profile = create_profile(values, actor=Actor.operator("create_profile"))
        emit(self, options, profile_as_dict(profile), f"Created profile {profile.name} (id {profile.pk}).")
