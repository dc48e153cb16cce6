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
    demo_rate(image_cost=Decimal("0.01"), image_price=Decimal("0.02"),
              image_costs={"1024x1024/hd": "0.08", "512x512": "0.018"},
              image_prices={"1024x1024/hd": "0.12", "512x512": "0.025"})
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


@pytest.mark.parametrize("params, param, code", [
    ({"size": "999x999"}, "size", "invalid_value"),
    ({"quality": "ultra"}, "quality", "invalid_value"),
    ({"style": "cubist"}, "style", "invalid_value"),
    ({"n": 11}, "n", "invalid_value"),
    ({"n": 0}, "n", "invalid_value"),
    ({"response_format": "gif"}, "response_format", "invalid_value"),
    ({"background": "transparent"}, "background", "unsupported_parameter"),
    ({"prompt": ""}, "prompt", "invalid_value"),
])
def test_parameters_the_model_does_not_take_are_a_clear_400_and_recorded(demo_client, hub, params, param, code):
    body = {"model": "demo/image", "prompt": "a fox", **params}
    response = httpx.post(f"{hub.url}/v1/images/generations", json=body,
                          headers={"authorization": f"Bearer {demo_client.api_key}"})
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
    answer = demo_client.images.edit(model="demo/image", image=[("a.png", first, "image/png"),
                                                                 ("b.png", second, "image/png")],
                                     prompt="add a hat", response_format="b64_json")
    expected = png(b"add a hat" + hashlib.sha256(first).digest() + b"0")
    assert base64.b64decode(answer.data[0].b64_json) == expected
    hub.drain()
    assert UsageRecord.objects.get().endpoint == "images.edits"


def test_an_edit_takes_the_json_image_field_as_base64_or_a_data_url(demo_client, hub):
    first = png(b"first")
    for image in (base64.b64encode(first).decode(), "data:image/png;base64," + base64.b64encode(first).decode(),
                  [base64.b64encode(first).decode()]):
        response = httpx.post(f"{hub.url}/v1/images/edits", headers={"authorization": f"Bearer {demo_client.api_key}"},
                              json={"model": "demo/image", "prompt": "add a hat", "image": image,
                                    "response_format": "b64_json"})
        assert response.status_code == 200, response.text
        assert base64.b64decode(response.json()["data"][0]["b64_json"]) == \
            png(b"add a hat" + hashlib.sha256(first).digest() + b"0")


@pytest.mark.parametrize("image, code", [("bm90IGFuIGltYWdl", "invalid_image_format"), ("%%%", "invalid_image"),
                                         (None, "missing_required_parameter")])
def test_a_bad_edit_image_is_a_400(demo_client, hub, image, code):
    body = {"model": "demo/image", "prompt": "x"}
    if image is not None:
        body["image"] = image
    response = httpx.post(f"{hub.url}/v1/images/edits", json=body,
                          headers={"authorization": f"Bearer {demo_client.api_key}"})
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == "image"


def test_an_upload_over_the_limit_is_413_and_recorded(demo_client, hub, settings):
    settings.HUB_MAX_UPLOAD_BYTES = 1000
    with pytest.raises(openai.APIStatusError) as raised:
        demo_client.images.edit(model="demo/image", image=("big.png", png(b"x") + b"\0" * 2000, "image/png"),
                                prompt="too big")
    assert raised.value.status_code == 413
    hub.drain()
    assert UsageRecord.objects.get().http_status == 413


def test_a_body_over_the_hub_limit_is_refused_unread_with_a_413_and_recorded(demo_client, hub, settings):
    settings.HUB_MAX_BODY_BYTES = 10_000
    response = httpx.post(f"{hub.url}/v1/images/edits", headers={"authorization": f"Bearer {demo_client.api_key}"},
                          files={"image": ("a.png", b"\0" * 20_000, "image/png")}, data={"prompt": "x"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.endpoint, record.http_status) == ("images.edits", 413)


def test_the_documented_api_paths_generate_too(demo_client, hub):
    for path in ("/api/images/generations", "/api/image/generations"):
        response = httpx.post(f"{hub.url}{path}", json={"model": "demo/image", "prompt": "p",
                                                        "response_format": "b64_json"},
                              headers={"authorization": f"Bearer {demo_client.api_key}"})
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

    model = CatalogModel.objects.create(public_id="x/dall-e-3", kind="image")
    rate = ModelRate.objects.create(model=model, margin=Decimal("0.5"), image_cost=Decimal("0.04"),
                                    image_costs={"1024x1024/hd": "0.08", "1792x1024": 0.12})
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
