"""Shared bits of the identity commands: `--json` output and one-line errors."""

from __future__ import annotations

from pki_project.cli import command_failed, to_json


def emit(command, options, payload: dict, text: str) -> None:
    """With --json exactly one JSON object on stdout; otherwise a human sentence."""
    if options.get("json"):
        command.stdout.write(to_json(payload))
    else:
        command.stdout.write(text)


def fail(message: str, code: str = "failed") -> command_failed:
    """A clear one-line error, exit status 1, no traceback (under --json: one JSON error object)."""
    return command_failed(message, code=code)
