"""The OpenAI-compatible family: the request passes through, only the model and stream usage change."""

from tests.conformance.family import FakeFamily
from tests.fakes.openai_upstream import FakeOpenAI

SECRET = "sk-conformance-openai-0123456789"


class OpenAIFamily(FakeFamily):
    name = "openai"
    preset = "openai"
    upstream_model = "gpt-4o-mini"

    def check_request(self, case, request, stream):
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        body = request.json
        assert body["model"] == "gpt-4o-mini"
        # Messages and every parameter arrive as the tenant sent them (image URLs included), but the output
        # cap: always one, under the name every OpenAI model honours.
        assert [m["role"] for m in body["messages"]] == [m["role"] for m in case.messages]
        params = dict(case.params)
        cap = params.pop("max_completion_tokens", None) or params.pop("max_tokens", None) or 4096
        assert body["max_completion_tokens"] == cap and "max_tokens" not in body
        for name, value in params.items():
            assert body[name] == value
        if stream:
            assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        else:
            assert "stream" not in body and "stream_options" not in body


FAMILY = OpenAIFamily(FakeOpenAI(api_key=SECRET), SECRET)
