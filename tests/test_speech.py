"""POST /v1/audio/speech with the openai SDK: audio bytes streamed back as they arrive, billed per input character."""

from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import UsageRecord
from providers.models import CatalogModel
from tests.factories import add_model
from tests.fakes.openai_upstream import speech_of


def speech_model(provider, public_id="openai/tts", upstream_name="tts-1"):
    # 15 per million characters, as OpenAI prices tts-1.
    model = add_model(
        provider,
        public_id,
        upstream_name,
        input_cost=Decimal(15),
        output_cost=Decimal(0),
        input_price=Decimal(15),
        output_price=Decimal(0),
    )
    CatalogModel.objects.filter(pk=model.pk).update(kind="audio")
    return model


def test_the_sdk_gets_the_audio_byte_for_byte_and_it_is_billed_per_character(client, hub, upstream, openai_provider):
    speech_model(openai_provider)
    text = "Hello from the hub."
    with client.audio.speech.with_streaming_response.create(model="openai/tts", voice="alloy", input=text) as reply:
        assert reply.headers["content-type"] == "audio/mpeg"
        audio = b"".join(reply.iter_bytes())
    assert audio == speech_of(text)
    (sent,) = upstream.requests
    assert sent.json == {"model": "tts-1", "voice": "alloy", "input": text}
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.endpoint, record.unit, record.prompt_tokens, record.status) == (
        "audio.speech",
        "characters",
        len(text),
        "ok",
    )
    assert record.price == Decimal(len(text)) * 15 / 10**6


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "openai/tts", "voice": "alloy"}, "input"),
        ({"model": "openai/tts", "input": "x" * 4097, "voice": "alloy"}, "input"),
        ({"model": "openai/tts", "input": "hi", "voice": "alloy", "response_format": "ogg"}, "response_format"),
        ({"model": "openai/tts", "input": "hi", "voice": "alloy", "speed": 9}, "speed"),
    ],
)
def test_bad_speech_requests_are_400(hub, api_key, openai_provider, upstream, body, param):
    speech_model(openai_provider)
    response = httpx.post(f"{hub.url}/v1/audio/speech", json=body, headers={"authorization": f"Bearer {api_key}"})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert upstream.requests == []


def test_an_upstream_failure_before_the_audio_is_an_openai_error_and_free(client, hub, openai_provider, upstream):
    speech_model(openai_provider, "openai/broken-tts", "fake-error-500")
    with pytest.raises(openai.APIStatusError) as raised:
        client.audio.speech.create(model="openai/broken-tts", voice="alloy", input="hi")
    assert raised.value.status_code == 502
    hub.drain()
    assert UsageRecord.objects.get().price == 0


def test_a_chat_model_on_the_speech_endpoint_is_the_wrong_kind(client, chat_model):
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.speech.create(model="openai/gpt-4o-mini", voice="alloy", input="hi")
    assert raised.value.body["code"] == "wrong_model_kind"


def test_the_demo_provider_speaks_a_wav_offline(hub):
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("hub_bootstrap", "--key-only", stdout=out)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=out.getvalue().strip(), max_retries=0)
    audio = client.audio.speech.create(model="demo/tts", voice="any", input="three little words").read()
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) == 44 + 3 * 800
