"""One pooled async HTTP client per process (per event loop), shared by all adapters.

httpx's API over aiohttp's transport: measured here, the aiohttp transport
relays about twice the requests per second of httpx's default one.
"""

import asyncio
import contextlib
import contextvars
import functools
import ipaddress
import socket

import aiohttp
import aiohttp.abc
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
_fetchers: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}  # client()'s own, closed with it


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    c = _clients.get(loop)
    if c is None:
        limits = httpx.Limits(
            max_connections=settings.HUB_UPSTREAM_MAX_CONNECTIONS,
            max_keepalive_connections=settings.HUB_UPSTREAM_MAX_CONNECTIONS,
        )
        transport = AiohttpTransport(limits=limits)
        transport.client = _sessions[loop] = transport.get_client()  # made now, so that session() has it
        c = _clients[loop] = httpx.AsyncClient(transport=transport, timeout=timeouts(None)[0], follow_redirects=False)
    return c


def session() -> aiohttp.ClientSession:
    """The aiohttp session under client(), its pool and connections. transport.send posts through it
    directly, without httpx's client layers (URL and header merging, auth, redirects, hooks): they cost
    more CPU per request than aiohttp's own work (measured in bench/)."""
    pool = _sessions.get(asyncio.get_running_loop())
    if pool is None:
        client()
        pool = _sessions[asyncio.get_running_loop()]
    return pool


@functools.cache
def default_headers() -> dict[str, str]:
    """The headers httpx's client sends by default (accept, accept-encoding for the decoders httpx has,
    connection, user-agent), lower-cased: the direct path sends the same."""
    return {k.lower(): v for k, v in client().headers.items()}


@functools.lru_cache(maxsize=256)
def aiohttp_timeout(connect: float | None, read: float | None, pool: float | None) -> aiohttp.ClientTimeout:
    """httpx's timeouts as httpx_aiohttp gives them to aiohttp."""
    return aiohttp.ClientTimeout(sock_connect=connect, sock_read=read, connect=pool)


class PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    """Resolves names to public addresses only: checked at connect time, on the very addresses connected
    to, so a name that resolves to a public address when checked and a private one when fetched (DNS
    rebinding) cannot reach the hub's own network."""

    def __init__(self):
        self._resolver = aiohttp.DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family=socket.AF_INET):
        hosts = await self._resolver.resolve(host, port, family)
        if any(not ipaddress.ip_address(h["host"]).is_global for h in hosts):
            raise OSError(f"{host} resolves to an address that is not public")
        return hosts

    async def close(self) -> None:
        await self._resolver.close()


def fetch_client() -> httpx.AsyncClient:
    """The client that fetches URLs tenants give (images): public addresses only, unless
    HUB_FETCH_ALLOW_PRIVATE; no redirects."""
    if getattr(settings, "HUB_FETCH_ALLOW_PRIVATE", False):
        return client()
    loop = asyncio.get_running_loop()
    c = _fetchers.get(loop)
    if c is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PublicOnlyResolver(), limit=100))
        c = _fetchers[loop] = httpx.AsyncClient(
            transport=AiohttpTransport(client=session), timeout=timeouts(None)[0], follow_redirects=False
        )
    return c


def timeouts(route) -> tuple[httpx.Timeout, float | None]:
    """A provider's connect and idle timeouts, and the first-byte one (streams only); the settings' by default.

    Read per call, so a settings or provider change applies without a new pool.
    """
    connect = getattr(route, "connect_timeout", None) or settings.HUB_UPSTREAM_CONNECT_TIMEOUT
    idle = getattr(route, "idle_timeout", None) or settings.HUB_UPSTREAM_READ_TIMEOUT
    first_byte = getattr(route, "first_byte_timeout", None) or settings.HUB_UPSTREAM_FIRST_BYTE_TIMEOUT
    return httpx.Timeout(connect=connect, read=idle, write=idle, pool=connect), first_byte


async def close() -> None:
    loop = asyncio.get_running_loop()
    _sessions.pop(loop, None)  # closed with its client
    for pool in (_clients, _fetchers):
        c = pool.pop(loop, None)
        if c is not None:
            await c.aclose()


# Requests being prepared (read, checked, priced, routed) before their upstream call, at most
# HUB_SETUP_SLOTS at a time in this worker. A burst (500 streams at once) would otherwise prepare all of
# its requests in one turn of the event loop, relaying no upstream byte until the last was sent; taken a
# few at a time, in arrival order, the loop reads the upstreams between them, so the first arrivals get
# their first tokens while the later ones are prepared.
_setup: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
_slot: contextvars.ContextVar[list] = contextvars.ContextVar("hub_setup_slot")


@contextlib.asynccontextmanager
async def setup_slot():
    """Hold one of the worker's setup slots until setup_done() (the upstream call starts), the end, or
    HUB_SETUP_SLOT_SECONDS, whichever comes first: a request that waits that long (a slow database or Redis)
    is waiting, not working, and must not hold up the requests behind it."""
    loop = asyncio.get_running_loop()
    slots = _setup.get(loop)
    if slots is None:
        slots = _setup[loop] = asyncio.Semaphore(settings.HUB_SETUP_SLOTS)
    await slots.acquire()
    held = [slots]  # shared with the tasks the request starts (they copy its context); emptied on release
    token = _slot.set(held)
    timer = loop.call_later(settings.HUB_SETUP_SLOT_SECONDS, _release, held)
    try:
        yield
    finally:
        timer.cancel()
        _slot.reset(token)
        _release(held)


def _release(held: list) -> None:
    if held:
        held.pop().release()


def setup_done() -> None:
    """The request's upstream call starts: its setup slot goes to the next request waiting."""
    held = _slot.get(None)
    if held:
        _release(held)
