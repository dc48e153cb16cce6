"""ASGI entry point: Django plus the lifespan hooks it does not provide itself.

On shutdown the usage buffer is flushed and the upstream connection pool
closed, so a graceful restart loses no usage record.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

django_app = get_asgi_application()


async def application(scope, receive, send):
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
    await django_app(scope, receive, send)
