"""Fixed-window rate limits, counted where every worker that must agree can see the count.

Two kinds of counting, chosen by what a limit guards:

* `shared_store()`: the sign-in limits and the denial-recording budget. They must hold their
  stated numbers across every worker process and host, so they count in Redis (`INCR`, when
  `CACHE_URL` names Redis), in memcached (when it names memcached), and otherwise in the
  database every worker shares (`DatabaseStore`: one atomic upsert per counted hit). Only
  *failures* are counted there (a wrong credential, a refused request), never a successful call,
  so the database write is off every normal request's path.
* `cache_store()`: the public `/pki/` limit on the OCSP hot path. It counts in Django's cache:
  shared with Redis or memcached, per worker process with the default local-memory cache (the
  limit then holds per process). A database write on every public request would cost more than
  answering it.

A bucket's window is `[k * window, (k + 1) * window)` in epoch seconds; the hit that takes a
bucket's count past `limit` in a window is the first one refused, and `retry_after` says when
that window ends.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.memcached import BaseMemcachedCache
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.http import HttpRequest

logger = logging.getLogger(__name__)

KEY_PREFIX = "pki:rl:"
LAST_WINDOW_PREFIX = "pki:rl-last:"
EXPIRY_SLACK = 5  # seconds a counter outlives its window, for workers whose clocks lag a little
PRUNE_INTERVAL = 60  # seconds between two prunings of the database counters, per process


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    count: int
    retry_after: int  # seconds until the window resets (0 when allowed)


@dataclass(frozen=True)
class WindowCount:
    """A bucket's count in the current window, this hit included.

    On the first hit of a window (`count == 1`) and only when the bucket was counted with
    `keep`, `previous_window_start` and `previous_count` tell the most recent earlier window the
    bucket counted in and how many hits it took, so a caller can say what happened there once
    the window is over (`audit.denials` reports the refusals it left unrecorded that way).
    """

    count: int
    window_start: int
    previous_window_start: int | None = None
    previous_count: int = 0


class CounterStore(Protocol):
    name: str

    def increment(self, bucket: str, window_start: int, window: int, keep: int) -> WindowCount:
        """Count one hit in `bucket`'s window starting at `window_start`, atomically."""


def client_ip(request: HttpRequest) -> str:
    """The peer address gunicorn reports (a trusted proxy must be configured to set it)."""
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def window_start_of(now: float, window: int) -> int:
    return int(now // window) * window


def count(bucket: str, *, window: int, store: CounterStore, keep: int = 0, now: float | None = None) -> WindowCount:
    """Count one hit in `bucket` of `store`.

    `keep` (seconds) keeps the window's count readable that long after it ends, so the bucket's
    next window can report it (`WindowCount.previous_count`).
    """
    now = time.time() if now is None else now
    window = max(1, int(window))
    return store.increment(bucket, window_start_of(now, window), window, max(0, int(keep)))


def hit(bucket: str, *, limit: int, window: int, now: float | None = None,
        store: CounterStore | None = None) -> RateLimitResult:
    """Count one attempt in `bucket`; refused once more than `limit` fall in the current window.

    The public routes call this without `store`, so they count in the cache (`cache_store()`);
    the sign-in limits pass `shared_store()`.
    """
    now = time.time() if now is None else now
    window = max(1, int(window))
    counted = count(bucket, window=window, now=now, store=store or cache_store())
    if counted.count > limit:
        return RateLimitResult(False, counted.count, max(1, math.ceil(counted.window_start + window - now)))
    return RateLimitResult(True, counted.count, 0)


# --- Where the counts live -----------------------------------------------------------------------


def shared_store() -> CounterStore:
    """A store every worker process and host shares: Redis or memcached when configured, else the database."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        return RedisStore(_redis_location(), fallback=DatabaseStore())
    if isinstance(cache, BaseMemcachedCache):
        return CacheStore()
    return DatabaseStore()


def cache_store() -> CounterStore:
    """Django's cache: shared with Redis or memcached, one per worker process with local memory."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        return RedisStore(_redis_location())
    return CacheStore()


def _redis_location() -> str:
    """The server Django's Redis cache writes to: the first of its LOCATION list."""
    location = settings.CACHES["default"]["LOCATION"]
    servers = re.split("[;,]", location) if isinstance(location, str) else list(location)
    return servers[0]


@functools.cache
def _redis_client(location: str):
    import redis

    return redis.Redis.from_url(location, socket_connect_timeout=2, socket_timeout=2)


@dataclass(frozen=True)
class RedisStore:
    """`INCR` and `EXPIRE` in one `MULTI`: atomic, one round trip, never a counter without expiry.

    With a `fallback` (the shared store's database), a Redis outage counts there instead, so a
    wrong credential is still limited and never turns into a 500; without one (the public routes)
    the error goes to the caller, which serves rather than fail relying parties.
    """

    location: str
    fallback: CounterStore | None = None
    name: str = "redis"

    def increment(self, bucket: str, window_start: int, window: int, keep: int) -> WindowCount:
        import redis

        try:
            return self._increment(bucket, window_start, window, keep)
        except redis.RedisError:
            if self.fallback is None:
                raise
            logger.warning("Redis is unavailable: counting %s in the %s store", bucket, self.fallback.name)
            return self.fallback.increment(bucket, window_start, window, keep)

    def _increment(self, bucket: str, window_start: int, window: int, keep: int) -> WindowCount:
        client, make_key = _redis_client(self.location), caches["default"].make_key  # the cache's KEY_PREFIX too
        key, ttl = make_key(f"{KEY_PREFIX}{bucket}:{window_start}"), window + keep + EXPIRY_SLACK
        pipeline = client.pipeline(transaction=True)
        pipeline.incr(key)
        pipeline.expire(key, ttl)
        counted = int(pipeline.execute()[0])
        if counted != 1 or not keep:
            return WindowCount(counted, window_start)
        # The first hit of a window: swap in this window as the bucket's latest, read the one before.
        last_key = make_key(f"{LAST_WINDOW_PREFIX}{bucket}")
        pipeline = client.pipeline(transaction=True)
        pipeline.getset(last_key, window_start)
        pipeline.expire(last_key, ttl)
        previous = pipeline.execute()[0]
        if previous is None or int(previous) >= window_start:
            return WindowCount(counted, window_start)
        previous_count = client.get(make_key(f"{KEY_PREFIX}{bucket}:{int(previous)}"))
        return WindowCount(counted, window_start, int(previous), int(previous_count or 0))


@dataclass(frozen=True)
class CacheStore:
    """Django's cache, `add` then `incr` (atomic in local memory and memcached)."""

    name: str = "cache"

    def increment(self, bucket: str, window_start: int, window: int, keep: int) -> WindowCount:
        cache = caches["default"]
        key, ttl = f"{KEY_PREFIX}{bucket}:{window_start}", window + keep + EXPIRY_SLACK
        for _ in range(3):  # the key may expire between add and incr at a window's edge
            cache.add(key, 0, timeout=ttl)
            try:
                counted = int(cache.incr(key))
                break
            except ValueError:
                continue
        else:  # the cache refused three times: count the attempt as the first rather than fail it
            counted = 1
        if counted != 1 or not keep:
            return WindowCount(counted, window_start)
        last_key = f"{LAST_WINDOW_PREFIX}{bucket}"
        previous = cache.get(last_key)
        cache.set(last_key, window_start, timeout=ttl)
        if previous is None or int(previous) >= window_start:
            return WindowCount(counted, window_start)
        previous_count = cache.get(f"{KEY_PREFIX}{bucket}:{previous}")
        return WindowCount(counted, window_start, int(previous), int(previous_count or 0))


# The new window replaces the old one (whose start and count move to previous_*); a hit stamped
# with an older window (a worker whose clock lags) counts in the current one. Every expression of
# the SET list reads the row as it was before the statement, on SQLite as on PostgreSQL.
_UPSERT = """
INSERT INTO {table} (bucket, window_start, count, previous_window_start, previous_count, keep_until)
VALUES (%s, %s, 1, NULL, 0, %s)
ON CONFLICT (bucket) DO UPDATE SET
    previous_window_start = CASE WHEN excluded.window_start > {table}.window_start
                                 THEN {table}.window_start ELSE {table}.previous_window_start END,
    previous_count = CASE WHEN excluded.window_start > {table}.window_start
                          THEN {table}.count ELSE {table}.previous_count END,
    count = CASE WHEN excluded.window_start > {table}.window_start THEN 1 ELSE {table}.count + 1 END,
    window_start = CASE WHEN excluded.window_start > {table}.window_start
                        THEN excluded.window_start ELSE {table}.window_start END,
    keep_until = CASE WHEN excluded.keep_until > {table}.keep_until
                      THEN excluded.keep_until ELSE {table}.keep_until END
RETURNING count, window_start, previous_window_start, previous_count
"""
_last_pruned = 0.0


@dataclass(frozen=True)
class DatabaseStore:
    """One row per bucket (`ratelimits.Counter`), counted by one atomic upsert.

    PostgreSQL takes the row's lock for the `DO UPDATE`; SQLite holds its single write lock for
    the statement: concurrent workers never lose a hit. The statement commits on its own (the
    callers count outside any transaction: a refused request must stay counted).
    """

    name: str = "database"

    def increment(self, bucket: str, window_start: int, window: int, keep: int) -> WindowCount:
        from ratelimits.models import Counter

        table = connection.ops.quote_name(Counter._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT.format(table=table), [bucket[:200], window_start, window_start + window + keep])
            counted, current_start, previous_start, previous_count = cursor.fetchone()
        _prune_now_and_then(time.time())
        if counted != 1 or not keep or previous_start is None:
            return WindowCount(int(counted), int(current_start))
        return WindowCount(int(counted), int(current_start), int(previous_start), int(previous_count))


def _prune_now_and_then(now: float) -> None:
    """Forget buckets whose windows are over, at most once a minute per process."""
    global _last_pruned
    if now - _last_pruned < PRUNE_INTERVAL:
        return
    _last_pruned = now
    from ratelimits.models import Counter

    Counter.objects.filter(keep_until__lt=int(now) - EXPIRY_SLACK).delete()
