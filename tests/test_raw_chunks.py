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


async def exchange(reply: bytes, read, *, stall: float = 0):
    """Serve one answer on loopback (going quiet for `stall` seconds first, if set), close the connection, and
    read the answer with `read`."""

    async def serve(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(reply)
        await writer.drain()
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


# The two readers compared: the hub's, and httpx's own.
READERS = pytest.mark.parametrize(
    "chunks_of", [transport.raw_chunks, httpx.Response.aiter_raw], ids=["direct", "aiter_raw"]
)


def into(got: list, chunks_of):
    """A `read` that keeps each chunk in `got` as it comes (what arrived before a failure stays there)."""

    async def read(response):
        async for chunk in chunks_of(response):
            got.append(chunk)

    return read


@READERS
def test_the_bytes_are_the_answers_as_sent(chunks_of):
    got: list[bytes] = []
    asyncio.run(exchange(answer(EVENTS), into(got, chunks_of)))
    assert b"".join(got) == b"".join(EVENTS)


def test_an_encoded_answer_is_passed_raw_as_aiter_raw_passes_it():
    body = gzip.compress(b"".join(EVENTS))
    reply = answer([body[:10], body[10:]], headers=b"content-encoding: gzip\r\n")
    ours: list[bytes] = []
    httpxs: list[bytes] = []
    asyncio.run(exchange(reply, into(ours, transport.raw_chunks)))
    asyncio.run(exchange(reply, into(httpxs, httpx.Response.aiter_raw)))
    assert b"".join(ours) == b"".join(httpxs) == body


@READERS
def test_an_answer_cut_mid_stream_raises_httpxs_read_error(chunks_of):
    got: list[bytes] = []
    with pytest.raises(httpx.ReadError):
        asyncio.run(exchange(answer(EVENTS[:2], end=False), into(got, chunks_of)))
    assert b"".join(got) == b"".join(EVENTS[:2])  # what arrived before the cut was passed on


@READERS
def test_a_provider_quiet_past_the_read_timeout_raises_httpxs_timeout(chunks_of):
    with pytest.raises(httpx.TimeoutException):
        asyncio.run(exchange(answer(EVENTS[:1], end=False), into([], chunks_of), stall=3))


def test_a_response_not_opened_by_post_is_read_through_aiter_raw():
    class Response:  # an httpx.Response of another stream (a multipart upload's, a test's)
        async def aiter_raw(self):
            yield b"a"
            yield b"b"

    async def read():
        return [chunk async for chunk in transport.raw_chunks(Response())]

    assert asyncio.run(read()) == [b"a", b"b"]
