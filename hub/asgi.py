"""ASGI entry point.

Two Django handlers share one process: the API paths get a handler with no
browser middleware (GATEWAY_MIDDLEWARE), everything else (admin, pages) the
full stack. Django runs sync-only middleware in a thread under ASGI, and that
hand-off cost more than the whole relay (measured in bench/).

Django does not speak the ASGI lifespan protocol: it is answered here, and on
shutdown the usage buffer is drained and the upstream pool closed, so a
graceful restart loses no usage record.
"""

import os

import django
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
django.setup(set_prefix=False)


class GatewayHandler(ASGIHandler):
    async def __call__(self, scope, receive, send):
        # Django wraps each request in a ThreadSensitiveContext, which starts
        # (and joins) a thread per request for its sync steps. The gateway's
        # only sync step is closing the response, so it runs on asgiref's one
        # shared thread instead: that thread start cost ~40% of the CPU.
        await self.handle(scope, receive, send)

    def load_middleware(self, is_async=False):
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.GATEWAY_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


site_app = ASGIHandler()
gateway_app = GatewayHandler()
_prefixes = tuple(settings.GATEWAY_PATH_PREFIXES)


async def application(scope, receive, send):
    if scope["type"] == "http":
        app = gateway_app if scope["path"].startswith(_prefixes) else site_app
        return await app(scope, receive, send)
    if scope["type"] == "lifespan":
        from hub import lifecycle

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await lifecycle.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
    raise ValueError(f"the hub serves HTTP only, not {scope['type']}")
