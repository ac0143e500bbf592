"""The one error a backup or restore raises when it refuses: a clear message and a short code.

`code` is machine-readable (the HTTP answer's `{"error": {"code", "message"}}`);
`message` is written for an operator and never contains a secret or a server path
beyond the archive's own member names.
"""

from __future__ import annotations

from kernel.errors import ServiceError


class BackupError(ServiceError):
    """A member of the one error family (`kernel.errors`): every channel maps it as any other refusal."""

    default_code = "invalid_backup"


class InjectedFailure(BackupError):
    """Raised by the `fail_at` test hook: a restore step failing the way a real error would."""

    def __init__(self, step: str) -> None:
        super().__init__(f"Injected failure at restore step {step!r}.", code="injected_failure")
        self.step = step


class SimulatedCrash(BaseException):
    """Raised by the `crash_at` test hook: the process "dies" at a step.

    A BaseException so that no cleanup handler of the restore runs, as after a real
    kill: the database rolls its transaction back by itself, the files stay where
    they were, and `recover_interrupted_restore` must put things right.
    """

    def __init__(self, step: str) -> None:
        super().__init__(f"Simulated crash at restore step {step!r}.")
        self.step = step
