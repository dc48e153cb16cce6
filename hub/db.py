"""Database work for the async request path, on two dedicated threads.

Django's ORM is synchronous. Rather than a thread hop per query in the
request's own context (a new connection each time under ASGI), the hot path
sends its rare reads (cache misses) to one thread and its batched writes
(metering) to another; each keeps its connection open between calls.
"""

import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, InterfaceError, OperationalError, connections

from .shared_state import coalesced

_read = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db-read")
_write = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db-write")
# Credit holds, one short transaction per request: apart, so they never wait behind a batch.
_hold = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hub-db-hold")


def _guarded(fn, args):
    try:
        return fn(*args)
    except (OperationalError, InterfaceError):
        # The kept connection may have died (server restart, idle timeout):
        # drop it and try once more on a fresh one.
        connections.close_all()
        return fn(*args)
    except DatabaseError:
        connections.close_all()
        raise


async def read(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_read, _guarded, fn, args)


_shared: dict = {}


async def read_shared(key, fn, *args):
    """`read`, but concurrent callers with the same key share one query."""
    return await coalesced(_shared, key, lambda: read(fn, *args))


async def write(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(_write, _guarded, fn, args)


async def hold(fn, **kwargs):
    return await asyncio.get_running_loop().run_in_executor(_hold, _guarded, lambda: fn(**kwargs), ())


def close() -> None:
    """Close both threads' connections (tests drop the database afterwards)."""
    for executor in (_read, _write, _hold):
        executor.submit(connections.close_all).result()
