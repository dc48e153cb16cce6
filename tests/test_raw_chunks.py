"""A stream's raw bytes read from aiohttp directly (providers.adapters.transport.raw_chunks) are what httpx's
aiter_raw gives, with the same errors: a provider that cuts its answer or goes quiet mid-stream still ends in
httpx's exceptions, which the adapters map to the hub's errors."""

import asyncio
import gzip

import httpx
import pytest

from providers import http
from providers.adapters import transport

EVENTS = [b'data: {"n": %d}\n\n' % n for n in range(5)]


def answer(parts: list[bytes], *, end: bool = True, headers: bytes = b"") -> bytes:
    """An HTTP/1.1 200 in chunked encoding: each part a chunk; without `end` the last chunk never comes."""
    out = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n" + headers + b"\r\n"
    out += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + (b"0\r\n\r\n" if end else b"")


async def exchange(reply: bytes, how: str, read, *, stall: float = 0):
    """Serve one answer on loopback (then close, cut the connection, or go quiet) and read it with `read`."""

    async def serve(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
        if how == "stall":
            await asyncio.sleep(stall)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        limits = httpx.Timeout(connect=5, read=0.3, write=5, pool=5)
        response = await transport._post(f"http://127.0.0.1:{port}/v1/x", b"{}", {}, limits)
        try:
            return await read(response)
        finally:
            await response.aclose()
    finally:
        server.close()
        await http.close()


async def direct(response):
    return [chunk async for chunk in transport.raw_chunks(response)]


async def httpx_raw(response):
    return [chunk async for chunk in response.aiter_raw()]


@pytest.mark.parametrize("read", [direct, httpx_raw], ids=["direct", "aiter_raw"])
def test_the_bytes_are_the_answers_as_sent(read):
    chunks = asyncio.run(exchange(answer(EVENTS), "close", read))
    assert b"".join(chunks) == b"".join(EVENTS)


def test_an_encoded_answer_is_passed_raw_as_aiter_raw_passes_it():
    body = gzip.compress(b"".join(EVENTS))
    reply = answer([body[:10], body[10:]], headers=b"content-encoding: gzip\r\n")
    ours, httpxs = (b"".join(asyncio.run(exchange(reply, "close", read))) for read in (direct, httpx_raw))
    assert ours == httpxs == body


@pytest.mark.parametrize("read", [direct, httpx_raw], ids=["direct", "aiter_raw"])
def test_an_answer_cut_mid_stream_raises_httpxs_read_error(read):
    got = []

    async def reading(response):
        async for chunk in transport.raw_chunks(response) if read is direct else response.aiter_raw():
            got.append(chunk)

    with pytest.raises(httpx.ReadError):
        asyncio.run(exchange(answer(EVENTS[:2], end=False), "close", reading))
    assert b"".join(got) == b"".join(EVENTS[:2])  # what arrived before the cut was passed on


@pytest.mark.parametrize("read", [direct, httpx_raw], ids=["direct", "aiter_raw"])
def test_a_provider_quiet_past_the_read_timeout_raises_httpxs_timeout(read):
    with pytest.raises(httpx.TimeoutException):
        asyncio.run(exchange(answer(EVENTS[:1], end=False), "stall", read, stall=3))


def test_a_response_not_opened_by_post_is_read_through_aiter_raw():
    class Response:  # an httpx.Response of another stream (a multipart upload's, a test's)
        async def aiter_raw(self):
            yield b"a"
            yield b"b"

    async def read():
        return [chunk async for chunk in transport.raw_chunks(Response())]

    assert asyncio.run(read()) == [b"a", b"b"]
