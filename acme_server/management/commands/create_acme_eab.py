"""manage.py create_acme_eab --organization ORG [--ca CA]: an EAB credential for one ACME client, shown once."""

from __future__ import annotations

from acme_server.services.eab import create_eab_key
from certificates.errors import ServiceError
from certificates.models import CertificateAuthority
from organizations.management.commands._output import emit, fail
from organizations.models import Organization
from pki_project.actor import Actor
from pki_project.cli import JsonCommand


class Command(JsonCommand):
    help = "Create an ACME external account binding key (key id + HMAC key, shown only now)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", required=True, help="organization slug")
        parser.add_argument("--ca", help="slug or id of the intermediate CA the key binds to (default: any of ORG)")
        parser.add_argument("--label", default="", help="a note to recognise the key by")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise fail(f"No organization '{options['organization']}'.")
        ca = None
        if options["ca"]:
            ca = CertificateAuthority.objects.by_reference(options["ca"]).first()
            if ca is None:
                raise fail(f"No CA '{options['ca']}'.")
        try:
            created = create_eab_key(organization, actor=Actor.operator("create_acme_eab"), ca=ca,
                                     label=options["label"])
        except ServiceError as error:
            raise fail(error.message) from None
        credential = created.credential
        payload = {"id": credential.pk, "key_id": credential.key_id, "hmac_key": created.hmac_key,
                   "organization": organization.slug, "ca": ca.slug if ca else None}
        emit(self, options, payload,
             f"ACME external account key for '{organization.slug}'"
             f"{f' (CA {ca.slug})' if ca else ''}. The HMAC key is shown only now; store it safely.\n"
             f"key id:   {credential.key_id}\nHMAC key: {created.hmac_key}")
