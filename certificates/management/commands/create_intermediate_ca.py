
from certificates.crypto.keys import KeyType
from certificates.selectors import get_ca
from certificates.services.authorities import (
    DEFAULT_INTERMEDIATE_DAYS,
    DEFAULT_INTERMEDIATE_KEY_TYPE,
    ca_purposes,
    create_intermediate_ca,
)
from certificates.services.profiles import ca_policy_oids
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


def _policies_clause(policies: list[str]) -> str:
    return f", asserting the policies {', '.join(policies)}" if policies else ""


class Command(JsonCommand):
    help = "Create an intermediate CA signed by a root (asks for its root password) or by another intermediate."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--root", required=True, metavar="CA", help="the signing CA: slug or id")
        parser.add_argument("--name", required=True, metavar="CN", help="the new CA's common name")
        parser.add_argument("--key-type", default=DEFAULT_INTERMEDIATE_KEY_TYPE.value,
                            choices=[k.value for k in KeyType])
        parser.add_argument("--days", type=int, default=DEFAULT_INTERMEDIATE_DAYS)
        parser.add_argument("--path-length", type=int, default=0)
        parser.add_argument("--permit", action="append", default=[], metavar="NAME",
                            help="name constraint: permitted DNS domain, email domain or IP network (repeatable)")
        parser.add_argument("--exclude", action="append", default=[], metavar="NAME",
                            help="name constraint: excluded subtree (repeatable)")
        parser.add_argument("--purposes", default=None, metavar="LIST",
                            help="what the CA vouches for, its EKU: comma-separated serverAuth, clientAuth, "
                                 "emailProtection (default: the parent's purposes; all three below a root)")
        parser.add_argument("--policy-oids", default=None, metavar="LIST",
                            help="comma-separated private certificate policy OIDs the CA asserts instead of "
                                 "anyPolicy; its certificates assert them when their profile names none")
        parser.add_argument("--slug", default=None)
        parser.add_argument("--crl-validity-hours", type=int, default=None, metavar="HOURS",
                            help="thisUpdate to nextUpdate of this CA's CRLs (default: 2160 for a root, 168 below)")
        parser.add_argument("--country", default=None, metavar="CC",
                            help="ISO 3166 country code of the CA subject (default: PKI_DEFAULT_COUNTRY)")
        add_password_arguments(parser)
        add_key_backend_arguments(parser)
        add_json_argument(parser)

    def handle(self, *args, **options) -> None:
        with service_errors_as_command_errors():
            parent = get_ca(options["root"])
            password = read_root_secret(options, token=parent.key_backend == "pkcs11") if parent.is_root else None
            ca = create_intermediate_ca(
                parent=parent, common_name=options["name"], root_password=password, key_type=options["key_type"],
                days=options["days"], path_length=options["path_length"], permitted_names=options["permit"],
                excluded_names=options["exclude"], slug=options["slug"], country=options["country"],
                crl_validity_hours=options["crl_validity_hours"], purposes=options["purposes"],
                policy_oids=[oid for oid in (options["policy_oids"] or "").split(",") if oid.strip()] or None,
                actor=Actor.operator("create_intermediate_ca"), key_backend=options["key_backend"],
                token_label=options["token_label"],
            )
        purposes, policies = ca_purposes(ca), list(ca_policy_oids(ca))
        emit(self, options, {"id": ca.pk, "slug": ca.slug, "serial": ca.certificate.serial, "purposes": purposes,
                             "policy_oids": policies},
             f"Created intermediate CA '{ca.slug}' (id {ca.pk}, serial {ca.certificate.serial}) below '{parent.slug}', "
             f"for {', '.join(purposes)}{_policies_clause(policies)}.")
