"""IntermediateKeyCache: bounded LRU, invalidation, TTL, thread safety."""

from __future__ import annotations

import pickle
import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from certificates.vault.custody import IntermediateKeyCache, load_intermediate_key, seal_intermediate_key
from certificates.vault.storage import ArtifactStore


class Loader:
    """Counts loads per id and returns a fresh object each time (so reloads are visible)."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def __call__(self, ca_id: str):
        def load() -> tuple[str, int]:
            self.calls[ca_id] = self.calls.get(ca_id, 0) + 1
            return (ca_id, self.calls[ca_id])

        return load


def test_loads_once_then_hits() -> None:
    cache, loader = IntermediateKeyCache(), Loader()
    first = cache.get_or_load("a", loader("a"))
    assert cache.get_or_load("a", loader("a")) is first
    assert loader.calls == {"a": 1}
    info = cache.cache_info()
    assert (info.hits, info.misses, info.size, info.max_entries) == (1, 1, 1, 64)


def test_bounded_and_least_recently_used_goes_first() -> None:
    cache, loader = IntermediateKeyCache(max_entries=3), Loader()
    for ca_id in "abc":
        cache.get_or_load(ca_id, loader(ca_id))
    cache.get_or_load("a", loader("a"))  # a is now the most recently used
    cache.get_or_load("d", loader("d"))  # evicts b
    assert len(cache) == 3
    assert "b" not in cache
    assert all(ca_id in cache for ca_id in "acd")
    cache.get_or_load("b", loader("b"))  # evicts c
    assert "c" not in cache
    assert loader.calls == {"a": 1, "b": 2, "c": 1, "d": 1}
    assert cache.cache_info().evictions == 2


def test_default_bound_is_64() -> None:
    cache, loader = IntermediateKeyCache(), Loader()
    for index in range(100):
        cache.get_or_load(str(index), loader(str(index)))
    assert len(cache) == 64
    assert "35" not in cache
    assert "36" in cache


def test_invalidate_and_clear() -> None:
    cache, loader = IntermediateKeyCache(), Loader()
    cache.get_or_load("a", loader("a"))
    cache.get_or_load("b", loader("b"))
    assert cache.invalidate("a") is True
    assert cache.invalidate("a") is False
    assert cache.get_or_load("a", loader("a")) == ("a", 2)
    cache.clear()
    assert len(cache) == 0
    assert cache.get_or_load("b", loader("b")) == ("b", 2)


def test_ttl_expires_entries() -> None:
    now = [1000.0]
    cache, loader = IntermediateKeyCache(ttl_seconds=60, clock=lambda: now[0]), Loader()
    cache.get_or_load("a", loader("a"))
    now[0] += 59
    assert cache.get_or_load("a", loader("a")) == ("a", 1)
    now[0] += 1
    assert "a" not in cache
    assert cache.get_or_load("a", loader("a")) == ("a", 2)


def test_failed_load_is_not_cached() -> None:
    cache = IntermediateKeyCache()

    def broken() -> object:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        cache.get_or_load("a", broken)
    assert "a" not in cache
    assert cache.get_or_load("a", lambda: "ok") == "ok"


def test_invalidation_during_a_load_wins() -> None:
    """A key loaded before a revocation must not be cached after it."""
    cache = IntermediateKeyCache()

    def load_then_get_revoked() -> str:
        cache.invalidate("a")  # e.g. another thread revokes the CA while we read its key
        return "stale"

    assert cache.get_or_load("a", load_then_get_revoked) == "stale"
    assert "a" not in cache
    assert cache.get_or_load("a", lambda: "fresh") == "fresh"


def test_concurrent_misses_load_once() -> None:
    cache = IntermediateKeyCache()
    calls = []
    barrier = threading.Barrier(8)

    def slow_loader() -> object:
        calls.append(1)
        time.sleep(0.05)
        return object()

    results: list[object] = []

    def worker() -> None:
        barrier.wait()
        results.append(cache.get_or_load("a", slow_loader))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len({id(result) for result in results}) == 1


def test_with_real_intermediate_keys(store: ArtifactStore) -> None:
    cache = IntermediateKeyCache(max_entries=2)
    for name in ("one", "two"):
        seal_intermediate_key(store, f"cas/{name}", ec.generate_private_key(ec.SECP256R1()))
    key = cache.get_or_load("one", lambda: load_intermediate_key(store, "cas/one"))
    assert cache.get_or_load("one", lambda: pytest.fail("must be cached")) is key


def test_repr_and_pickle() -> None:
    cache = IntermediateKeyCache(max_entries=5, ttl_seconds=30)
    cache.get_or_load("a", lambda: ec.generate_private_key(ec.SECP256R1()))
    assert repr(cache) == "IntermediateKeyCache(size=1, max_entries=5, ttl_seconds=30)"
    with pytest.raises(TypeError):
        pickle.dumps(cache)


@pytest.mark.parametrize("kwargs", [{"max_entries": 0}, {"ttl_seconds": 0}, {"ttl_seconds": -1}])
def test_invalid_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        IntermediateKeyCache(**kwargs)  # type: ignore[arg-type]
