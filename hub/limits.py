"""Counters every hub process shares: requests and tokens per minute, spend per budget period.

In Redis when REDIS_URL is set (atomic INCRBY, shared by every worker and
host), in this process otherwise. A Redis outage lets requests through
(logged) rather than refusing every tenant.
"""

import time

import redis
from django.conf import settings

from accounts import caches

from . import shared_state


class LocalCounters:
    def __init__(self):
        self.values: dict[str, tuple[float, int]] = {}

    def _live(self, key: str) -> int | None:
        entry = self.values.get(key)
        if entry is None or entry[0] < time.time():
            return None
        return entry[1]

    async def incr(self, key: str, amount: int, ttl: int) -> int:
        value = (self._live(key) or 0) + amount
        expires = self.values[key][0] if self._live(key) is not None else time.time() + ttl
        self.values[key] = (expires, value)
        return value

    async def get_many(self, keys: list[str]) -> list[int | None]:
        return [self._live(k) for k in keys]

    async def set_if_absent(self, key: str, value: int, ttl: int) -> None:
        if self._live(key) is None:
            self.values[key] = (time.time() + ttl, value)


class RedisCounters:
    def __init__(self, url: str):
        self.url = url

    def client(self):
        return shared_state.redis_client(self.url)

    async def incr(self, key: str, amount: int, ttl: int) -> int:
        async with self.client().pipeline(transaction=True) as pipe:
            pipe.incrby(key, amount)
            pipe.expire(key, ttl, nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def get_many(self, keys: list[str]) -> list[int | None]:
        return [None if v is None else int(v) for v in await self.client().mget(keys)]

    async def set_if_absent(self, key: str, value: int, ttl: int) -> None:
        await self.client().set(key, value, ex=ttl, nx=True)


class FailOpen(shared_state.FailOpen):
    what = "limit counters"
    consequence = "not enforcing them"

    async def incr(self, key, amount, ttl):
        return await self._guard(self.inner.incr(key, amount, ttl), 0)

    async def get_many(self, keys):
        return await self._guard(self.inner.get_many(keys), [0] * len(keys))

    async def set_if_absent(self, key, value, ttl):
        return await self._guard(self.inner.set_if_absent(key, value, ttl), None)


_counters = None


def counters():
    global _counters
    if _counters is None:
        _counters = FailOpen(RedisCounters(settings.REDIS_URL)) if settings.REDIS_URL else LocalCounters()
    return _counters


def reset() -> None:
    """Forget every counter (tests)."""
    global _counters
    inner = getattr(_counters, "inner", None)
    if isinstance(inner, RedisCounters):
        try:
            client = redis.Redis.from_url(inner.url)
            keys = list(client.scan_iter("hub:limit:*"))
            if keys:
                client.delete(*keys)
        except Exception:  # noqa: S110 - that Redis is gone: nothing to forget
            pass
    _counters = None


caches.register(reset, lambda: _counters)
