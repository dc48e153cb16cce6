"""A fast fake OpenAI upstream for the benchmark: a raw asyncio Protocol on uvloop.

Fast on purpose: whatever time it takes is in the "direct" figures too, but the
less it takes the less it competes with the hub for the machine's two cores.
So there is no HTTP framework, the answers are built once at start-up, and the
request parser knows only what aiohttp and httpx send (Content-Length bodies).

    POST /v1/chat/completions   a fixed chat.completion, or with "stream": true
                                OpenAI's SSE framing, one event every --chunk-ms
    GET  /v1/models             a one-model list
    GET  /_stats                counters, so the bench can see what reached it

Every /v1 call must carry `Authorization: Bearer <key>` (401 otherwise): the
bench uses that to prove the hub decrypts and sends the provider credential.

    python bench/fake_upstream.py --key KEY [--port 0] [--chunk-ms 20]

prints {"port": N} on its first line of stdout once it listens.
"""

import argparse
import asyncio
import json
import os
import signal
import sys

import uvloop

CREATED = 1_731_000_000
MODEL = "gpt-4o-mini-2024-07-18"
FINGERPRINT = "fp_0ba0d124f1"
WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " dog."]  # the 8 content chunks
USAGE = {
    "prompt_tokens": 21,
    "completion_tokens": len(WORDS),
    "total_tokens": 21 + len(WORDS),
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _response(status: str, body: bytes, content_type: str = "application/json", close: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
        f"openai-processing-ms: 0\r\nconnection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode() + body


def _error(status: str, message: str, type_: str, code) -> bytes:
    return _response(status, _dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}))


COMPLETION = _dumps(
    {
        "id": "chatcmpl-BenchFakeUpstream000000000001",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(WORDS), "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
)
OK_COMPLETION = _response("200 OK", COMPLETION)
MODELS = _response(
    "200 OK",
    _dumps(
        {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "created": CREATED, "owned_by": "system"}]}
    ),
)
UNAUTHORIZED = _error("401 Unauthorized", "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
NOT_FOUND = _error("404 Not Found", "Unknown request URL.", "invalid_request_error", "unknown_url")
BAD_JSON = _error("400 Bad Request", "We could not parse the JSON body of your request.", "invalid_request_error", None)
STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
    b"transfer-encoding: chunked\r\ncache-control: no-cache\r\nconnection: keep-alive\r\n\r\n"
)


def _stream_events(include_usage: bool) -> list[bytes]:
    """Each event as one HTTP chunk, in OpenAI's order; the last one also ends the body."""

    def chunk(choices, usage=False):
        event = {
            "id": "chatcmpl-BenchFakeUpstream000000000002",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        }
        if include_usage:  # as OpenAI does: every chunk has "usage", null but in the last
            event["usage"] = USAGE if usage else None
        return b"data: " + _dumps(event) + b"\n\n"

    def choice(delta, finish=None):
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    events = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    events += [chunk(choice({"content": word})) for word in WORDS]
    events.append(chunk(choice({}, "stop")))
    if include_usage:
        events.append(chunk([], usage=True))
    events.append(b"data: [DONE]\n\n")
    framed = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
    framed[-1] += b"0\r\n\r\n"
    return framed


STREAM = {True: _stream_events(True), False: _stream_events(False)}
STATS = {"chat": 0, "stream": 0, "unauthorized": 0, "connections": 0}


class Upstream(asyncio.Protocol):
    key = b""
    chunk_seconds = 0.02

    def connection_made(self, transport):
        STATS["connections"] += 1
        self.transport = transport
        self.buffer = bytearray()
        self.busy = False  # a stream is being written: hold later requests on this connection

    def connection_lost(self, exc):
        self.transport = None

    def data_received(self, data):
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        while not self.busy and self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > 65536:
                    self.transport.close()
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            try:
                method, target, _ = head[0].split(" ", 2)
            except ValueError:
                self.transport.close()
                return
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self.transport.write(_response("411 Length Required", b"{}", close=True))
                self.transport.close()
                return
            length = int(headers.get("content-length") or 0)
            if len(self.buffer) < end + 4 + length:
                return  # wait for the rest of the body
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._handle(method, target.split("?", 1)[0], headers, body)
            if headers.get("connection", "").lower() == "close" and not self.busy and self.transport is not None:
                self.transport.close()

    def _handle(self, method: str, path: str, headers: dict, body: bytes) -> None:
        write = self.transport.write
        if path == "/_stats":
            write(_response("200 OK", _dumps(STATS)))
            return
        if not path.startswith("/v1/"):
            write(NOT_FOUND)
            return
        if headers.get("authorization", "").encode() != self.key:
            STATS["unauthorized"] += 1
            write(UNAUTHORIZED)
            return
        if method == "GET" and path == "/v1/models":
            write(MODELS)
            return
        if method != "POST" or path != "/v1/chat/completions":
            write(NOT_FOUND)
            return
        try:
            request = json.loads(body)
        except ValueError:
            write(BAD_JSON)
            return
        if not isinstance(request, dict) or request.get("stream") is not True:
            STATS["chat"] += 1
            write(OK_COMPLETION)
            return
        STATS["stream"] += 1
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        events = STREAM[include_usage]
        self.busy = True
        write(STREAM_HEAD + events[0])  # headers and the role chunk at once, as OpenAI does
        asyncio.get_running_loop().call_later(self.chunk_seconds, self._stream, events, 1)

    def _stream(self, events: list[bytes], i: int) -> None:
        if self.transport is None:
            return  # the client went away
        self.transport.write(events[i])
        if i + 1 < len(events):
            asyncio.get_running_loop().call_later(self.chunk_seconds, self._stream, events, i + 1)
        else:
            self.busy = False
            self._next()


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, host, port, backlog=4096, reuse_address=True)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--key", default=os.environ.get("BENCH_UPSTREAM_KEY", ""))
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="gap between stream events after the first")
    args = parser.parse_args()
    if not args.key:
        sys.exit("fake_upstream: give --key or set BENCH_UPSTREAM_KEY")
    Upstream.key = f"Bearer {args.key}".encode()
    Upstream.chunk_seconds = args.chunk_ms / 1000
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
