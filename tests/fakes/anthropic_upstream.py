"""A fake Anthropic Messages API (POST /v1/messages) for tests, in Anthropic's wire format.

Raw ASGI app served by uvicorn on 127.0.0.1:<ephemeral port> in a daemon
thread, like tests/fakes/openai_upstream.py. ``base_url`` has no /v1 (the
official SDK appends /v1/messages itself)::

    fake = FakeAnthropic().start()
    client = anthropic.Anthropic(base_url=fake.base_url, api_key=fake.api_key)

Replies follow the conformance contract of tests/conformance/cases.py. Besides
its error kinds, ``error:stream_overloaded`` sends an ``error`` event mid-stream
(Anthropic's overloaded_error) and ``error:cut`` drops the connection mid-stream.
(Without streaming, both answer 529 overloaded.) POST /v1/messages/count_tokens answers the input count
an answer would report (without the cache's). ``echo:<status>`` and ``echo:stream``
quote the x-api-key back in an error (tests/fakes/server.py ``echo_of``). Usage reports cache reads (3)
and writes (2) on top of the contract's input count.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import itertools
import json
import re
import secrets
import urllib.request

from tests.fakes.server import CutStream, FakeUpstream, RecordedRequest, echo_message, echo_of, json_object

API_KEY = "sk-ant-api03-fake-upstream-key"
CACHE_READ, CACHE_WRITE = 3, 2
# anthropic-version values accepted: the API's dated versions, and the one the official SDK 2.x sends.
VERSIONS = ("2023-01-01", "2023-06-01", "2026-10-21")
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
# Top-level fields of POST /v1/messages; Anthropic refuses any other ("Extra inputs are not permitted").
FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "output_config",
    "container",
    "mcp_servers",
    "context_management",
    "inference_geo",
    "speed",
}
# How Anthropic streams tool input: partial_json fragments, the first one empty.
TOOL_INPUT_PIECES = {"Paris": ["", '{"city', '": "Par', 'is"}'], "London": ["", '{"ci', 'ty": "Lon', 'don"}']}


class _Invalid(Exception):
    """A 400 invalid_request_error with Anthropic's wording."""


def error_body(kind: str, message: str, request_id: str) -> dict:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}


# error:<kind> -> (status, error type, message, extra headers), as Anthropic answers them.
ERRORS = {
    "auth": (401, "authentication_error", "invalid x-api-key", []),
    "rate_limit": (
        429,
        "rate_limit_error",
        (
            "This request would exceed the rate limit for your organization of 50 requests per minute. "
            "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response "
            "headers for current usage. Please reduce the prompt length or the maximum tokens requested, "
            "or try again later."
        ),
        [
            (b"retry-after", b"7"),
            (b"anthropic-ratelimit-requests-limit", b"50"),
            (b"anthropic-ratelimit-requests-remaining", b"0"),
        ],
    ),
    "overloaded": (529, "overloaded_error", "Overloaded", []),
    "context_length": (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum", []),
    "content_policy": (400, "invalid_request_error", "Output blocked by content filtering policy", []),
    "server": (500, "api_error", "Internal server error", []),
}


def _blocks(content) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return content if isinstance(content, list) else []


def _result_text(content) -> str:
    return " ".join(b.get("text", "") for b in _blocks(content) if isinstance(b, dict) and b.get("type") == "text")


def _words_of(req: dict) -> int:
    system = req.get("system")
    text = system if isinstance(system, str) else _result_text(system)
    count = len(text.split())
    for message in req["messages"]:
        for block in _blocks(message.get("content")):
            if block.get("type") == "text":
                count += len(block.get("text", "").split())
            elif block.get("type") == "tool_result":
                count += len(_result_text(block.get("content")).split())
    return count + 3 * len(req["messages"])


def _pieces(text: str) -> list[str]:
    """Word-by-word stream pieces (later words with their leading space) that join back to `text`."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if pieces and tail:
        pieces[-1] += tail
    return pieces


def _check(req: dict) -> None:
    """The validation errors Anthropic would answer for a malformed request."""
    for name in ("model", "messages", "max_tokens"):
        if name not in req:
            raise _Invalid(f"{name}: Field required")
    for name in req:
        if name not in FIELDS:
            raise _Invalid(f"{name}: Extra inputs are not permitted")
    if not isinstance(req["max_tokens"], int) or req["max_tokens"] < 1:
        raise _Invalid("max_tokens: Input should be greater than or equal to 1")
    if not isinstance(req["messages"], list) or not req["messages"]:
        raise _Invalid("messages: at least one message is required")
    system = req.get("system")
    if system is not None and not isinstance(system, (str, list)):
        raise _Invalid("system: Input should be a valid string")
    previous_tool_ids: set = set()
    for i, message in enumerate(req["messages"]):
        role = message.get("role")
        if role == "system":
            raise _Invalid(
                f'messages.{i}.role: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise _Invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        tool_ids = set()
        for j, block in enumerate(_blocks(message.get("content"))):
            kind = block.get("type")
            where = f"messages.{i}.content.{j}"
            if kind == "text" and not block.get("text"):
                raise _Invalid("messages: text content blocks must be non-empty")
            if kind == "image":
                source = block.get("source") or {}
                if source.get("type") == "base64":
                    if source.get("media_type") not in IMAGE_TYPES:
                        raise _Invalid(
                            f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
                            "'image/png', 'image/gif' or 'image/webp'"
                        )
                    try:
                        base64.b64decode(source.get("data", ""), validate=True)
                    except (binascii.Error, ValueError):
                        raise _Invalid(f"{where}.image.source.base64: invalid base64 data") from None
                elif source.get("type") != "url" or not str(source.get("url", "")).startswith(("http://", "https://")):
                    raise _Invalid(
                        f"{where}.image.source: Input tag '{source.get('type')}' found using 'type' "
                        "does not match any of the expected tags: 'base64', 'url', 'file'"
                    )
            if kind == "tool_use":
                if role != "assistant" or not isinstance(block.get("input"), dict):
                    raise _Invalid(f"{where}: tool_use blocks must be in assistant messages, with an object input")
                tool_ids.add(block.get("id"))
            if kind == "tool_result" and block.get("tool_use_id") not in previous_tool_ids:
                raise _Invalid(
                    f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        previous_tool_ids = tool_ids
    for i, tool in enumerate(req.get("tools") or []):
        if not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
            raise _Invalid(f"tools.{i}: name and input_schema are required")
    if req.get("tool_choice") and not req.get("tools") and (req["tool_choice"].get("type") in ("any", "tool")):
        raise _Invalid("tool_choice may only be specified while providing tools.")
    if "temperature" in req and not 0 <= req["temperature"] <= 1:
        raise _Invalid("temperature: range: 0..1")


class FakeAnthropic(FakeUpstream):
    thread_name = "fake-anthropic"
    requests: list[RecordedRequest]

    def __init__(self, api_key: str = API_KEY, versions=VERSIONS):
        super().__init__()
        self.api_key = api_key
        self.versions = set(versions)
        self._ids = itertools.count(1)
        self.usage_override: dict = {}  # merged into every answer's usage, to play a provider that miscounts

    # ----------------------------------------------------------- ASGI entry
    async def handle(self, scope, receive, send, body, headers) -> None:
        parsed = json_object(body)
        rid = f"req_{next(self._ids):04d}{secrets.token_hex(8)}"  # also the request-id response header
        self._record(RecordedRequest(scope["method"], scope["path"], headers, parsed, body, rid))
        reply = Reply(self, send, rid, headers.get("x-api-key") or headers.get("authorization", ""))
        if scope["method"] != "POST" or scope["path"] not in ("/v1/messages", "/v1/messages/count_tokens"):
            return await reply.error(404, "not_found_error", "Not Found")
        # The key comes as x-api-key (the documented header, the hub's) or as a
        # bearer token (what the official SDK sends since its 2.x releases).
        key = headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ") or None
        if key is None:
            return await reply.error(401, "authentication_error", "x-api-key header is required")
        if key != self.api_key:
            return await reply.error(401, "authentication_error", "invalid x-api-key")
        if headers.get("anthropic-version") not in self.versions:
            message = (
                "anthropic-version: header is required"
                if "anthropic-version" not in headers
                else f"anthropic-version: invalid version {headers['anthropic-version']!r}"
            )
            return await reply.error(400, "invalid_request_error", message)
        if not isinstance(parsed, dict):
            return await reply.error(
                400, "invalid_request_error", "There was an error parsing the body of your request. Is it valid JSON?"
            )
        if scope["path"] == "/v1/messages/count_tokens":
            return await reply.count(parsed)
        try:
            _check(parsed)
            await self._fetch_images(parsed)
        except _Invalid as exc:
            return await reply.error(400, "invalid_request_error", str(exc))
        await reply.answer(parsed)

    @staticmethod
    async def _fetch_images(req: dict) -> None:
        # Anthropic downloads url image sources itself; so does the fake, to prove the URL is real.
        for message in req["messages"]:
            for block in _blocks(message.get("content")):
                source = block.get("source") or {}
                if block.get("type") == "image" and source.get("type") == "url":
                    try:
                        data = await asyncio.to_thread(lambda: urllib.request.urlopen(source["url"], timeout=5).read())
                    except OSError:
                        data = b""
                    if not data:
                        raise _Invalid("Unable to download the file. Please verify the URL and try again.")


class Reply:
    """One answer: an error body, a Message, or its event stream."""

    def __init__(self, fake: FakeAnthropic, send, rid: str, key: str = ""):
        self.fake, self.send, self.rid, self.key = fake, send, rid, key  # key: what echo mode quotes

    async def _respond(self, status: int, body: bytes, ctype: bytes, extra=()) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", ctype),
                    (b"content-length", str(len(body)).encode()),
                    (b"request-id", self.rid.encode()),
                    (b"anthropic-organization-id", b"fake-org"),
                    *extra,
                ],
            }
        )
        await self.send({"type": "http.response.body", "body": body})

    async def error(self, status: int, kind: str, message: str, extra=()) -> None:
        body = json.dumps(error_body(kind, message, self.rid)).encode()
        await self._respond(status, body, b"application/json", extra)

    async def count(self, req: dict) -> None:
        """POST /v1/messages/count_tokens: the input count of an answer (no max_tokens, none of its fields)."""
        extra = [
            name for name in req if name not in ("model", "messages", "system", "tools", "tool_choice", "thinking")
        ]
        if extra:
            return await self.error(400, "invalid_request_error", f"{extra[0]}: Extra inputs are not permitted")
        if not isinstance(req.get("messages"), list) or not req["messages"]:
            return await self.error(400, "invalid_request_error", "messages: Field required")
        body = json.dumps({"input_tokens": _words_of(req)}).encode()
        await self._respond(200, body, b"application/json")

    async def answer(self, req: dict) -> None:
        last = _blocks(req["messages"][-1].get("content"))
        text = " ".join(b["text"] for b in last if b.get("type") == "text")
        stream = bool(req.get("stream"))
        echo = echo_of(text)
        if echo is not None and (echo != "stream" or not stream):
            status = int(echo) if echo.isdigit() else 500
            kinds = {
                400: "invalid_request_error",
                404: "not_found_error",
                429: "rate_limit_error",
                503: "overloaded_error",
            }
            return await self.error(status, kinds.get(status, "api_error"), echo_message(self.key))
        if text.startswith("error:"):
            kind = text.removeprefix("error:").split()[0] if text.strip() != "error:" else ""
            if kind in ERRORS:
                status, etype, message, extra = ERRORS[kind]
                return await self.error(status, etype, message, extra)
            if not stream:
                return await self.error(529, "overloaded_error", "Overloaded")
        results = [b for b in last if b.get("type") == "tool_result"]
        tool_choice = (req.get("tool_choice") or {}).get("type")
        calls, reply = [], ""
        if results:
            reply = " ".join(f"Tool said: {_result_text(b.get('content'))}" for b in results)
        elif req.get("tools") and tool_choice != "none":
            name = req["tools"][0]["name"]
            cities = ["Paris", "London"] if "parallel" in text else ["Paris"]
            if (req.get("tool_choice") or {}).get("disable_parallel_tool_use"):
                cities = cities[:1]
            calls = [(f"toolu_01{secrets.token_hex(11)}", name, city) for city in cities]
        elif "JSON" in json.dumps(req.get("system") or "") or req.get("output_config", {}).get("format"):
            reply = '{"answer": 42}'
        else:
            images = sum(1 for b in last if b.get("type") == "image")
            reply = f"Hello! You said: {text}" + " [image]" * images
        stop_reason, stop_sequence = ("tool_use" if calls else "end_turn"), None
        if not calls:
            found = [(reply.find(s), s) for s in req.get("stop_sequences") or [] if s in reply]
            if found:
                position, stop_sequence = min(found)
                reply, stop_reason = reply[:position], "stop_sequence"
            words = _pieces(reply)
            if len(words) > req["max_tokens"]:
                words, stop_reason, stop_sequence = words[: req["max_tokens"]], "max_tokens", None
                reply = "".join(words)
        input_tokens = _words_of(req)
        output_tokens = 5 * len(calls) if calls else len(_pieces(reply))
        usage = {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": CACHE_WRITE,
            "cache_read_input_tokens": CACHE_READ,
            "cache_creation": {"ephemeral_5m_input_tokens": CACHE_WRITE, "ephemeral_1h_input_tokens": 0},
            "output_tokens": output_tokens,
            "service_tier": "standard",
            **self.fake.usage_override,
        }
        message = {
            "id": f"msg_01{secrets.token_hex(11)}",
            "type": "message",
            "role": "assistant",
            "model": req["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        if calls:
            content = [{"type": "tool_use", "id": i, "name": n, "input": {"city": c}} for i, n, c in calls]
        else:
            content = [{"type": "text", "text": reply}]
        if not stream:
            body = dict(message, content=content, stop_reason=stop_reason, stop_sequence=stop_sequence)
            return await self._respond(200, json.dumps(self.fake.malformed(body)).encode(), b"application/json")
        await self._stream(message, calls, reply, stop_reason, stop_sequence, text)

    async def _stream(self, message, calls, reply, stop_reason, stop_sequence, text) -> None:
        def event(name: str, data: dict) -> bytes:
            return f"event: {name}\ndata: {json.dumps(self.fake.malformed(data))}\n\n".encode()

        start_usage = dict(message["usage"], output_tokens=1)
        events = [event("message_start", {"type": "message_start", "message": dict(message, usage=start_usage)})]
        if calls:
            for index, (call_id, name, city) in enumerate(calls):
                events.append(
                    event(
                        "content_block_start",
                        {
                            "type": "content_block_start",
                            "index": index,
                            "content_block": {"type": "tool_use", "id": call_id, "name": name, "input": {}},
                        },
                    )
                )
                if index == 0:
                    events.append(event("ping", {"type": "ping"}))
                events += [
                    event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
                    for piece in TOOL_INPUT_PIECES[city]
                ]
                events.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
        else:
            events.append(
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                )
            )
            events.append(event("ping", {"type": "ping"}))
            events += [
                event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                )
                for piece in _pieces(reply)
            ]
            events.append(event("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                    "usage": {"output_tokens": message["usage"]["output_tokens"]},
                },
            )
        )
        events.append(event("message_stop", {"type": "message_stop"}))
        cut = False
        if text.startswith("error:stream_overloaded"):
            events = [
                *events[:5],
                event(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                        "request_id": self.rid,
                    },
                ),
            ]
        elif text.startswith("echo:stream"):
            events = [
                *events[:5],
                event(
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "api_error", "message": echo_message(self.key)},
                        "request_id": self.rid,
                    },
                ),
            ]
        elif text.startswith("error:cut"):
            events, cut = events[:5], True
        await self.send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                    (b"request-id", self.rid.encode()),
                    (b"anthropic-organization-id", b"fake-org"),
                ],
            }
        )
        for chunk in events:
            await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
            await asyncio.sleep(0.01 if cut else 0)  # let each event go out on its own
        if cut:
            raise CutStream("error:cut: dropping the connection mid-stream")
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
