"""manage.py export_audit_log: stream the trail as JSON Lines, verifiable offline."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.timezone import make_aware

from audit.actions import AuditAction
from audit.export import export_lines
from audit.verification import read_only_snapshot


class Command(BaseCommand):
    help = (
        "Write audit events as JSON Lines (one event per line, in seq order, with seq, prev_hash and hash) "
        "to FILE or stdout. A full export can be verified offline; see the README."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", default="-", metavar="FILE", help="file to write, or - for stdout")
        parser.add_argument("--since", metavar="ISO", help="only events at or after this UTC date or time")
        parser.add_argument("--action", choices=[action.value for action in AuditAction],
                            help="only events of this action")

    def handle(self, *args: Any, **options: Any) -> None:
        since = _parse_since(options["since"]) if options["since"] else None
        with read_only_snapshot():
            lines = export_lines(since=since, action=options["action"])
            if options["output"] == "-":
                for line in lines:
                    self.stdout.write(line)
                return
            try:
                with Path(options["output"]).open("w", encoding="utf-8") as stream:
                    count = _write_lines(stream, lines)
            except OSError as error:
                raise CommandError(f"cannot write {options['output']}: {error.strerror}") from None
        self.stderr.write(f"Exported {count} events to {options['output']}.")


def _write_lines(stream: IO[str], lines: Iterator[str]) -> int:
    count = 0
    for line in lines:
        stream.write(line + "\n")
        count += 1
    return count


def _parse_since(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"--since: {text!r} is not an ISO-8601 date or date-time")
        moment = datetime(day.year, day.month, day.day)
    return moment if moment.tzinfo else make_aware(moment, timezone=None)
