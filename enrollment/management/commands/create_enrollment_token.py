"""manage.py create_enrollment_token --organization ORG --ca CA --profile P --san-pattern PATTERN … [--json]"""

from __future__ import annotations

import re
from datetime import timedelta

from django.core.management.base import BaseCommand

from certificates.errors import ServiceError
from certificates.models import CertificateAuthority
from enrollment.services.tokens import create_token
from organizations.management.commands._output import emit, fail
from organizations.models import Organization
from pki_project.actor import Actor

_DURATION = re.compile(r"^([0-9]{1,7})([smhd]?)$")
_UNITS = {"": "seconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `30m`, `24h`, `7d`."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise fail(f"--expires-in '{text[:40]}' is not a duration such as 3600, 30m, 24h or 7d.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Command(BaseCommand):
    help = "Create a one-time enrollment token (shown only now) for a machine to get one certificate."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", required=True, help="organization slug")
        parser.add_argument("--ca", required=True, help="slug or id of the intermediate CA that issues")
        parser.add_argument("--profile", required=True, help="certificate profile name (server, client, ...)")
        parser.add_argument("--san-pattern", action="append", dest="san_patterns", required=True,
                            metavar="PATTERN", help="allowed name, repeatable: DNS:*.fleet.example.com, "
                                                    "IP:10.0.0.0/8, EMAIL:*@example.com, CN:robot-*")
        parser.add_argument("--expires-in", default="24h", help="lifetime: seconds, or 30m, 24h, 7d (default 24h)")
        parser.add_argument("--label", default="", help="a note to recognise the token by")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise fail(f"No organization '{options['organization']}'.")
        ca = CertificateAuthority.objects.by_reference(options["ca"]).filter(organization=organization).first()
        if ca is None:
            raise fail(f"No CA '{options['ca']}' in organization '{organization.slug}'.")
        try:
            created = create_token(organization, ca=ca, profile=options["profile"],
                                   san_patterns=options["san_patterns"],
                                   expires_in=parse_duration(options["expires_in"]), label=options["label"],
                                   actor=Actor.operator("create_enrollment_token"))
        except ServiceError as error:
            raise fail(error.message) from None
        token = created.token
        payload = {"id": token.pk, "token_id": token.token_id, "token": created.secret,
                   "organization": organization.slug, "ca": ca.slug, "profile": token.profile.name,
                   "san_patterns": token.san_patterns, "expires_at": token.expires_at.isoformat()}
        emit(self, options, payload,
             f"Enrollment token {token.token_id} for '{organization.slug}' (CA {ca.slug}, profile "
             f"{token.profile.name}), valid until {token.expires_at.isoformat()}.\n"
             f"The token is shown only now; hand it to the machine safely.\ntoken: {created.secret}")
