"""GET /v1/models lists what the key may use (the gateway's check, as /v1/status), each model with its kind,
context window and prices after the organisation's plan, in fields the openai SDK keeps."""

from decimal import Decimal

import httpx
import openai
import pytest

from accounts.services import api_key_create
from billing.models import CreditAccount, PricePlan
from hub.management.commands.hub_bootstrap import ensure_demo_provider
from providers.models import CatalogModel
from tests.factories import add_model


@pytest.fixture
def catalogue(openai_provider, chat_model):
    """openai/gpt-4o-mini (alias gpt-4o-mini, price 2/4 per million) and three fa/ models of other kinds."""
    CatalogModel.objects.filter(pk=chat_model.pk).update(context_window=128000, max_output_tokens=16384)
    add_model(
        openai_provider,
        "fa/chat",
        "gpt-4o-mini",
        alias="fa-chat",
        input_cost=Decimal("0.1"),
        output_cost=Decimal("0.2"),
        input_price=Decimal("0.15"),
        output_price=Decimal("0.6"),
        cached_input_price=Decimal("0.075"),
    )
    image = add_model(
        openai_provider, "fa/image", "gpt-image-1", image_price=Decimal("0.04"), image_prices={"1024x1024/hd": "0.08"}
    )
    whisper = add_model(openai_provider, "fa/whisper", "whisper-1", audio_second_price=Decimal("0.0001"))
    CatalogModel.objects.filter(pk=image.pk).update(kind="image")
    CatalogModel.objects.filter(pk=whisper.pk).update(kind="transcription")


def client_for(hub, organization, **limits):
    _, raw = api_key_create(organization=organization, name="listing", limits=limits)
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=raw, max_retries=0), raw


def test_a_key_lists_only_the_models_it_may_use_like_its_status(hub, organization, catalogue):
    client, raw = client_for(hub, organization, allowed_models=["fa/*"])
    ids = [m.id for m in client.models.list()]
    assert ids == ["fa/chat", "fa-chat", "fa/image", "fa/whisper"]  # an alias goes with its model
    status = httpx.get(f"{hub.url}/v1/status", headers={"authorization": f"Bearer {raw}"}).json()
    assert sorted(m["id"] for m in status["models"]) == sorted(i for i in ids if "/" in i)
    assert client.models.retrieve("fa-chat").id == "fa-chat"
    for hidden in ("openai/gpt-4o-mini", "gpt-4o-mini", "no/such-model"):
        with pytest.raises(openai.NotFoundError) as raised:
            client.models.retrieve(hidden)
        assert raised.value.body["code"] == "model_not_found"
        assert raised.value.body["message"] == f"The model `{hidden}` does not exist or you do not have access to it."
    unrestricted, _ = client_for(hub, organization)
    assert len(unrestricted.models.list().data) == 6


def test_each_model_says_its_kind_context_and_prices_per_unit(hub, organization, catalogue):
    client, _ = client_for(hub, organization)
    models = {m.id: m for m in client.models.list()}
    mini = models["openai/gpt-4o-mini"]
    assert (mini.object, mini.owned_by, mini.kind, mini.context_length, mini.max_output_tokens) == (
        "model",
        "openai",
        "chat",
        128000,
        16384,
    )
    assert mini.pricing == {"prompt": "0.000002", "completion": "0.000004"}
    assert models["gpt-4o-mini"].alias_of == "openai/gpt-4o-mini"
    assert models["fa/chat"].pricing == {
        "prompt": "0.00000015",
        "completion": "0.0000006",
        "input_cache_read": "0.000000075",
    }
    assert models["fa/image"].kind == "image" and models["fa/image"].context_length is None
    assert models["fa/image"].pricing == {
        "prompt": "0",
        "completion": "0",
        "image": "0.04",
        "image_tiers": {"1024x1024/hd": "0.08"},
    }
    assert models["fa/whisper"].pricing == {"prompt": "0", "completion": "0", "audio_second": "0.0001"}


def test_prices_are_the_organisation_s_after_its_plan(hub, organization, catalogue):
    plan = PricePlan.objects.create(name="half", discount=Decimal("0.5"))
    CreditAccount.objects.filter(organization=organization).update(price_plan=plan)
    client, _ = client_for(hub, organization)
    assert client.models.retrieve("openai/gpt-4o-mini").pricing == {"prompt": "0.000001", "completion": "0.000002"}
    assert client.models.retrieve("fa/image").pricing["image_tiers"] == {"1024x1024/hd": "0.04"}


def test_a_plan_with_a_margin_prices_over_cost(hub, organization, catalogue):
    margin = PricePlan.objects.create(name="cost plus", margin=Decimal("0.1"))
    CreditAccount.objects.filter(organization=organization).update(price_plan=margin)
    client, _ = client_for(hub, organization)
    assert client.models.retrieve("fa/chat").pricing["prompt"] == "0.00000011"


@pytest.mark.parametrize(
    "endpoint, name, said",
    [
        ("chat", "demo/embed", "is an embedding model: use /v1/embeddings."),
        ("chat", "demo/image", "is an image model: use /v1/images/generations."),
        ("chat", "demo/tts", "is an audio model: use /v1/audio/speech."),
        ("chat", "demo/whisper", "is a transcription model: use /v1/audio/transcriptions."),
        ("embeddings", "demo", "is a chat model: use /v1/chat/completions."),
    ],
)
def test_a_model_of_another_kind_is_named_with_its_article(hub, api_key, transactional_db, endpoint, name, said):
    ensure_demo_provider()
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.BadRequestError) as raised:
        if endpoint == "chat":
            client.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}])
        else:
            client.embeddings.create(model=name, input="hi")
    assert raised.value.body["message"] == f"The model `{name}` {said}"
