"""ASGI entry point.

Two Django handlers share one process: the API paths get a handler whose
middleware stack is its own setting (HUB_GATEWAY_MIDDLEWARE, empty: no browser
middleware), everything else (admin, pages) the full stack (MIDDLEWARE). Django runs
sync-only middleware in a thread under ASGI, and that hand-off cost more than the whole
relay (measured in bench/).

Django does not speak the ASGI lifespan protocol: it is answered here, and on
shutdown the usage buffer is drained and the upstream pool closed, so a
graceful restart loses no usage record.
"""

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import cast

import django
from django.conf import settings
from django.core import signals
from django.core.exceptions import ImproperlyConfigured, MiddlewareNotUsed, RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.urls import get_resolver, set_script_prefix
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
django.setup(set_prefix=False)


class BodyTooLarge(Exception):
    pass


class GatewayHandler(ASGIHandler):
    # Django's BaseHandler keeps these privately (its stubs leave them out); load_middleware fills them as its does.
    _view_middleware: list[Callable]
    _template_response_middleware: list[Callable]
    _exception_middleware: list[Callable]
    _get_response_async: Callable[[HttpRequest], Awaitable[HttpResponseBase]]

    async def __call__(self, scope, receive, send):
        # Django wraps each request in a ThreadSensitiveContext, which starts
        # (and joins) a thread per request for its sync steps. The gateway's
        # only sync step is closing the response, so it runs on asgiref's one
        # shared thread instead: that thread start cost ~40% of the CPU.
        length = dict(scope.get("headers") or ()).get(b"content-length", b"0")
        if length.isdigit() and int(length) > settings.HUB_MAX_BODY_BYTES:
            return await _too_large(scope, send)  # refused before a byte of it is read
        try:
            async with http.setup_slot():
                await self.handle(scope, receive, send)
        except BodyTooLarge:
            await _too_large(scope, send)

    async def handle(self, scope, receive, send):
        """Django's ASGIHandler.handle (5.2), but for closing the response on the loop.

        Django closes it with sync_to_async: a thread hop per request (measured: about 3% of a busy
        worker's CPU, and a GIL hand-over each time). Closing runs request_finished's receivers,
        close_old_connections, close_caches and reset_urlconf: on the loop thread, which never opens a
        database connection (the gateway's are on hub.db's threads) and whose caches' close does nothing,
        they have nothing to do that blocks.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        await signals.request_started.asend(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            body_file.close()
            await self.send_response(error_response, send)
            cast(HttpResponseBase, error_response).close()
            return

        async def process_request(request, send):
            response = await self.run_get_response(request)
            with contextlib.suppress(asyncio.CancelledError):  # the client left while it was sent
                await self.send_response(response, send)
            return response

        # As Django: a disconnect while the response is made cancels it (the views handle cancellation).
        tasks = [
            asyncio.create_task(self.listen_for_disconnect(receive)),
            asyncio.create_task(process_request(request, send)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                try:
                    task.result()
                except RequestAborted:
                    pass
                except AssertionError:
                    body_file.close()
                    raise
            else:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        try:
            response = tasks[1].result()
        except asyncio.CancelledError:
            await signals.request_finished.asend(sender=self.__class__)
        else:
            response.close()
        body_file.close()

    async def send_response(self, response, send):
        """Django's, but an async stream's parts go to the server as they come: Django passes each through
        two generators of its own (__aiter__ and streaming_content's make_bytes) and cuts it into 64 KB
        messages. For relayed SSE events (bytes, a few hundred each) that was about a third of the time
        spent sending them (py-spy on 500 streams: 7% of the samples, beside uvicorn's own 14%)."""
        parts = getattr(response, "_iterator", None)  # the stream's own iterator (StreamingHttpResponse)
        if not (response.streaming and response.is_async and parts is not None):
            return await super().send_response(response, send)
        headers = [
            (k.encode("ascii") if isinstance(k, str) else k, v.encode("latin1") if isinstance(v, str) else v)
            for k, v in response.items()
        ]
        headers += [(b"Set-Cookie", c.output(header="").encode("ascii").strip()) for c in response.cookies.values()]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        async with contextlib.aclosing(parts) as content:
            async for part in content:
                body = part if type(part) is bytes else response.make_bytes(part)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body"})

    def resolve_request(self, request):
        """Django's, but a path without converters (/v1/chat/completions) is resolved once per URLconf: the
        same regexes on the same path, every request, were about 3% of a worker's CPU."""
        if hasattr(request, "urlconf"):
            return super().resolve_request(request)
        key = (get_resolver(), request.path_info)  # a changed ROOT_URLCONF is a new resolver
        match = _resolved.get(key)
        if match is None:
            match = super().resolve_request(request)
            if "<" not in match.route and len(_resolved) < 256:  # a fixed path: one of the API's few
                _resolved[key] = match
        request.resolver_match = match
        return match

    async def read_body(self, receive):
        # Django spools any body to disk; a chunked upload without a length
        # is cut off at the limit instead.
        return await super().read_body(_counting(receive))

    def load_middleware(self, is_async=False):
        """The chain of HUB_GATEWAY_MIDDLEWARE, built here: the site's MIDDLEWARE is neither read nor swapped.

        Django's own loader reads settings.MIDDLEWARE only, so this does what it
        does for the async-capable middleware the gateway allows: a sync-only
        one would cost a thread hop per request, and is refused at start.
        """
        if not is_async:
            raise ImproperlyConfigured("the gateway handler runs under ASGI only")
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response_async)
        for path in reversed(settings.HUB_GATEWAY_MIDDLEWARE):
            factory = import_string(path)
            if not getattr(factory, "async_capable", False):
                raise ImproperlyConfigured(f"HUB_GATEWAY_MIDDLEWARE: {path} is not async-capable")
            try:
                middleware = factory(handler)
            except MiddlewareNotUsed:
                continue
            if hasattr(middleware, "process_view"):
                self._view_middleware.insert(0, self.adapt_method_mode(True, middleware.process_view))
            if hasattr(middleware, "process_template_response"):
                self._template_response_middleware.append(
                    self.adapt_method_mode(True, middleware.process_template_response)
                )
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(self.adapt_method_mode(False, middleware.process_exception))
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler


_resolved: dict = {}  # (resolver, path) -> its ResolverMatch, for the gateway's fixed paths


def _counting(receive):
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > settings.HUB_MAX_BODY_BYTES:
            raise BodyTooLarge
        return message

    return counted


async def _too_large(scope, send) -> None:
    from hub.views import refuse_too_large

    status, headers, body = await refuse_too_large(scope)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


from hub import health  # noqa: E402 - after django.setup(): it reads the cache and the Celery app
from providers import http  # noqa: E402

site_app = ASGIHandler()
gateway_app = GatewayHandler()
_prefixes = tuple(settings.GATEWAY_PATH_PREFIXES)


async def application(scope, receive, send):
    if scope["type"] == "http":
        if scope["path"] in health.PATHS:
            return await health.app(scope, receive, send)
        app = gateway_app if scope["path"].startswith(_prefixes) else site_app
        return await app(scope, receive, send)
    if scope["type"] == "lifespan":
        from hub import lifecycle

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                lifecycle.tune_gc()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await lifecycle.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
    raise ValueError(f"the hub serves HTTP only, not {scope['type']}")
