from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware


async def _read_in_thread(chunks):
    # A file's chunks are read by blocking calls: keep them off the event loop.
    iterator = iter(chunks)
    read = sync_to_async(lambda: next(iterator, None), thread_sensitive=False)
    while (chunk := await read()) is not None:
        yield chunk


@sync_and_async_middleware
def StaticFilesMiddleware(get_response):
    """WhiteNoise, without its cost on the API path.

    WhiteNoise's middleware is sync-only, so under ASGI Django would run it in
    a thread for every request. Here the file lookup happens inline and only a
    request for a real static file is served (in a thread) by WhiteNoise.
    """
    whitenoise = WhiteNoiseMiddleware(get_response)

    def find(request):
        path = request.path_info
        if whitenoise.autorefresh:
            return whitenoise.find_file(path) if path.startswith(whitenoise.static_prefix) else None
        return whitenoise.files.get(path)

    if iscoroutinefunction(get_response):

        async def async_middleware(request):
            static_file = find(request)
            if static_file is not None:
                response = await sync_to_async(whitenoise.serve)(static_file, request)
                if response.streaming and not response.is_async:
                    response.streaming_content = _read_in_thread(response.streaming_content)
                return response
            return await get_response(request)

        return markcoroutinefunction(async_middleware)

    def middleware(request):
        static_file = find(request)
        return whitenoise.serve(static_file, request) if static_file is not None else get_response(request)

    return middleware
