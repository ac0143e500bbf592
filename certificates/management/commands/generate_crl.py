"""`manage.py generate_crl --ca CA | --all [--force] [--full | --delta]`: sign CRLs, for cron.

Without `--force` only what is due is signed (`crls_due`), so a cron line every few minutes
is cheap: an intermediate's full CRL (with a fresh delta against it) every
`PKI_CRL_FULL_INTERVAL_HOURS` or once it has less than half its lifetime left, and in between
only its delta CRL when that is missing, old, on an older base or misses a revocation.
`--full` signs full CRLs (with their delta) where anything is due (with `--force`: everywhere);
`--delta` signs delta CRLs only (roots publish none). A root is signed only when its password is given
(`--password-file` / `--password-env`; never a prompt under `--all`, so cron never
hangs): otherwise it is skipped with a line saying so. Signing a root's CRL also
pre-signs the OCSP answers about its children.
"""

from __future__ import annotations

import sys
from typing import Any

from django.utils import timezone

from certificates.models import CertificateAuthority
from certificates.selectors import get_ca
from certificates.services.publication import ROOT_DELTA_SKIP_REASON, publish_crls_for
from pki_project.actor import Actor
from pki_project.cli import (
    JsonCommand,
    add_json_argument,
    add_password_arguments,
    command_failed,
    emit,
    iso_utc,
    read_password,
    service_errors_as_command_errors,
)


class Command(JsonCommand):
    help = "Sign the CRLs (full and delta) of one CA or of all CAs that near nextUpdate (cron)."

    def add_arguments(self, parser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--ca", metavar="CA", help="the CA: slug or id")
        target.add_argument("--all", action="store_true", help="every usable CA whose CRL is due")
        parser.add_argument("--force", action="store_true", help="sign even when the current CRL is still fresh")
        kind = parser.add_mutually_exclusive_group()
        kind.add_argument("--full", action="store_true", help="full CRLs (each with a fresh delta), not deltas alone")
        kind.add_argument("--delta", action="store_true", help="delta CRLs only (against the current full CRL)")
        add_password_arguments(parser, "root password (to sign a root's CRL)")
        add_json_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        actor = Actor.operator("generate_crl")
        now = timezone.now()
        with service_errors_as_command_errors():
            named = get_ca(options["ca"]) if options["ca"] else None
        password = self._root_password(options, named)
        if named is not None and named.is_root and password is None and not options["delta"]:
            raise command_failed(f"The root CA '{named.slug}' needs its password to sign its CRL: "
                                "--password-file FILE (- for stdin) or --password-env VAR.",
                                code="root_password_required")
        cas = [named] if named else list(CertificateAuthority.objects.select_related("certificate").usable(now))
        mode = "full" if options["full"] else "delta" if options["delta"] else "due"
        results, skipped, failed, locked = [], [], [], []
        publications = [publication for publication in publish_crls_for(
            cas, actor=actor, only_due=not options["force"], root_password=password, now=now, mode=mode,
        ) if publication.outcome != "current"]
        for publication in publications:
            ca = publication.ca
            if publication.outcome == "skipped":
                skipped.append(ca.slug)
                if publication.reason == ROOT_DELTA_SKIP_REASON:
                    self._say(options, f"Skipped root CA '{ca.slug}': {ROOT_DELTA_SKIP_REASON}")
                else:
                    locked.append(ca.slug)
                    self._say(options, f"Skipped root CA '{ca.slug}': its CRL needs the root password "
                                       "(--password-file FILE or --password-env VAR).")
                continue
            if publication.outcome == "failed":
                failed.append({"ca": ca.slug, "error": publication.error.message})
                self._say(options, f"Failed CA '{ca.slug}': {publication.error.message}", error=True)
                continue
            for crl in publication.crls:
                results.append({"ca": ca.slug, "number": crl.number, "delta_base": crl.delta_base_number,
                                "entries": crl.entry_count, "next_update": iso_utc(crl.next_update)})
                kind = f"delta CRL #{crl.number} (base #{crl.delta_base_number})" if crl.is_delta else (
                    f"CRL #{crl.number}")
                self._say(options, f"Signed {kind} of '{ca.slug}': {crl.entry_count} entries, "
                                   f"next update {iso_utc(crl.next_update)}.")
        if not publications:
            self._say(options, "No CRL is due (each full CRL is younger than PKI_CRL_FULL_INTERVAL_HOURS with more "
                               "than half its lifetime left, and its delta is current; --force signs anyway).")
        outcome = {"crls": results, "skipped": skipped, "failed": failed}
        if failed:
            raise command_failed(f"{len(failed)} CA(s) failed: " + ", ".join(f["ca"] for f in failed),
                                code="crl_failed", details=outcome)
        if named is not None and locked:  # the one CA asked for was not signed: that is no success
            raise command_failed(f"The root CA '{named.slug}' needs its password to sign its CRL: "
                                "--password-file FILE (- for stdin) or --password-env VAR.",
                                code="root_password_required", details=outcome)
        if options["json"]:
            emit(self, options, outcome, "")

    @staticmethod
    def _root_password(options: dict[str, Any], named: CertificateAuthority | None) -> str | None:
        """From --password-file/--password-env; for one named root, a prompt on a terminal; else None."""
        if options.get("password_file") or options.get("password_env"):
            return read_password(options, "root password")
        if named is not None and named.is_root and sys.stdin.isatty():
            return read_password(options, "root password")
        return None

    def _say(self, options: dict[str, Any], line: str, error: bool = False) -> None:
        if options["json"]:
            return
        (self.stderr if error else self.stdout).write(line)
