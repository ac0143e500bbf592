"""One row per rate-limit bucket: the count of its current fixed window, and of the window before.

Every worker process and host shares the database, so counting here holds a limit's stated
number across all of them when there is no shared cache (`pki_project.ratelimit.DatabaseStore`
increments with one atomic `INSERT … ON CONFLICT … DO UPDATE … RETURNING`). Rows are volatile:
they are pruned once their window (and `keep_until`) has passed, and left out of backups.
Times are whole seconds since the epoch (UTC), so the row means the same on every backend.
"""

from __future__ import annotations

from django.db import models


class Counter(models.Model):
    bucket = models.CharField(max_length=200, unique=True)  # e.g. "login-ip:192.0.2.7"
    window_start = models.BigIntegerField()  # epoch seconds, a multiple of the window length
    count = models.PositiveIntegerField()  # hits in the window that starts at window_start
    previous_window_start = models.BigIntegerField(null=True)  # the last earlier window this bucket counted in
    previous_count = models.PositiveIntegerField(default=0)  # its hits (the denial summaries read it)
    keep_until = models.BigIntegerField()  # epoch seconds after which the row may be pruned

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(count__gte=1), name="ratelimit_counter_count_positive"),
            models.CheckConstraint(condition=models.Q(keep_until__gt=models.F("window_start")),
                                   name="ratelimit_counter_kept_past_its_window"),
        ]
        indexes = [models.Index(fields=["keep_until"], name="ratelimit_counter_keep_until")]

    def __str__(self) -> str:
        return f"{self.bucket}: {self.count} since {self.window_start}"
