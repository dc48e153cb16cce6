from django.apps import AppConfig
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries


class HubConfig(AppConfig):
    name = "hub"
    verbose_name = "Gateway"

    def ready(self):
        # Imported here, once the app registry is ready: receivers imports the apps' models.
        from . import logging as hub_logging
        from . import receivers

        hub_logging.install()  # every log record scrubbed of secrets, whichever handler writes it
        # Under ASGI a request starts in a fresh context that holds no database
        # connection, so these receivers have nothing to do at request start;
        # being sync, each would cost a new thread per request, held for a
        # stream's whole life. Connections are still closed at request end.
        request_started.disconnect(close_old_connections)
        request_started.disconnect(reset_queries)
        receivers.connect()
