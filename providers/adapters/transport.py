"""Sending a request to a provider: the same for every adapter, so it is written once.

`error_from(status, body, headers, provider)` is the adapter's own reading of a
failed answer; transport failures are mapped by errors.from_transport.
"""

import httpx

from providers.http import client, timeout

from . import errors


async def send(route, url: str, payload: bytes, headers: dict, error_from, *, stream: bool) -> httpx.Response:
    """POST and return the response: read whole, or open for streaming.

    Either way a failure before the first byte of the answer raises UpstreamError.
    """
    http = client()
    request = http.build_request("POST", url, content=payload, headers=headers, timeout=timeout())
    try:
        response = await http.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise errors.from_transport(exc, route.provider_name) from None
    if response.status_code >= 400 or not stream:
        try:
            content = await response.aread()
        except httpx.HTTPError as exc:
            if response.status_code < 400:
                raise errors.from_transport(exc, route.provider_name) from None
            content = b""
        finally:
            await response.aclose()
        if response.status_code >= 400:
            raise error_from(response.status_code, content, response.headers, route.provider_name)
    return response


def max_tokens(route, body: dict) -> int | None:
    """The output cap asked for, never above the model's own."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and route.max_output_tokens:
        limit = min(limit, route.max_output_tokens)
    return limit
