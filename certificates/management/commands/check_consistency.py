"""`manage.py check_consistency [--json] [--strict] [--grace-seconds N] [--no-audit]`: for cron.

Exit status: 0 when no error was found (warnings, such as an orphan artifact left by a
killed process, do not fail it unless `--strict`), 1 when problems were found, 2 when
the check could not run (database unreachable, data directory unreadable).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from django.core.management.base import CommandParser
from django.db import DatabaseError

from certificates.consistency import DEFAULT_GRACE_SECONDS, ConsistencyReport, check_consistency
from pki_project.cli import JsonCommand

logger = logging.getLogger(__name__)

EXIT_CLEAN, EXIT_PROBLEMS, EXIT_COULD_NOT_RUN = 0, 1, 2


class Command(JsonCommand):
    help = ("Check the database against the data directory (every referenced artifact exists and opens, no "
            "orphans), certificate chains, CRL freshness and the audit trail. Exit 0 clean, 1 problems, "
            "2 could not run.")
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
        parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
        parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS, metavar="N",
                            help="ignore unreferenced files younger than N seconds: an operation in flight "
                                 f"(default {DEFAULT_GRACE_SECONDS:g})")
        parser.add_argument("--no-audit", action="store_true", help="skip the audit chain (a long walk)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = check_consistency(grace_seconds=options["grace_seconds"], audit=not options["no_audit"])
        except (DatabaseError, OSError) as error:
            logger.debug("check_consistency could not run", exc_info=True)
            self._could_not_run(options, error)
        self._print(report, options)
        failing = report.errors or (options["strict"] and report.warnings)
        sys.exit(EXIT_PROBLEMS if failing else EXIT_CLEAN)

    def _could_not_run(self, options: dict[str, Any], error: Exception) -> None:
        what = "the database is unavailable" if isinstance(error, DatabaseError) else "the data directory is unusable"
        detail = (str(error).strip().splitlines() or [error.__class__.__name__])[0]
        message = f"check_consistency could not run: {what} ({detail})"
        if options["json"]:
            self.stdout.write(json.dumps({"ok": False, "could_not_run": True, "message": message}))
        else:
            self.stderr.write(message)
        sys.exit(EXIT_COULD_NOT_RUN)

    def _print(self, report: ConsistencyReport, options: dict[str, Any]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), sort_keys=True))
            return
        for finding in report.findings:
            self.stdout.write(f"{finding.severity.upper()} {finding.code} [{finding.object}]: {finding.message}")
        checked = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in sorted(report.checked.items()))
        verdict = "consistent" if report.ok else "INCONSISTENT"
        self.stdout.write(f"{verdict}: {len(report.errors)} error(s), {len(report.warnings)} warning(s); "
                          f"checked {checked or 'nothing'}.")
