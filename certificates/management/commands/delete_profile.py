
from certificates.services.profiles import delete_profile, get_visible_profile
from pki_project.actor import Actor
from pki_project.cli import JsonCommand, add_json_argument, emit, service_errors_as_command_errors


class Command(JsonCommand):
    help = "Delete a custom certificate profile that no certificate was issued with (built-ins: never)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("profile", metavar="PROFILE", help="the profile's name or id")
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        actor = Actor.operator("delete_profile")
        with service_errors_as_command_errors():
            profile = get_visible_profile(actor, options["profile"])
            name, pk = profile.name, profile.pk
            delete_profile(profile, actor=actor)
        emit(self, options, {"id": pk, "name": name, "deleted": True}, f"Deleted profile {name} (id {pk}).")
