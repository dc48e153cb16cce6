"""What the stores of shared state (route health, limit counters) have in common:
one Redis client per event loop, and failing open when Redis is out."""

import asyncio
import logging

import redis.asyncio

logger = logging.getLogger("hub.shared_state")
_clients: dict = {}


async def coalesced(pending: dict, key, start):
    """Run `start()` once for all concurrent callers with the same key; each gets its result.

    When a cache expires under load, hundreds of requests miss at once: they
    wait for one read instead of making hundreds. Shielded, so one caller
    leaving (a client disconnect) does not cancel the others' read.
    """
    future = pending.get(key)
    if future is None:
        future = pending[key] = asyncio.ensure_future(start())
        future.add_done_callback(lambda _: pending.pop(key, None))
    return await asyncio.shield(future)


def redis_client(url: str, decode_responses: bool = False):
    """A pooled async client for this event loop; waits for a free connection under load instead of failing."""
    key = (asyncio.get_running_loop(), url, decode_responses)
    client = _clients.get(key)
    if client is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            url, decode_responses=decode_responses, max_connections=64, timeout=5
        )
        client = _clients[key] = redis.asyncio.Redis(connection_pool=pool)
    return client


class FailOpen:
    """A store whose outage degrades what it serves instead of failing requests; logged."""

    what = "shared state"
    consequence = "going on without it"

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def _guard(self, call, default):
        try:
            return await call
        except Exception as exc:  # redis.RedisError, OSError, timeouts
            logger.warning("%s unavailable (%s): %s", self.what, type(exc).__name__, self.consequence)
            return default
