
from organizations.management.commands._output import emit, fail
from organizations.services import OrganizationError, create_organization
from pki_project.actor import Actor
from pki_project.cli import JsonCommand


class Command(JsonCommand):
    help = "Create an organization (a tenant of the PKI)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True, help="display name, unique (case-insensitive)")
        parser.add_argument("--slug", help="short id: lower-case letters, digits, hyphens (default: from the name)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        try:
            organization = create_organization(options["name"], options["slug"],
                                               actor_label=Actor.operator("create_organization").label)
        except OrganizationError as error:
            raise fail(str(error)) from None
        emit(self, options, {"id": organization.pk, "slug": organization.slug, "name": organization.name},
             f"Created organization '{organization.slug}' ({organization.name}), id {organization.pk}.")
