"""An adapter's stream of OpenAI chunks as Anthropic's event stream.

message_start, then per content block content_block_start / content_block_delta
(text_delta, input_json_delta) / content_block_stop, then message_delta with
the stop reason and the usage, and message_stop; a ping after message_start.
The usage billed is the inner stream's own (`final_usage`), so what the client
is told and what it is charged are one number.
"""

import json

from ..base import UpstreamError, Usage
from .response import STOP_REASON, error_body, error_status, message_id
from .response import usage as usage_of


def event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


def error_event(status: int, message: str) -> bytes:
    return event("error", error_body(error_status(status), message))


class MessagesStream:
    """A ChatStream (hub/relay.py relays it) of Anthropic events over an adapter's OpenAI stream."""

    content_type = "text/event-stream"

    def __init__(self, inner, model: str):
        self.inner, self.model = inner, model
        self.started = False
        self.block: int | None = None  # the open content block's index
        self.blocks = 0
        self.kind = ""  # the open block's type: text or tool_use
        self.tools: dict[int, int] = {}  # OpenAI tool index -> content block index
        self.stop_reason = "end_turn"
        self.finished = False

    @property
    def error(self) -> UpstreamError | None:
        return self.inner.error

    @property
    def first_token_at(self) -> float | None:
        return self.inner.first_token_at

    def final_usage(self) -> Usage:
        return self.inner.final_usage()

    async def aclose(self) -> None:
        await self.inner.aclose()

    def internal_error_event(self, message: str) -> bytes:
        return error_event(500, message)

    async def __aiter__(self):
        buffer = b""
        async for chunk in self.inner:
            buffer += chunk
            while (end := buffer.find(b"\n\n")) >= 0:
                frame, buffer = buffer[:end], buffer[end + 2 :]
                data = b"\n".join(line[5:].strip() for line in frame.split(b"\n") if line.startswith(b"data:"))
                if data:
                    for out in self._translate(data):
                        yield out
        if not self.finished and self.inner.error is None:
            # The adapter ended without [DONE] (it always sends one): closed all the same.
            for out in self._end():
                yield out

    def _start(self) -> list[bytes]:
        if self.started:
            return []
        self.started = True
        message: dict[str, object] = {
            "id": message_id(),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            # The input is counted by most providers only at the end: message_delta carries it.
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [event("message_start", {"type": "message_start", "message": message}), event("ping", {"type": "ping"})]

    def _close_block(self) -> list[bytes]:
        if self.block is None:
            return []
        index, self.block = self.block, None
        return [event("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open(self, kind: str, block: dict) -> list[bytes]:
        out = self._close_block()
        self.block, self.kind = self.blocks, kind
        self.blocks += 1
        out.append(
            event("content_block_start", {"type": "content_block_start", "index": self.block, "content_block": block})
        )
        return out

    def _end(self) -> list[bytes]:
        self.finished = True
        out = self._start() + self._close_block()
        delta = {"stop_reason": self.stop_reason, "stop_sequence": None}
        out.append(
            event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_of(self.final_usage())})
        )
        out.append(event("message_stop", {"type": "message_stop"}))
        return out

    def _translate(self, data: bytes) -> list[bytes]:
        if data == b"[DONE]":
            return self._end()
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("error"), dict):
            error = self.inner.error
            status = error.status if error is not None else 500
            return [error_event(status, str(chunk["error"].get("message") or "The stream failed."))]
        out = self._start()
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self.block is None or self.kind != "text":
                    out += self._open("text", {"type": "text", "text": ""})
                delta_event = {"type": "text_delta", "text": delta["content"]}
                out.append(
                    event(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": self.block, "delta": delta_event},
                    )
                )
            for call in delta.get("tool_calls") or []:
                out += self._tool(call)
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASON.get(choice["finish_reason"], "end_turn")
        return out

    def _tool(self, call: dict) -> list[bytes]:
        out: list[bytes] = []
        position = call.get("index", 0)
        function = call.get("function") or {}
        if position not in self.tools:
            block: dict[str, object] = {
                "type": "tool_use",
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "input": {},
            }
            out += self._open("tool_use", block)
            self.tools[position] = self.block  # type: ignore[assignment]  # just opened
        fragment = function.get("arguments")
        if fragment:
            delta = {"type": "input_json_delta", "partial_json": fragment}
            index = self.tools[position]
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        return out
