"""Shared bits of the identity commands: `--json` output and one-line errors."""

from __future__ import annotations

import json

from django.core.management.base import CommandError


def emit(command, options, payload: dict, text: str) -> None:
    """With --json exactly one JSON object on stdout; otherwise a human sentence."""
    if options.get("json"):
        command.stdout.write(json.dumps(payload, sort_keys=True))
    else:
        command.stdout.write(text)


def fail(message: str) -> CommandError:
    """A clear one-line error, exit status 1, no traceback."""
    return CommandError(message, returncode=1)
