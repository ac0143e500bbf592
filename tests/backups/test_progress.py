"""Progress is drawn on a terminal only; piped output stays clean."""

from __future__ import annotations

import io

from backups.management.commands._progress import TerminalProgress


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal() -> None:
    stream = FakeTerminal()
    progress = TerminalProgress(stream)
    progress("tables", 3, 3)
    progress.finish()
    assert "tables: 3/3" in stream.getvalue()


def test_no_progress_when_piped() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress("tables", 3, 3)
    progress.finish()
    assert stream.getvalue() == ""
