import json

from django.db.models import Q

from certificates.management.profile_options import profile_as_dict
from certificates.services.profiles import visible_profiles
from pki_project.actor import Actor
from pki_project.cli import JsonCommand


class Command(JsonCommand):
    help = "List certificate profiles (built-ins, global and per organization)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--organization", metavar="SLUG", help="only global profiles and this organization's")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **options) -> None:
        queryset = visible_profiles(Actor.operator("list_profiles")).order_by("name")
        if options["organization"]:
            queryset = queryset.filter(Q(organization__isnull=True) | Q(organization__slug=options["organization"]))
        rows = [profile_as_dict(profile) for profile in queryset]
        if options["json"]:
            self.stdout.write(json.dumps({"count": len(rows), "profiles": rows}))
            return
        self.stdout.write(f"{'NAME':<24} {'ORGANIZATION':<16} {'MAX HOURS':>9}  {'EKU':<28} FLAGS")
        for row in rows:
            flags = [flag for flag, on in (("builtin", row["is_builtin"]), ("disabled", not row["enabled"]),
                                           ("must-staple", row["must_staple"]), ("cabf", row["cabf_policy"])) if on]
            self.stdout.write(f"{row['name']:<24.24} {row['organization'] or '(global)':<16.16} "
                              f"{row['max_validity_hours']:>9}  {','.join(row['extended_key_usages']):<28.28} "
                              f"{' '.join(flags)}")
        self.stdout.write(f"{len(rows)} profile(s).")
