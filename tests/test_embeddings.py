"""POST /v1/embeddings with the openai SDK: the forms of input, float and base64, several providers,
metered per input token through the same key, credit and routing path as chat."""

import base64
import struct
from decimal import Decimal

import openai
import pytest

from billing.models import LedgerEntry, UsageRecord
from providers.models import CatalogModel
from tests import factories
from tests.factories import add_model
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import embedding_of
from tests.fakes.server import running, server_fixture


def embedding_model(provider, public_id="openai/embed", upstream_name="text-embedding-3-small"):
    model = add_model(provider, public_id, upstream_name)
    CatalogModel.objects.filter(pk=model.pk).update(kind="embedding")
    return model


@pytest.fixture
def embed_model(openai_provider):
    return embedding_model(openai_provider)


def test_the_sdk_gets_vectors_and_the_usage_is_charged(client, hub, upstream, embed_model, organization):
    # The SDK asks for base64 unless told otherwise, and decodes it.
    reply = client.embeddings.create(model="openai/embed", input=["hello world", "bonjour"])
    assert [d.embedding for d in reply.data] == [embedding_of("hello world", 4), embedding_of("bonjour", 4)]
    assert reply.usage.prompt_tokens == 3
    (sent,) = upstream.requests
    assert sent.path == "/v1/embeddings" and sent.json["model"] == "text-embedding-3-small"
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.endpoint, record.prompt_tokens, record.completion_tokens) == ("embeddings", 3, 0)
    assert record.price == Decimal(3) * 2 / 10**6 == -LedgerEntry.objects.get(kind="usage").amount


@pytest.mark.parametrize("value, tokens", [("one two three", 3), ([1, 2, 3, 4], 4), ([[1, 2], [3]], 3)])
def test_every_form_of_input_and_floats(client, upstream, embed_model, value, tokens):
    reply = client.embeddings.create(model="openai/embed", input=value, encoding_format="float", dimensions=3)
    assert reply.usage.prompt_tokens == tokens and len(reply.data[0].embedding) == 3


@pytest.mark.parametrize("value", ["", [], [""], [1, "a"], {"text": "x"}, [[]]])
def test_bad_input_is_a_400(client, embed_model, value):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="openai/embed", input=value)
    assert raised.value.body["param"] == "input"


def test_a_chat_model_is_the_wrong_kind_and_vice_versa(client, embed_model, chat_model):
    with pytest.raises(openai.BadRequestError) as raised:
        client.embeddings.create(model="openai/gpt-4o-mini", input="x")
    assert raised.value.body["code"] == "wrong_model_kind" and "/v1/chat/completions" in raised.value.message
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model="openai/embed", messages=[{"role": "user", "content": "x"}])
    assert "/v1/embeddings" in raised.value.message


def test_an_upstream_failure_is_mapped_and_free(client, hub, openai_provider, upstream):
    embedding_model(openai_provider, "openai/broken", "fake-error-429")
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="openai/broken", input="x")
    hub.drain()
    assert UsageRecord.objects.get().price == 0


def test_the_demo_provider_embeds_offline_deterministically(hub):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("hub_bootstrap", "--key-only", stdout=out)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=out.getvalue().strip(), max_retries=0)
    first = client.embeddings.create(model="demo/embed", input="same text")
    again = client.embeddings.create(model="demo/embed", input="same text", encoding_format="float")
    assert first.data[0].embedding == pytest.approx(again.data[0].embedding, abs=1e-6)
    assert abs(sum(x * x for x in again.data[0].embedding) - 1) < 1e-3  # unit length
    assert len(again.data[0].embedding) == 16 and again.usage.prompt_tokens == 2


gemini_server = server_fixture(lambda: FakeGemini(api_key="gemini-test-key"))


def test_gemini_serves_embeddings_through_batch_embed_contents(client, hub, gemini_server, transactional_db):
    gemini_server.reset()
    provider = factories.provider("gemini", kind="gemini", base_url=gemini_server.base_url, secret="gemini-test-key")
    embedding_model(provider, "google/embed", "gemini-embedding-001")
    reply = client.embeddings.create(model="google/embed", input=["a b", "c"], dimensions=3)
    assert [d.embedding for d in reply.data] == [embedding_of("a b", 3), embedding_of("c", 3)]
    (sent,) = gemini_server.requests
    assert sent.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert sent.json["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "outputDimensionality": 3,
        "content": {"parts": [{"text": "a b"}]},
    }
    with pytest.raises(openai.BadRequestError):  # token ids: text only
        client.embeddings.create(model="google/embed", input=[1, 2, 3])


def test_base64_is_little_endian_float32():
    import json

    from providers.adapters.base import Usage
    from providers.adapters.translate import embeddings

    body = json.loads(embeddings(model="m", vectors=[[0.5, -1.0]], usage=Usage(1, 0), encoding_format="base64"))
    assert struct.unpack("<2f", base64.b64decode(body["data"][0]["embedding"])) == (0.5, -1.0)


def test_bedrock_titan_serves_embeddings_signed(client, hub, transactional_db):
    from tests.fakes.bedrock_upstream import FakeBedrock

    with running(FakeBedrock("AKIATESTEMBED", "secret-embed-key", None, region="us-east-1")) as fake:
        provider = factories.provider(
            "bedrock", kind="bedrock", base_url=fake.base_url, options={"region": "us-east-1"}, secret=fake.secret
        )
        embedding_model(provider, "aws/titan-embed", "amazon.titan-embed-text-v2:0")
        reply = client.embeddings.create(model="aws/titan-embed", input=["one two", "three"], dimensions=4)
        assert [d.embedding for d in reply.data] == [embedding_of("one two", 4), embedding_of("three", 4)]
        assert reply.usage.prompt_tokens == 3  # Titan's own count
        assert [r.model_id for r in fake.requests] == ["amazon.titan-embed-text-v2:0"] * 2
        assert all(r.path.endswith("/invoke") for r in fake.requests)
        assert all(r.signature_valid for r in fake.requests)
