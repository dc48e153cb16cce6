from contextvars import ContextVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.decorators import sync_and_async_middleware

from . import addresses

# The address of the request being served, for audit events written by code
# that has no request at hand (the admin's LogEntry signal).
client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


@sync_and_async_middleware
def AuditContextMiddleware(get_response):
    if iscoroutinefunction(get_response):

        async def async_middleware(request):
            token = client_address.set(addresses.client_address(request) or None)
            try:
                return await get_response(request)
            finally:
                client_address.reset(token)

        return markcoroutinefunction(async_middleware)

    def middleware(request):
        token = client_address.set(addresses.client_address(request) or None)
        try:
            return get_response(request)
        finally:
            client_address.reset(token)

    return middleware
