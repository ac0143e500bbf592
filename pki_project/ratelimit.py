"""Fixed-window rate limits counted in Django's cache.

With `CACHE_URL` pointing at Redis the counters are shared by every worker process
and host; with the default local-memory cache each process counts on its own.
Counting is atomic: `cache.add` creates the window's counter only when absent and
`cache.incr` increments it (Redis INCR).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    count: int
    retry_after: int  # seconds until the window resets (0 when allowed)


def hit(bucket: str, *, limit: int, window: int, now: float | None = None) -> RateLimitResult:
    """Count one attempt in `bucket`; refused once more than `limit` fall in the current window."""
    now = time.time() if now is None else now
    window = max(1, int(window))
    window_start = int(now // window) * window
    key = f"pki:rl:{bucket}:{window_start}"
    for _ in range(3):  # the key may expire between add and incr at a window's edge
        cache.add(key, 0, timeout=window + 5)
        try:
            count = cache.incr(key)
            break
        except ValueError:
            continue
    else:  # the cache refused three times: count the attempt as allowed rather than locking out
        count = 1
    retry_after = max(1, math.ceil(window_start + window - now))
    if count > limit:
        return RateLimitResult(False, count, retry_after)
    return RateLimitResult(True, count, 0)
