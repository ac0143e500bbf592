from django.core.management.base import CommandError

from certificates.crypto.keys import KeyType
from certificates.services.authorities import DEFAULT_ROOT_DAYS, DEFAULT_ROOT_KEY_TYPE, create_root_ca
from organizations.models import Organization
from pki_project.actor import Actor
from pki_project.cli import (
    JsonCommand,
    add_json_argument,
    add_key_backend_arguments,
    add_password_arguments,
    emit,
    read_root_secret,
    service_errors_as_command_errors,
)


class Command(JsonCommand):
    help = ("Create a root CA for an organization. Asks for the root password that will guard its key "
            "(with --key-backend pkcs11: the token's user PIN; the key is made on the token).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True, metavar="CN", help="the CA's common name")
        parser.add_argument("--key-type", default=DEFAULT_ROOT_KEY_TYPE.value, choices=[k.value for k in KeyType])
        parser.add_argument("--days", type=int, default=DEFAULT_ROOT_DAYS)
        parser.add_argument("--path-length", type=int, default=None)
        parser.add_argument("--slug", default=None)
        parser.add_argument("--crl-validity-hours", type=int, default=None, metavar="HOURS",
                            help="thisUpdate to nextUpdate of this CA's CRLs (default: 2160 for a root, 168 below)")
        parser.add_argument("--country", default=None, metavar="CC",
                            help="ISO 3166 country code of the CA subject (default: PKI_DEFAULT_COUNTRY)")
        add_password_arguments(parser)
        add_key_backend_arguments(parser)
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise CommandError(f"No organization '{options['organization']}'.")
        on_token = options["key_backend"] == "pkcs11"
        password = read_root_secret(options, token=on_token, confirm=True)
        if not options["json"]:
            self.stderr.write("Generating the key on the token..." if on_token else
                              "Generating the key and sealing it (the root password is stretched: a few seconds)...")
        with service_errors_as_command_errors():
            ca = create_root_ca(
                organization=organization, common_name=options["name"], root_password=password,
                key_type=options["key_type"], days=options["days"], path_length=options["path_length"],
                slug=options["slug"], country=options["country"],
                crl_validity_hours=options["crl_validity_hours"], actor=Actor.operator("init_root_ca"),
                key_backend=options["key_backend"], token_label=options["token_label"],
            )
        emit(self, options, {"id": ca.pk, "slug": ca.slug, "serial": ca.certificate.serial},
             f"Created root CA '{ca.slug}' (id {ca.pk}, serial {ca.certificate.serial}).")
