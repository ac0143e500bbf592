"""Progress on a terminal for the backup commands: one rewritten line on stderr, nothing when piped."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class TerminalProgress:
    """A `Progress` callable that redraws at most ten times a second, only when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and (total is None or done < total):
            return
        self._last = now
        text = f"{stage}: {done}/{total}" if total else f"{stage}: {done}"
        self.stream.write(f"\r\033[K{text}")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
