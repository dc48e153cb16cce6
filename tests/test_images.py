"""Images with the openai SDK: generations and edits, `url` links served by the hub, per-image billing."""

import base64
import hashlib
import io
import time
from decimal import Decimal

import httpx
import openai
import pytest
from django.core.management import call_command

from billing.models import ModelRate, UsageRecord
from providers.adapters.demo import png
from providers.models import CatalogModel
from tests import factories


@pytest.fixture
def demo_client(hub):
    out = io.StringIO()
    call_command("hub_bootstrap", "--key-only", stdout=out)
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=out.getvalue().strip(), max_retries=0)


def test_the_demo_generates_a_png_offline_as_base64_and_as_a_hub_link(demo_client, hub):
    answer = demo_client.images.generate(model="demo/image", prompt="a red fox", n=2, response_format="b64_json")
    images = [base64.b64decode(item.b64_json) for item in answer.data]
    assert images == [png(b"a red fox0"), png(b"a red fox1")]
    linked = demo_client.images.generate(model="demo/image", prompt="a red fox")
    url = linked.data[0].url
    assert url.startswith(f"{hub.url}/v1/files/images/")
    fetched = httpx.get(url)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert fetched.content == png(b"a red fox0")


def demo_rate(**rate):
    model = CatalogModel.objects.get(public_id="demo/image")
    ModelRate.objects.filter(model=model).update(**rate)
    from hub import catalogue

    catalogue.invalidate()


def test_images_are_billed_per_image_at_their_size_and_quality_tier(demo_client, hub):
    demo_rate(
        image_cost=Decimal("0.01"),
        image_price=Decimal("0.02"),
        image_costs={"1024x1024/hd": "0.08", "512x512": "0.018"},
        image_prices={"1024x1024/hd": "0.12", "512x512": "0.025"},
    )
    demo_client.images.generate(model="demo/image", prompt="one", n=3, quality="hd", response_format="b64_json")
    demo_client.images.generate(model="demo/image", prompt="two", n=2, size="512x512")
    demo_client.images.generate(model="demo/image", prompt="three", size="256x256")
    hub.drain()
    records = {r.image_tier: r for r in UsageRecord.objects.all()}
    assert set(records) == {"1024x1024/hd", "512x512/standard", "256x256/standard"}
    hd, small, other = records["1024x1024/hd"], records["512x512/standard"], records["256x256/standard"]
    assert (hd.unit, hd.images, hd.cost, hd.price) == ("images", 3, Decimal("0.24"), Decimal("0.36"))
    assert (small.images, small.cost, small.price) == (2, Decimal("0.036"), Decimal("0.05"))
    assert (other.images, other.cost, other.price) == (1, Decimal("0.01"), Decimal("0.02"))  # no tier: the default
    assert {r.endpoint for r in records.values()} == {"images.generations"}


@pytest.mark.parametrize(
    "params, param, code",
    [
        ({"size": "999x999"}, "size", "invalid_value"),
        ({"quality": "ultra"}, "quality", "invalid_value"),
        ({"style": "cubist"}, "style", "invalid_value"),
        ({"n": 11}, "n", "invalid_value"),
        ({"n": 0}, "n", "invalid_value"),
        ({"response_format": "gif"}, "response_format", "invalid_value"),
        ({"background": "transparent"}, "background", "unsupported_parameter"),
        ({"prompt": ""}, "prompt", "invalid_value"),
    ],
)
def test_parameters_the_model_does_not_take_are_a_clear_400_and_recorded(demo_client, hub, params, param, code):
    body = {"model": "demo/image", "prompt": "a fox", **params}
    response = httpx.post(
        f"{hub.url}/v1/images/generations", json=body, headers={"authorization": f"Bearer {demo_client.api_key}"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.http_status, record.price) == ("client_error", 400, 0)


def test_a_hub_link_lasts_its_hour_then_is_gone(demo_client, hub, settings):
    url = demo_client.images.generate(model="demo/image", prompt="brief").data[0].url
    assert httpx.get(url).status_code == 200
    forged = url.replace("signature=", "signature=x")
    assert httpx.get(forged).status_code == 404
    from hub import media

    later = time.time() + settings.HUB_MEDIA_URL_TTL_SECONDS + 1
    stored = media.storage().listdir(media.FOLDER)[1]
    assert media.delete_expired(now=later) == len(stored) >= 1
    assert media.delete_expired(now=later) == 0  # twice: nothing left, no error
    gone = httpx.get(url)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "file_not_found"


def test_an_expired_link_answers_404_even_before_the_clean_up(demo_client, hub, monkeypatch):
    url = demo_client.images.generate(model="demo/image", prompt="brief").data[0].url
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3601)
    assert httpx.get(url).status_code == 404


def test_an_edit_uploads_the_images_by_multipart_and_the_answer_depends_on_them(demo_client, hub):
    first, second = png(b"first"), png(b"second")
    answer = demo_client.images.edit(
        model="demo/image",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        prompt="add a hat",
        response_format="b64_json",
    )
    expected = png(b"add a hat" + hashlib.sha256(first).digest() + b"0")
    assert base64.b64decode(answer.data[0].b64_json) == expected
    hub.drain()
    assert UsageRecord.objects.get().endpoint == "images.edits"


def test_an_edit_takes_the_json_image_field_as_base64_or_a_data_url(demo_client, hub):
    first = png(b"first")
    for image in (
        base64.b64encode(first).decode(),
        "data:image/png;base64," + base64.b64encode(first).decode(),
        [base64.b64encode(first).decode()],
    ):
        response = httpx.post(
            f"{hub.url}/v1/images/edits",
            headers={"authorization": f"Bearer {demo_client.api_key}"},
            json={"model": "demo/image", "prompt": "add a hat", "image": image, "response_format": "b64_json"},
        )
        assert response.status_code == 200, response.text
        assert base64.b64decode(response.json()["data"][0]["b64_json"]) == png(
            b"add a hat" + hashlib.sha256(first).digest() + b"0"
        )


@pytest.mark.parametrize(
    "image, code",
    [("bm90IGFuIGltYWdl", "invalid_image_format"), ("%%%", "invalid_image"), (None, "missing_required_parameter")],
)
def test_a_bad_edit_image_is_a_400(demo_client, hub, image, code):
    body = {"model": "demo/image", "prompt": "x"}
    if image is not None:
        body["image"] = image
    response = httpx.post(
        f"{hub.url}/v1/images/edits", json=body, headers={"authorization": f"Bearer {demo_client.api_key}"}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == "image"


def test_an_upload_over_the_limit_is_413_and_recorded(demo_client, hub, settings):
    settings.HUB_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(openai.APIStatusError) as raised:
        demo_client.images.edit(
            model="demo/image", image=("big.png", png(b"x") + b"\0" * 2000, "image/png"), prompt="too big"
        )
    assert raised.value.status_code == 413
    hub.drain()
    assert UsageRecord.objects.get().http_status == 413


def test_a_body_over_the_hub_limit_is_refused_unread_with_a_413_and_recorded(demo_client, hub, settings):
    settings.HUB_MAX_BODY_BYTES = 10_000
    response = httpx.post(
        f"{hub.url}/v1/images/edits",
        headers={"authorization": f"Bearer {demo_client.api_key}"},
        files={"image": ("a.png", b"\0" * 20_000, "image/png")},
        data={"prompt": "x"},
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.endpoint, record.http_status) == ("images.edits", 413)


def test_the_documented_api_paths_generate_too(demo_client, hub):
    for path in ("/api/images/generations", "/api/image/generations"):
        response = httpx.post(
            f"{hub.url}{path}",
            json={"model": "demo/image", "prompt": "p", "response_format": "b64_json"},
            headers={"authorization": f"Bearer {demo_client.api_key}"},
        )
        assert response.status_code == 200 and len(response.json()["data"]) == 1


def test_a_chat_model_on_the_images_endpoint_is_the_wrong_kind(demo_client):
    with pytest.raises(openai.BadRequestError) as raised:
        demo_client.images.generate(model="demo/echo", prompt="x")
    assert raised.value.body["code"] == "wrong_model_kind"


def test_the_default_model_is_dall_e_2(demo_client):
    with pytest.raises(openai.NotFoundError) as raised:
        demo_client.images.generate(prompt="x")
    assert "dall-e-2" in raised.value.body["message"]


def test_a_margin_prices_every_tier_and_the_price_history_keeps_them(transactional_db):
    from billing.models import PriceChange

    model = factories.catalog_model("x/dall-e-3", kind="image")
    rate = factories.rate(
        model,
        margin=Decimal("0.5"),
        image_cost=Decimal("0.04"),
        image_costs={"1024x1024/hd": "0.08", "1792x1024": 0.12},
    )
    rate.refresh_from_db()
    assert rate.image_price == Decimal("0.06")
    assert rate.image_prices == {"1024x1024/hd": "0.1200000000", "1792x1024": "0.1800000000"}
    change = PriceChange.objects.get(model=model)
    assert change.new["image_costs"] == {"1024x1024/hd": "0.0800000000", "1792x1024": "0.1200000000"}
    assert change.new["image_price"] == "0.0600000000"


def test_the_hold_for_images_is_n_at_their_tier_or_at_the_dearest_while_auto(demo_client):
    from hub import catalogue, credit

    demo_rate(image_price=Decimal("0.02"), image_prices={"1024x1024/hd": "0.12", "512x512": "0.025"})
    snapshot = catalogue.load()
    model = snapshot.models["demo/image"]

    def hold(**body):
        return credit.worst_case({"prompt": "p", **body}, model, snapshot)

    assert hold(n=3, tier="1024x1024/hd") == Decimal("0.36")
    assert hold(n=2, tier="512x512/standard") == Decimal("0.05")
    assert hold(n=2, tier="256x256/standard") == Decimal("0.04")
    assert hold(n=2, tier="") == Decimal("0.24")  # "auto": the dearest tier


# ---------------------------------------------------------------- real provider formats (fake upstreams)
from tests.factories import add_model  # noqa: E402
from tests.fakes.gemini_upstream import FakeGemini  # noqa: E402
from tests.fakes.media import png_of  # noqa: E402
from tests.fakes.server import server_fixture  # noqa: E402


def image_model(provider, public_id, upstream_name, **rate):
    model = add_model(
        provider, public_id, upstream_name, **(rate or {"input_cost": Decimal(0), "output_cost": Decimal(0)})
    )
    CatalogModel.objects.filter(pk=model.pk).update(kind="image")
    return model


def test_dall_e_3_through_an_openai_provider_answers_a_hub_link_to_the_exact_png(
    client, hub, upstream, openai_provider
):
    image_model(
        openai_provider,
        "openai/dall-e-3",
        "dall-e-3",
        image_cost=Decimal("0.04"),
        image_price=Decimal("0.05"),
        image_costs={"1792x1024/hd": "0.12"},
        image_prices={"1792x1024/hd": "0.15"},
    )
    answer = client.images.generate(
        model="openai/dall-e-3", prompt="a lighthouse", size="1792x1024", quality="hd", style="natural"
    )
    (sent,) = upstream.requests
    assert sent.json == {
        "model": "dall-e-3",
        "prompt": "a lighthouse",
        "n": 1,
        "size": "1792x1024",
        "quality": "hd",
        "style": "natural",
        "response_format": "b64_json",
    }
    assert answer.data[0].revised_prompt == "Revised: a lighthouse"
    fetched = httpx.get(answer.data[0].url)
    assert fetched.content == png_of("a lighthouse|0")
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.images, record.image_tier, record.cost, record.price) == (
        1,
        "1792x1024/hd",
        Decimal("0.12"),
        Decimal("0.15"),
    )


@pytest.mark.parametrize(
    "spoilt",
    [
        {"b64_json": 42},
        {"b64_json": {"png": "x"}},
        {"b64_json": "not base64 at all!"},
        {"revised_prompt": {"text": "x"}},
        {"url": 7, "b64_json": None},
    ],
    ids=["b64_number", "b64_object", "b64_garbage", "revised_prompt_object", "url_number"],
)
def test_an_image_answer_not_in_openais_shape_is_a_502_and_free(client, hub, upstream, openai_provider, spoilt):
    """The hub decodes the image to keep it: a number or an object as b64_json was a 500 (TypeError)."""
    image_model(openai_provider, "openai/dall-e-3", "dall-e-3")
    upstream.malform = lambda out: dict(out, data=[dict(item, **spoilt) for item in out["data"]])
    try:
        with pytest.raises(openai.APIStatusError) as raised:
            client.images.generate(model="openai/dall-e-3", prompt="a lighthouse")
    finally:
        upstream.malform = None
    assert (raised.value.status_code, raised.value.body["code"]) == (502, "upstream_invalid_response")
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.status, record.price) == ("upstream_error", 0)


def test_dall_e_3_refuses_two_images_at_the_hub(client, hub, upstream, openai_provider):
    image_model(openai_provider, "openai/dall-e-3", "dall-e-3")
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="openai/dall-e-3", prompt="x", n=2)
    assert raised.value.body["param"] == "n" and upstream.requests == []


def test_gpt_image_1_is_billed_by_its_tokens_and_never_sent_response_format(client, hub, upstream, openai_provider):
    image_model(
        openai_provider,
        "openai/gpt-image-1",
        "gpt-image-1",
        input_cost=Decimal(5),
        output_cost=Decimal(40),
        input_price=Decimal(6),
        output_price=Decimal(50),
    )
    answer = client.images.generate(
        model="openai/gpt-image-1",
        prompt="three word prompt",
        n=2,
        quality="high",
        response_format="b64_json",
        background="opaque",
    )
    (sent,) = upstream.requests
    assert "response_format" not in sent.json and sent.json["background"] == "opaque"
    assert [base64.b64decode(d.b64_json) for d in answer.data] == [
        png_of("three word prompt|0"),
        png_of("three word prompt|1"),
    ]
    assert answer.usage.output_tokens == 2 * 4160  # the provider's usage is passed on
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.completion_tokens, record.images, record.image_tier) == (
        3,
        8320,
        2,
        "1024x1024/high",
    )
    assert record.price == (Decimal(3) * 6 + Decimal(8320) * 50) / 10**6


def test_a_multipart_edit_reaches_the_provider_byte_for_byte(client, hub, upstream, openai_provider):
    image_model(openai_provider, "openai/gpt-image-1", "gpt-image-1")
    first, second, mask = png_of("first", 16), png_of("second", 16), png_of("mask", 16)
    answer = client.images.edit(
        model="openai/gpt-image-1",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        mask=("m.png", mask, "image/png"),
        prompt="add a hat",
    )
    (sent,) = upstream.requests
    assert [(f.name, f.filename, f.data) for f in sent.files] == [
        ("image[]", "a.png", first),
        ("image[]", "b.png", second),
        ("mask", "m.png", mask),
    ]
    assert sent.form["prompt"] == ["add a hat"] and sent.form["model"] == ["gpt-image-1"]
    assert "response_format" not in sent.form
    expected = png_of(f"add a hat|{hashlib.sha256(first).hexdigest()}|0")
    assert httpx.get(answer.data[0].url).content == expected


def test_a_dall_e_2_edit_sends_one_image_field(client, hub, upstream, openai_provider):
    image_model(openai_provider, "openai/dall-e-2", "dall-e-2")
    image = png_of("only", 16)
    client.images.edit(
        model="openai/dall-e-2",
        image=("only.png", image, "image/png"),
        prompt="p",
        response_format="b64_json",
        size="512x512",
    )
    (sent,) = upstream.requests
    assert [(f.name, f.data) for f in sent.files] == [("image", image)]
    assert sent.form["response_format"] == ["b64_json"] and sent.form["size"] == ["512x512"]


def test_provider_failures_are_openai_errors_and_free(client, hub, upstream, openai_provider):
    image_model(openai_provider, "openai/broken", "fake-error-500")
    image_model(openai_provider, "openai/dall-e-2", "dall-e-2")
    with pytest.raises(openai.APIStatusError) as raised:
        client.images.generate(model="openai/broken", prompt="x")
    assert raised.value.status_code == 502
    with pytest.raises(openai.BadRequestError) as refused:
        client.images.generate(model="openai/dall-e-2", prompt="error:content_policy")
    assert refused.value.body["code"] == "content_policy_violation"
    hub.drain()
    assert [r.price for r in UsageRecord.objects.all()] == [0, 0]


gemini_server = server_fixture(lambda: FakeGemini(api_key="gemini-test-key"))


def gemini_image_model(gemini_server):
    gemini_server.reset()
    provider = factories.provider("gemini", kind="gemini", base_url=gemini_server.base_url, secret="gemini-test-key")
    return image_model(
        provider,
        "google/flash-image",
        "gemini-2.5-flash-image",
        input_cost=Decimal("0.3"),
        output_cost=Decimal(30),
        margin=Decimal(0),
    )


def test_gemini_generates_n_images_at_the_aspect_ratio_of_the_size(client, hub, gemini_server):
    gemini_image_model(gemini_server)
    answer = client.images.generate(
        model="google/flash-image", prompt="a cat", n=2, size="1344x768", response_format="b64_json"
    )
    assert [base64.b64decode(d.b64_json) for d in answer.data] == [png_of("a cat|16:9")] * 2
    assert len(gemini_server.requests) == 2
    sent = gemini_server.requests[0]
    assert sent.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert sent.json["generationConfig"] == {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.images, record.completion_tokens) == (2, 2 * 1290)
    assert record.price == (Decimal(record.prompt_tokens) * Decimal("0.3") + 2580 * 30) / 10**6


def test_gemini_edits_send_the_image_inline_and_refuse_sizes_it_has_not(client, hub, gemini_server):
    gemini_image_model(gemini_server)
    image = png_of("in", 16)
    answer = client.images.edit(
        model="google/flash-image", image=("in.png", image, "image/png"), prompt="hat", response_format="b64_json"
    )
    parts = gemini_server.requests[0].json["contents"][0]["parts"]
    assert parts[0] == {"text": "hat"} and base64.b64decode(parts[1]["inlineData"]["data"]) == image
    # No size: no aspect ratio sent, and Gemini's default (1:1) is what the image is made at.
    assert "imageConfig" not in gemini_server.requests[0].json["generationConfig"]
    assert base64.b64decode(answer.data[0].b64_json) == png_of(f"hat|{hashlib.sha256(image).hexdigest()}|1:1")
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.generate(model="google/flash-image", prompt="x", size="1792x1024")
    assert raised.value.body["param"] == "size"


def test_images_go_through_the_credit_check_and_are_charged_to_the_ledger(demo_client, hub):
    from billing.models import LedgerEntry

    demo_rate(image_price=Decimal("4"))  # the demo organisation has 10 credits
    with pytest.raises(openai.APIStatusError) as raised:
        demo_client.images.generate(model="demo/image", prompt="x", n=3)
    assert raised.value.status_code == 402 and raised.value.body["code"] == "insufficient_quota"
    demo_client.images.generate(model="demo/image", prompt="x", n=2, response_format="b64_json")
    hub.drain()
    charged = UsageRecord.objects.get(status="ok")
    assert charged.price == Decimal(8)
    assert LedgerEntry.objects.get(usage_record=charged).amount == Decimal(-8)


def test_the_hubs_own_body_keys_cannot_be_set_by_a_client(demo_client, hub):
    body = {
        "model": "demo/image",
        "prompt": "plain",
        "response_format": "b64_json",
        "edit": True,
        "images": [["a.png", "x", "image/png"]],
        "params": {"size": "9x9", "evil": 1},
        "tier": "free",
    }
    response = httpx.post(
        f"{hub.url}/v1/images/generations", json=body, headers={"authorization": f"Bearer {demo_client.api_key}"}
    )
    assert response.status_code == 200, response.text
    assert base64.b64decode(response.json()["data"][0]["b64_json"]) == png(b"plain0"), "a generation, not an edit"
    edit = httpx.post(
        f"{hub.url}/v1/images/edits",
        json={"model": "demo/image", "prompt": "p", "images": [["a.png", "x", "image/png"]]},
        headers={"authorization": f"Bearer {demo_client.api_key}"},
    )
    assert edit.status_code == 400 and edit.json()["error"]["param"] == "image"


def test_streamed_image_generation_is_refused_clearly(demo_client):
    with pytest.raises(openai.BadRequestError) as raised:
        demo_client.images.generate(model="demo/image", prompt="x", stream=True)
    assert (raised.value.body["param"], raised.value.body["code"]) == ("stream", "unsupported_parameter")


def test_a_link_is_cached_no_longer_than_it_is_valid(demo_client, hub):
    url = demo_client.images.generate(model="demo/image", prompt="brief").data[0].url
    max_age = int(httpx.get(url).headers["cache-control"].split("max-age=")[1])
    assert 3590 <= max_age <= 3600


def test_gemini_answers_the_images_it_made_when_some_calls_fail(monkeypatch):
    import asyncio

    from providers.adapters import transport
    from providers.adapters.base import UpstreamError
    from providers.adapters.gemini import GeminiAdapter

    calls = []

    class Answer:
        content = (
            b'{"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "aGk="}}]},'
            b' "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1290}}'
        )

    async def send(route, url, payload, headers, error_from, *, stream):
        calls.append(url)
        if len(calls) == 2:
            raise UpstreamError("overloaded", status=503, retryable=True)
        return Answer()

    monkeypatch.setattr(transport, "send", send)
    route = type(
        "R",
        (),
        {
            "secret": "k",
            "provider_name": "gemini",
            "base_url": "http://g/v1beta",
            "options": {},
            "upstream_name": "gemini-2.5-flash-image",
        },
    )()
    body = {"prompt": "p", "images": [], "n": 3, "size": "auto", "quality": "auto"}
    result = asyncio.run(GeminiAdapter().images(route, body))
    assert len(calls) == 3 and [i["b64_json"] for i in result.images] == ["aGk=", "aGk="]
    assert (result.usage.images, result.usage.completion_tokens) == (2, 2580)

    async def failing(*args, **kwargs):
        raise UpstreamError("overloaded", status=503, retryable=True)

    monkeypatch.setattr(transport, "send", failing)
    with pytest.raises(UpstreamError):
        asyncio.run(GeminiAdapter().images(route, body))


def test_a_url_that_turns_private_between_check_and_fetch_is_still_refused(settings, monkeypatch, upstream):
    """DNS rebinding: the up-front check passes (here: skipped), the connection still may not go private."""
    import asyncio

    from providers.adapters import media as fetching
    from providers.adapters.base import UpstreamError

    settings.HUB_FETCH_ALLOW_PRIVATE = False

    async def passes(host):
        return None

    monkeypatch.setattr(fetching, "_check_public", passes)

    async def fetch():
        from providers import http

        try:
            # A name, as rebinding needs one (an address literal is what it is when checked).
            return await fetching.fetch_image(
                f"{upstream.base_url.replace('127.0.0.1', 'localhost')}/fake-images/x.png"
            )
        finally:
            await http.close()

    with pytest.raises(UpstreamError) as raised:
        asyncio.run(fetch())
    assert raised.value.code == "invalid_image" and "could not be fetched" in raised.value.message
    assert not [r for r in upstream.requests if r.path.startswith("/fake-images/")]


def test_gpt_image_1_edits_price_image_input_tokens_at_their_own_rate(client, hub, upstream, openai_provider):
    image_model(
        openai_provider,
        "openai/gpt-image-1",
        "gpt-image-1",
        input_cost=Decimal(5),
        output_cost=Decimal(40),
        image_input_cost=Decimal(10),
        margin=Decimal("0.2"),
    )
    client.images.edit(
        model="openai/gpt-image-1",
        image=[("a.png", png_of("a", 16), "image/png"), ("b.png", png_of("b", 16), "image/png")],
        prompt="add two hats",
        quality="low",
        response_format="b64_json",
    )
    hub.drain()
    record = UsageRecord.objects.get()
    # The fake counts 3 text tokens, 65 image tokens per input image, and 272 output tokens a low image.
    assert (record.prompt_tokens, record.image_input_tokens, record.completion_tokens) == (3 + 130, 130, 272)
    cost = (Decimal(3) * 5 + Decimal(130) * 10 + Decimal(272) * 40) / 10**6
    assert (record.cost, record.price) == (cost, cost * Decimal("1.2"))
