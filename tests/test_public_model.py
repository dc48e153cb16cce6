"""Answers name the hub's public id of the model that served, whole and streamed, through an alias and a
fallback, for every adapter; the provider's own name for it is in `x-hub-provider-model`."""

import openai
import pytest

from hub.management.commands.hub_bootstrap import ensure_demo_provider
from hub.relay import PublicModel
from providers.models import CatalogModel
from tests import factories
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import server_fixture

HELLO = [{"role": "user", "content": "hello there"}]


def streamed(client, **request) -> list:
    return list(
        client.chat.completions.create(messages=HELLO, stream=True, stream_options={"include_usage": True}, **request)
    )


def test_an_alias_is_answered_with_the_public_id_whole_and_streamed(client):
    reply = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=HELLO)
    assert reply.parse().model == "openai/gpt-4o-mini"
    assert reply.headers["x-hub-provider-model"] == "gpt-4o-mini"
    chunks = streamed(client, model="gpt-4o-mini")
    assert len(chunks) > 3 and {c.model for c in chunks} == {"openai/gpt-4o-mini"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello! You said: hello there"


backup_server = server_fixture(lambda: FakeOpenAI(api_key=None))


def test_a_fallback_answers_with_its_own_public_id(hub, api_key, upstream, backup_server, transactional_db):
    backup_server.reset()
    primary = factories.provider("primary", preset="openai", base_url=upstream.base_url, secret=UPSTREAM_KEY)
    backup = factories.provider("backup", preset="openai", base_url=backup_server.base_url, secret="sk-backup-key-0001")
    add_model(primary, "big/model", "fake-error-503")
    add_model(backup, "small/model", "gpt-4o-mini")
    CatalogModel.objects.filter(public_id="big/model").update(fallbacks=["small/model"])
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    assert client.chat.completions.create(model="big/model", messages=HELLO).model == "small/model"
    assert {c.model for c in streamed(client, model="big/model")} == {"small/model"}


def test_embeddings_name_the_public_id(client, openai_provider):
    model = add_model(openai_provider, "openai/text-embedding-3-small", "text-embedding-3-small")
    CatalogModel.objects.filter(pk=model.pk).update(kind="embedding")
    reply = client.embeddings.with_raw_response.create(model="openai/text-embedding-3-small", input="hi")
    assert reply.parse().model == "openai/text-embedding-3-small" and len(reply.parse().data) == 1
    assert reply.headers["x-hub-provider-model"] == "text-embedding-3-small"


def test_a_translating_adapter_names_the_public_id_too(hub, api_key, transactional_db):
    ensure_demo_provider()
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    reply = client.chat.completions.with_raw_response.create(model="demo", messages=HELLO)
    assert reply.parse().model == "demo/echo" and reply.headers["x-hub-provider-model"] == "echo"
    chunks = streamed(client, model="demo")
    assert {c.model for c in chunks} == {"demo/echo"} and chunks[-1].usage.completion_tokens > 0
    assert client.embeddings.create(model="demo/embed", input=["a", "b"]).model == "demo/embed"


@pytest.mark.parametrize(
    "payload",
    [
        b'{"model":"gpt-4o","x":1}',
        b'{"model" : "gpt-4o" , "x":1}',
        b'{"model":"a\\"model\\":\\"b","x":1}',
        b'{"model":"a\\\\","x":1}',
        b'{"content":"say \\"model\\":\\"no\\"","model":"gpt-4o"}',
        b'data: {"model":"x","choices":[]}\n\ndata: {"model": "y","choices":[]}\n\n',
    ],
)
def test_the_rewrite_keeps_the_json_valid_and_touches_only_model_members(payload):
    import json

    def events(body: bytes) -> list:
        return [json.loads(line[6:]) for line in body.split(b"\n") if line.startswith(b"data: ")] or [json.loads(body)]

    out = PublicModel('team/"odd" \u00e9')(payload)
    for before, after in zip(events(payload), events(out), strict=True):
        assert after == dict(before, model='team/"odd" \u00e9')


def test_a_hostile_provider_name_is_not_put_in_a_header():
    assert PublicModel.provider_name(b'{"model":"a\\r\\nset-cookie: x"}') is None
    assert PublicModel.provider_name(b'{"model":"gpt-4o-2024"}') == "gpt-4o-2024"
