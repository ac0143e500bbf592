"""Debian's Chromium for the browser tests (tests/browser and the API docs page), installed on demand.

It comes from Debian (`/usr/bin/chromium`), never from a test tool's download: `tests.debian`
installs it with apt-get only if `PKI_BROWSER_INSTALL=1` (the Makefile's test target sets it);
otherwise the calling test is skipped with a message saying how to run it.
"""

from __future__ import annotations

from tests.debian import ensure_tool


def ensure_chromium() -> str:
    """The browser's path, installing it first where allowed; skips the test where it cannot be had."""
    return ensure_tool("chromium")
