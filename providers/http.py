"""One pooled async HTTP client per process (per event loop), shared by all adapters.

httpx's API over aiohttp's transport: measured here, the aiohttp transport
relays about twice the requests per second of httpx's default one.
"""

import asyncio
import ipaddress
import socket

import aiohttp
import aiohttp.abc
import httpx
from django.conf import settings
from httpx_aiohttp import AiohttpTransport

_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
_fetchers: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    c = _clients.get(loop)
    if c is None:
        limits = httpx.Limits(
            max_connections=settings.HUB_UPSTREAM_MAX_CONNECTIONS,
            max_keepalive_connections=settings.HUB_UPSTREAM_MAX_CONNECTIONS,
        )
        c = _clients[loop] = httpx.AsyncClient(
            transport=AiohttpTransport(limits=limits), timeout=timeouts(None)[0], follow_redirects=False
        )
    return c


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
    for pool in (_clients, _fetchers):
        c = pool.pop(loop, None)
        if c is not None:
            await c.aclose()
