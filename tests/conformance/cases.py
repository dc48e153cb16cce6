"""The conformance table: what a tenant sends (OpenAI format) and must get back, whatever the provider.

Every provider family's fake upstream follows one contract, in its own wire format:

* The reply depends on the LAST message:
  - a user message whose text starts with ``error:<kind>`` fails the request the
    provider's way (see ERROR_CASES; <kind> is auth, rate_limit, overloaded,
    context_length, content_policy or server);
  - a user message, when the request offers tools: tool calls to the first tool,
    ``get_weather`` {"city": "Paris"}; if the text contains "parallel", two calls,
    Paris then London, in one turn;
  - a tool result with content C: the text ``Tool said: C``;
  - a user message, when the request asks for JSON (OpenAI ``response_format``
    json_object or json_schema, however the family expresses it natively):
    the text ``{"answer": 42}``;
  - any other user message with text T: ``Hello! You said: T``, plus `` [image]``
    for each image the message carried (so the image must reach the provider).
* Text is made of words joined by single spaces. A max-tokens limit of N keeps
  the first N words (reason: the provider's "length" reason). A stop sequence
  cuts the text just before its first occurrence (reason: the provider's
  stop-sequence reason). Otherwise the reason is the provider's normal end.
* Usage: input tokens = the number of whitespace-separated words in all text of
  the request (system and messages) + 3 per message; output tokens = words of
  the reply (or 5 per tool call). Families with prompt caching also report some
  cache reads and writes; the hub must count them in prompt_tokens.
* Streams send text word by word (the first word bare, each later one with a
  leading space) and tool-call arguments in several fragments, in the provider's
  native streaming format.
"""

import base64
from dataclasses import dataclass, field

# A 1x1 transparent PNG.
PIXEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
PIXEL_DATA_URL = "data:image/png;base64," + base64.b64encode(PIXEL_PNG).decode()
IMAGE_URL = "{image_url}"  # replaced by the URL of a loopback server serving PIXEL_PNG

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def user(content):
    return {"role": "user", "content": content}


@dataclass(frozen=True)
class Expect:
    text: str | None = None  # the assistant's content (None: no text expected)
    finish: str = "stop"
    tool_calls: tuple = ()  # ((name, arguments as a dict), ...)
    status: int = 200  # an HTTP error status instead of an answer
    code: str | None = None  # the error's code when status is not 200
    retry_after: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    messages: list
    params: dict = field(default_factory=dict)  # tools, response_format, stop, max_tokens, …
    expect: Expect = Expect()


CASES = [
    Case("plain", [user("hi there")], expect=Expect("Hello! You said: hi there")),
    Case(
        "system_prompt",
        [{"role": "system", "content": "Be brief."}, user("hi there")],
        expect=Expect("Hello! You said: hi there"),
    ),
    Case(
        "multi_turn",
        [user("first"), {"role": "assistant", "content": "Hello! You said: first"}, user("second")],
        expect=Expect("Hello! You said: second"),
    ),
    Case(
        "image_base64",
        [
            user(
                [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}}]
            )
        ],
        expect=Expect("Hello! You said: what is this? [image]"),
    ),
    Case(
        "image_url",
        [user([{"type": "text", "text": "and this?"}, {"type": "image_url", "image_url": {"url": IMAGE_URL}}])],
        expect=Expect("Hello! You said: and this? [image]"),
    ),
    Case(
        "one_tool",
        [user("weather in Paris?")],
        {"tools": [WEATHER_TOOL]},
        Expect(None, "tool_calls", (("get_weather", {"city": "Paris"}),)),
    ),
    Case(
        "parallel_tools",
        [user("weather in Paris and London, in parallel")],
        {"tools": [WEATHER_TOOL]},
        Expect(None, "tool_calls", (("get_weather", {"city": "Paris"}), ("get_weather", {"city": "London"}))),
    ),
    Case(
        "tool_round_trip",
        [
            user("weather in Paris?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        {"tools": [WEATHER_TOOL]},
        Expect("Tool said: sunny"),
    ),
    Case("json_mode", [user("answer in json")], {"response_format": {"type": "json_object"}}, Expect('{"answer": 42}')),
    Case("stop_sequence", [user("hi there")], {"stop": [" said"]}, Expect("Hello! You")),
    Case("max_tokens", [user("hi there")], {"max_tokens": 2}, Expect("Hello! You", "length")),
]

ERROR_CASES = [
    Case("error_auth", [user("error:auth")], expect=Expect(status=502, code="upstream_auth_failed")),
    Case(
        "error_rate_limit",
        [user("error:rate_limit")],
        expect=Expect(status=429, code="rate_limit_exceeded", retry_after="7"),
    ),
    Case("error_overloaded", [user("error:overloaded")], expect=Expect(status=503, code="upstream_overloaded")),
    Case(
        "error_context_length",
        [user("error:context_length")],
        expect=Expect(status=400, code="context_length_exceeded"),
    ),
    Case(
        "error_content_policy",
        [user("error:content_policy")],
        expect=Expect(status=400, code="content_policy_violation"),
    ),
    Case("error_server", [user("error:server")], expect=Expect(status=502, code="upstream_error")),
]

ALL_CASES = CASES + ERROR_CASES


def words(text: str) -> int:
    return len(text.split())
