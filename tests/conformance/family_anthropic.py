"""The Anthropic family: OpenAI requests become Messages API requests (POST /v1/messages).

check_request spells out, case by case, the native request Anthropic documents:
system at the top level, max_tokens always present (4096 when nothing sets
it), images as base64 or url sources, tool_use / tool_result blocks with the
tenant's ids, tools with input_schema, stop_sequences, JSON asked for in the
system prompt, and `stream: true` for streams.
"""

from providers.adapters.anthropic.request import DEFAULT_MAX_TOKENS, JSON_OBJECT_PROMPT
from tests.conformance.family import FakeFamily
from tests.fakes.anthropic_upstream import FakeAnthropic

from .cases import IMAGE_URL, PIXEL_DATA_URL, WEATHER_TOOL

SECRET = "sk-ant-api03-conformance-0123456789abcdef"
VERSION = "2023-06-01"
UPSTREAM_MODEL = "claude-sonnet-4-5"
TOOLS = [
    {
        "name": "get_weather",
        "description": WEATHER_TOOL["function"]["description"],
        "input_schema": WEATHER_TOOL["function"]["parameters"],
    }
]


def _user(content):
    return {"role": "user", "content": content}


def expected(case, image_url: str) -> dict:
    """The exact native body for a case (without `stream`)."""
    body = {"model": UPSTREAM_MODEL, "max_tokens": DEFAULT_MAX_TOKENS}
    messages = {
        "system_prompt": [_user("hi there")],
        "multi_turn": [_user("first"), {"role": "assistant", "content": "Hello! You said: first"}, _user("second")],
        "image_base64": [
            _user(
                [
                    {"type": "text", "text": "what is this?"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": PIXEL_DATA_URL.partition(",")[2],
                        },
                    },
                ]
            )
        ],
        "image_url": [
            _user(
                [{"type": "text", "text": "and this?"}, {"type": "image", "source": {"type": "url", "url": image_url}}]
            )
        ],
        "tool_round_trip": [
            _user("weather in Paris?"),
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            _user([{"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]),
        ],
    }.get(case.name)
    if messages is None:  # every other case is one user message with text content
        (message,) = case.messages
        assert message["role"] == "user" and isinstance(message["content"], str)
        messages = [_user(message["content"])]
    if case.name == "system_prompt":
        body["system"] = "Be brief."
    if case.name == "json_mode":
        body["system"] = JSON_OBJECT_PROMPT
    if "tools" in case.params:
        body["tools"] = TOOLS
    if "stop" in case.params:
        stop = case.params["stop"]
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if "max_tokens" in case.params:
        body["max_tokens"] = case.params["max_tokens"]
    body["messages"] = messages
    return body


class AnthropicFamily(FakeFamily):
    name = "anthropic"
    kind = "anthropic"
    options = {"anthropic_version": VERSION}
    upstream_model = UPSTREAM_MODEL
    overrides = {}  # Anthropic follows the table's defaults, content policy included (a 400)

    def check_request(self, case, request, stream):
        assert (request.method, request.path) == ("POST", "/v1/messages")
        headers = request.headers
        assert headers["x-api-key"] == SECRET and "authorization" not in headers
        assert headers["anthropic-version"] == VERSION
        assert headers["content-type"] == "application/json"
        body = dict(request.json)
        image_url = case.messages[-1]["content"][1]["image_url"]["url"] if case.name == "image_url" else ""
        if image_url == IMAGE_URL:  # the runner put its loopback server's URL in place of the placeholder
            image_url = body["messages"][0]["content"][1]["source"]["url"]
            assert image_url.startswith("http://127.0.0.1:") and image_url.endswith("/pixel.png")
        if stream:
            assert body.pop("stream") is True
        assert body == expected(case, image_url)


FAMILY = AnthropicFamily(FakeAnthropic(api_key=SECRET), SECRET)
