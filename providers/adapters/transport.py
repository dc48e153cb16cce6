"""Sending a request to a provider: the same for every adapter, so it is written once.

`error_from(status, body, headers, provider)` is the adapter's own reading of a
failed answer; transport failures are mapped by errors.from_transport.
"""

import asyncio
from collections.abc import AsyncIterator

import httpx
from django.conf import settings
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from providers.http import aiohttp_timeout, client, default_headers, session, setup_done, timeouts

from . import errors
from .base import UpstreamError
from .translate import MALFORMED


async def send(
    route,
    url: str,
    payload: bytes | None,
    headers: dict,
    error_from,
    *,
    stream: bool,
    form: dict | None = None,
    files: list | None = None,
) -> httpx.Response:
    """POST and return the response: read whole, or open for streaming.

    Either way a failure before the first byte of the answer raises UpstreamError.
    A stream must start within the first-byte timeout; a whole answer, which
    most APIs send only once it is complete, has the idle timeout. With
    `files` ([(field, (filename, bytes, content type))]) the body is
    multipart/form-data of `form` and the files instead of `payload`.
    """
    timeout, first_byte = timeouts(route)
    setup_done()
    try:
        async with asyncio.timeout(first_byte if stream else None):
            if files is not None:
                http = client()
                headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}  # httpx sets the boundary
                request = http.build_request("POST", url, data=form, files=files, headers=headers, timeout=timeout)
                response = await http.send(request, stream=True)
            else:
                response = await _post(url, payload, headers, timeout)
    except TimeoutError:
        raise UpstreamError(
            f"The provider '{route.provider_name}' did not start its answer in time.",
            status=504,
            code="upstream_timeout",
            retryable=True,
        ) from None
    except httpx.HTTPError as exc:
        raise errors.from_transport(exc, route.provider_name) from None
    if response.status_code >= 400 or not stream:
        try:
            content = await read(response, route.provider_name, failed=response.status_code >= 400)
            response._content = content  # what aread() sets: the adapters read response.content
        except httpx.HTTPError as exc:
            if response.status_code < 400:
                raise errors.from_transport(exc, route.provider_name) from None
            content = b""
        finally:
            await response.aclose()
        if response.status_code >= 400:
            # The one way a provider's failed answer becomes the hub's error: whatever it
            # quoted of the credential it was sent with goes no further.
            try:
                failure = error_from(response.status_code, content, response.headers, route.provider_name)
            except MALFORMED:  # a body the adapter cannot read (nested past the parser): judged by its status
                failure = errors.from_status(response.status_code, b"", response.headers, route.provider_name)
            raise failure.without(route.secret)
    return response


async def _post(url: str, payload: bytes | None, headers: dict, limits: httpx.Timeout) -> httpx.Response:
    """What client().send(client().build_request(...), stream=True) does, on the same pool, with the same
    headers, timeouts and errors (httpx's, mapped from aiohttp's as httpx_aiohttp maps them), without
    httpx's client layers: they cost more CPU per request than aiohttp's own work (bench/)."""
    sent = default_headers().copy()
    for name, value in headers.items():
        sent[name.lower()] = value
    with map_aiohttp_exceptions():
        answer = await session()._request(
            "POST",
            url,
            data=payload or None,
            headers=sent,
            allow_redirects=False,
            auto_decompress=False,  # httpx decodes, within the hub's bounds (read below)
            compress=False,
            timeout=aiohttp_timeout(limits.connect, limits.read, limits.pool),
        )
    extensions = {"http_version": b"HTTP/1.1"}
    if answer.reason:
        extensions["reason_phrase"] = answer.reason.encode()
    return httpx.Response(
        answer.status, headers=answer.raw_headers, stream=AiohttpResponseStream(answer), extensions=extensions
    )


async def raw_chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive, not decoded: what response.aiter_raw() gives, with the same errors
    (httpx's, mapped from aiohttp's as httpx_aiohttp maps them). An answer _post opened is read from aiohttp's
    stream directly: aiter_raw passed each read through three generators (httpx's, httpx_aiohttp's and
    aiohttp's chunk iterator), for every relayed event (500-stream bench, median of 8 rounds: 1.88 → 1.75 ms of
    CPU a stream)."""
    stream = getattr(response, "stream", None)
    if type(stream) is not AiohttpResponseStream:
        async for chunk in response.aiter_raw():
            yield chunk
        return
    content = stream._aiohttp_response.content
    with map_aiohttp_exceptions():
        while chunk := await content.readany():
            yield chunk


ERROR_BODY_BYTES = 65536  # of a failed answer: its message is in the first few hundred


async def read(response: httpx.Response, provider: str, *, failed: bool = False) -> bytes:
    """The whole body, decoded, at most HUB_UPSTREAM_MAX_BODY_BYTES (a failed answer's first 64 KiB): a provider
    that sends a gigabyte, or a small gzip that inflates to one, is refused, not held in memory."""
    limit = ERROR_BODY_BYTES if failed else settings.HUB_UPSTREAM_MAX_BODY_BYTES
    parts, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            if failed:
                parts.append(chunk[: limit - size + len(chunk)])
                break
            raise too_large(provider, limit)
        parts.append(chunk)
    return b"".join(parts)


def too_large(provider: str, limit: int, what: str = "an answer") -> UpstreamError:
    return UpstreamError(
        f"The provider '{provider}' sent {what} larger than the hub accepts ({limit} bytes).",
        code="upstream_response_too_large",
    )


def one_choice(route, body: dict, how: str = "") -> None:
    """Refuse `n` above 1 where the API answers one choice: silently answering one would be billed as asked."""
    if (body.get("n") or 1) > 1:
        raise UpstreamError(
            f"The provider '{route.provider_name}' answers one choice per request{how}: "
            f"set `n` to 1, or send {body['n']} requests.",
            status=400,
            type="invalid_request_error",
            code="unsupported_parameter",
            param="n",
        )


def max_tokens(route, body: dict) -> int | None:
    """The output cap asked for, never above the model's own."""
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and route.max_output_tokens:
        limit = min(limit, route.max_output_tokens)
    return limit
