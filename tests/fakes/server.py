"""Loopback uvicorn servers for tests: what the fake upstreams and the live hub share.

``serve(app, name, **options)`` binds 127.0.0.1 on a free port, runs
``uvicorn.Server`` in a daemon thread on its own event loop and returns once it
accepts connections; ``Running.stop()`` ends it. ``served(app)`` is that as a
context manager, ``running(server)`` starts and stops anything with start() and
stop() (a fake, the live hub, localstripe) around a block, and
``server_fixture(make, scope)`` is the pytest fixture every test module's fake
server is: built, started, yielded, stopped. ``FakeUpstream`` is the base of
the fake provider APIs (start/stop/reset/base_url/requests, each request read
whole by ``read_request`` and recorded under a lock), and ``CutStream``, raised
by an app after its response started, makes uvicorn drop the connection
mid-body (without logging a traceback).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Self

import httpx
import pytest
import uvicorn

# The fakes' uvicorn options, on top of serve()'s quiet logging.
FAKE_OPTIONS = {
    "lifespan": "off",
    "loop": "asyncio",
    "http": "h11",
    "access_log": False,
    "server_header": False,
    "timeout_graceful_shutdown": 1,
}  # cancels requests still open (a hang) on stop()


def echo_of(text: str) -> str | None:
    """``echo:<status>`` or ``echo:stream`` (a request's last user text): the fakes' echo mode, where an
    error (of that status, or mid-stream) quotes the request's credential back, as some proxies and
    self-hosted servers do. The hub must never pass that on."""
    if not isinstance(text, str) or not text.startswith("echo:"):
        return None
    return text.removeprefix("echo:").split()[0] if text.strip() != "echo:" else "500"


def echo_message(credential: str) -> str:
    """The echo's words: the credential as a header, bare, base64'd and in a URL, like a proxy's dump."""
    import base64

    bare = credential.split()[-1] if credential else ""
    return (
        f"Upstream proxy failure for request with headers {{'authorization': '{credential}'}}; "
        f"x-api-key: {bare}; forwarded to https://backend.internal/v1/chat?key={bare}; "
        f"basic {base64.b64encode(bare.encode()).decode()}; key {bare} is not allowed on this route"
    )


class CutStream(Exception):
    """Raised inside an app to make uvicorn drop the connection mid-body."""


class _QuietCut(logging.Filter):
    # uvicorn logs every app exception with a traceback; a deliberate cut is noise.
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], CutStream))


_QUIET_CUT = _QuietCut()


class Running:
    """A uvicorn server on a loopback port, served by its own thread and event loop."""

    def __init__(self, server: uvicorn.Server, port: int):
        self.server = server
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None  # set by stop(): apps end hangs and open streams

    async def _serve(self, sock: socket.socket) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        await self.server.serve(sockets=[sock])

    def call(self, coroutine, timeout: float = 10):
        """Run a coroutine on the server's event loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, timeout: float = 5) -> None:
        try:
            self.loop.call_soon_threadsafe(self.stopping.set)
        except RuntimeError:  # loop already closed
            pass
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)


def serve(app, name: str, **options) -> Running:
    """Serve `app` on 127.0.0.1:<free port> in a daemon thread called `name`; `options` go to uvicorn.Config."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    logging.getLogger("uvicorn.error").addFilter(_QUIET_CUT)  # idempotent
    running = Running(
        uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", **options)), sock.getsockname()[1]
    )
    running.thread = threading.Thread(target=lambda: asyncio.run(running._serve(sock)), name=name, daemon=True)
    running.thread.start()
    deadline = time.monotonic() + 10
    while not running.server.started:
        if not running.thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} failed to start")
        time.sleep(0.005)
    return running


@contextmanager
def served(app, name: str = "test-server", **options) -> Iterator[Running]:
    """`serve`, stopped when the block ends; the Running's base_url is where it answers."""
    running = serve(app, name, **options)
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def running(server):
    """Start `server` (or each value of a dict of them), give it to the block, stop it even if the block failed."""
    servers = list(server.values()) if isinstance(server, dict) else [server]
    started = []
    try:
        for one in servers:
            one.start()
            started.append(one)
        yield server
    finally:
        for one in reversed(started):
            one.stop()


def server_fixture(make: Callable[[], object], scope: str = "module"):
    """A pytest fixture of `make()` (a fake server, or a dict of them) started for the scope. Assign it to the
    fixture's name: ``backup_server = server_fixture(lambda: FakeOpenAI(api_key=None))``."""

    @pytest.fixture(scope=scope)
    def fixture():
        with running(make()) as server:
            yield server

    return fixture


def free_port() -> int:
    """A loopback port free now, for a server in another process (which binds it itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_answers(
    url: str, alive: Callable[[], bool] = lambda: True, timeout: float = 15, what: str = "the server"
) -> None:
    """Until an HTTP request to `url` gets any answer; fails early once `alive()` turns false (the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            if not alive():
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {timeout} s")


async def read_request(scope, receive, sep: str = ", ") -> tuple[bytes | None, dict[str, str]]:
    """The request's whole body (None if the client disconnected first) and its headers:
    names lower-cased, a repeated header's values joined by `sep`."""
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:
        name, value = k.decode("latin-1").lower(), v.decode("latin-1")
        headers[name] = f"{headers[name]}{sep}{value}" if name in headers else value
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, headers
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body, headers


def json_object(body: bytes) -> dict | None:
    """The body parsed as a JSON object, or None (empty, invalid, or not an object)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


async def until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: dict | None
    raw: bytes
    id: str  # also sent back in a response header (x-request-id, request-id…)
    # A multipart/form-data request's fields (name -> values) and file parts (tests.fakes.media.Part).
    form: dict[str, list[str]] = field(default_factory=dict)
    files: list = field(default_factory=list)


class FakeUpstream:
    """A fake provider API: an ASGI app that records what it receives.

    ``start()`` serves it on a loopback port (``base_url``, plus ``base_path``),
    ``stop()`` ends it, ``reset()`` forgets ``requests``. Each HTTP request,
    once read whole, goes to ``handle()``. ``malform``, when set, is applied to each successful answer
    (the whole JSON object, or each stream event's data) before it is sent: a provider that does not
    keep to its own format (tests/test_malformed_answers.py).
    """

    thread_name = "fake-upstream"
    base_path = ""
    header_separator = ", "  # joins a repeated header's values

    def __init__(self):
        self.requests: list = []
        self.base_url = ""
        self._lock = threading.Condition()  # guards requests (and what subclasses record with them)
        self._running: Running | None = None
        self.malform = None  # dict -> dict

    def malformed(self, data: dict) -> dict:
        return self.malform(data) if self.malform is not None else data

    def start(self) -> Self:
        self._running = serve(self, self.thread_name, **FAKE_OPTIONS)
        self.base_url = self._running.base_url + self.base_path
        return self

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # no lifespan/websocket support
            return
        body, headers = await read_request(scope, receive, self.header_separator)
        if body is not None:  # else the client left before it was all sent
            await self.handle(scope, receive, send, body, headers)

    async def handle(self, scope, receive, send, body: bytes, headers: dict[str, str]) -> None:
        raise NotImplementedError

    def _record(self, request) -> None:
        with self._lock:
            self.requests.append(request)

    @property
    def _stopping(self) -> asyncio.Event:
        """Set when stop() begins: handlers end hangs and open streams."""
        return self._running.stopping
