"""The OpenAI-compatible family: the request passes through, only the model and stream usage change."""

from tests.conftest import add_model
from tests.fakes.openai_upstream import FakeOpenAI

SECRET = "sk-conformance-openai-0123456789"


class OpenAIFamily:
    name = "openai"
    upstream_secret = SECRET
    overrides = {}

    def __init__(self):
        self.fake = FakeOpenAI(api_key=SECRET)

    def start(self):
        self.fake.start()

    def stop(self):
        self.fake.stop()

    def reset(self):
        self.fake.reset()

    @property
    def requests(self):
        return self.fake.requests

    def configure(self) -> str:
        from providers.models import Credential, Provider

        provider = Provider.objects.create(name="conf-openai", preset="openai", base_url=self.fake.base_url)
        credential = Credential(provider=provider, name="main")
        credential.set_secret(SECRET)
        credential.save()
        add_model(provider, "conf-openai/gpt-4o-mini", "gpt-4o-mini")
        return "conf-openai/gpt-4o-mini"

    def check_request(self, case, request, stream):
        assert request.path == "/v1/chat/completions"
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        body = request.json
        assert body["model"] == "gpt-4o-mini"
        # Messages and every parameter arrive as the tenant sent them (image URLs included).
        assert [m["role"] for m in body["messages"]] == [m["role"] for m in case.messages]
        for name, value in case.params.items():
            assert body[name] == value
        if stream:
            assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        else:
            assert "stream" not in body and "stream_options" not in body


FAMILY = OpenAIFamily()
