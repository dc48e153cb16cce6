"""Transcriptions and translations with the openai SDK: multipart uploads, every response format, billed per second."""

import io
import struct
from decimal import Decimal

import httpx
import openai
import pytest
from django.core.management import call_command

from billing.models import ModelRate, UsageRecord
from hub import catalogue
from providers.adapters.demo import TRANSCRIPT, TRANSLATION
from providers.models import CatalogModel


def wav(seconds: float, rate: int = 8000) -> bytes:
    samples = bytes(128 for _ in range(int(seconds * rate)))
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(samples))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
        + b"data"
        + struct.pack("<I", len(samples))
        + samples
    )


@pytest.fixture
def demo_client(hub):
    out = io.StringIO()
    call_command("hub_bootstrap", "--key-only", stdout=out)
    return openai.OpenAI(base_url=f"{hub.url}/v1", api_key=out.getvalue().strip(), max_retries=0)


def per_second(model_id: str, cost: str, price: str) -> None:
    ModelRate.objects.filter(model__public_id=model_id).update(
        audio_second_cost=Decimal(cost), audio_second_price=Decimal(price)
    )
    catalogue.invalidate()


def test_the_demo_transcribes_offline_in_every_format(demo_client, hub):
    audio = ("clip.wav", wav(2.5), "audio/wav")
    assert demo_client.audio.transcriptions.create(model="demo/whisper", file=audio).text == TRANSCRIPT
    assert (
        demo_client.audio.transcriptions.create(model="demo/whisper", file=audio, response_format="text")
        == f"{TRANSCRIPT}\n"
    )
    srt = demo_client.audio.transcriptions.create(model="demo/whisper", file=audio, response_format="srt")
    assert srt == f"1\n00:00:00,000 --> 00:00:02,500\n{TRANSCRIPT}\n\n"
    vtt = demo_client.audio.transcriptions.create(model="demo/whisper", file=audio, response_format="vtt")
    assert vtt == f"WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n{TRANSCRIPT}\n\n"
    verbose = demo_client.audio.transcriptions.create(
        model="demo/whisper", file=audio, response_format="verbose_json", timestamp_granularities=["word"]
    )
    assert verbose.duration == 2.5 and verbose.segments[0].end == 2.5 and len(verbose.words) == len(TRANSCRIPT.split())
    assert demo_client.audio.translations.create(model="demo/whisper", file=audio).text == TRANSLATION


def test_audio_is_billed_per_second_of_the_upload(demo_client, hub):
    per_second("demo/whisper", "0.0001", "0.00015")
    demo_client.audio.transcriptions.create(
        model="demo/whisper", file=("clip.wav", wav(4), "audio/wav"), response_format="text"
    )
    demo_client.audio.translations.create(model="demo/whisper", file=("clip.wav", wav(1.5), "audio/wav"))
    hub.drain()
    records = {r.endpoint: r for r in UsageRecord.objects.all()}
    four, one_and_a_half = records["audio.transcriptions"], records["audio.translations"]
    assert (four.unit, four.audio_seconds, four.cost, four.price) == (
        "seconds",
        Decimal("4.000"),
        Decimal("0.0004"),
        Decimal("0.0006"),
    )
    # JSON answers carry the provider's own count, whole seconds rounded up (OpenAI's usage.seconds): it wins.
    assert (one_and_a_half.audio_seconds, one_and_a_half.price) == (Decimal("2.000"), Decimal("0.0003"))
    assert not four.usage_estimated


def test_audio_the_hub_cannot_measure_is_held_at_its_size_bound_and_billed_as_an_estimate(demo_client, hub):
    per_second("demo/whisper", "0.0001", "0.0001")
    data = b"\x1aE\xdf\xa3" + b"\0" * 31996  # a WebM header: not something mutagen reads
    # As text, the answer carries no duration either: 32,000 bytes at 16 kB/s, marked as an estimate.
    demo_client.audio.transcriptions.create(
        model="demo/whisper", file=("clip.webm", data, "audio/webm"), response_format="text"
    )
    hub.drain()
    record = UsageRecord.objects.get()
    assert record.usage_estimated and record.audio_seconds == Decimal(2) and record.price == Decimal("0.0002")


@pytest.mark.parametrize(
    "fields, files, param, status",
    [
        ({"model": "demo/whisper"}, {}, "file", 400),
        ({}, {"file": ("a.wav", wav(1), "audio/wav")}, "model", 400),
        (
            {"model": "demo/whisper", "response_format": "docx"},
            {"file": ("a.wav", wav(1), "audio/wav")},
            "response_format",
            400,
        ),
        ({"model": "demo/whisper", "temperature": "3"}, {"file": ("a.wav", wav(1), "audio/wav")}, "temperature", 400),
        ({"model": "demo/whisper", "stream": "true"}, {"file": ("a.wav", wav(1), "audio/wav")}, "stream", 400),
        ({"model": "demo/whisper"}, {"file": ("a.wav", b"", "audio/wav")}, "file", 400),
    ],
)
def test_bad_uploads_are_clear_errors_and_recorded(demo_client, hub, fields, files, param, status):
    response = httpx.post(
        f"{hub.url}/v1/audio/transcriptions",
        data=fields,
        files=files or {"x": ("x", b"x")},
        headers={"authorization": f"Bearer {demo_client.api_key}"},
    )
    assert response.status_code == status and response.json()["error"]["param"] == param, response.text
    hub.drain()
    assert UsageRecord.objects.get().http_status == status


def test_json_instead_of_an_upload_is_a_400(demo_client, hub):
    response = httpx.post(
        f"{hub.url}/v1/audio/transcriptions",
        json={"model": "demo/whisper", "file": "x"},
        headers={"authorization": f"Bearer {demo_client.api_key}"},
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_content_type"


def test_an_oversized_upload_is_413(demo_client, hub, settings):
    settings.HUB_MAX_UPLOAD_BYTES = 5000
    with pytest.raises(openai.APIStatusError) as raised:
        demo_client.audio.transcriptions.create(model="demo/whisper", file=("a.wav", wav(1), "audio/wav"))
    assert raised.value.status_code == 413 and raised.value.body["param"] == "file"


def test_a_speech_model_is_the_wrong_kind_for_transcription(demo_client):
    with pytest.raises(openai.BadRequestError) as raised:
        demo_client.audio.transcriptions.create(model="demo/tts", file=("a.wav", wav(1), "audio/wav"))
    assert raised.value.body["code"] == "wrong_model_kind"


def test_the_documented_api_path_transcribes_too(demo_client, hub):
    response = httpx.post(
        f"{hub.url}/api/audio/transcriptions",
        data={"model": "demo/whisper"},
        files={"file": ("a.wav", wav(1), "audio/wav")},
        headers={"authorization": f"Bearer {demo_client.api_key}"},
    )
    assert response.status_code == 200 and response.json()["text"] == TRANSCRIPT


def test_transcription_kind_is_listed_with_its_endpoint(demo_client):
    model = CatalogModel.objects.get(public_id="demo/whisper")
    assert model.kind == "transcription"


# ---------------------------------------------------------------- through an OpenAI-compatible provider (fake)
from tests.factories import add_model  # noqa: E402
from tests.fakes.media import wav_of  # noqa: E402


def transcription_model(provider, public_id="openai/whisper", upstream_name="whisper-1"):
    model = add_model(
        provider,
        public_id,
        upstream_name,
        input_cost=Decimal(0),
        output_cost=Decimal(0),
        audio_second_cost=Decimal("0.0001"),
        audio_second_price=Decimal("0.0002"),
    )
    CatalogModel.objects.filter(pk=model.pk).update(kind="transcription")
    return model


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "vtt", "verbose_json"])
def test_every_format_is_answered_as_the_provider_would_and_the_upload_arrives_intact(
    client, hub, upstream, openai_provider, api_key, response_format
):
    transcription_model(openai_provider)
    audio = wav_of(3.2)
    via_hub = httpx.post(
        f"{hub.url}/v1/audio/transcriptions",
        headers={"authorization": f"Bearer {api_key}"},
        data={"model": "openai/whisper", "response_format": response_format, "language": "en"},
        files={"file": ("talk.wav", audio, "audio/wav")},
    )
    assert via_hub.status_code == 200, via_hub.text
    (sent,) = upstream.requests
    assert [(f.name, f.filename, f.data) for f in sent.files] == [("file", "talk.wav", audio)]
    assert sent.form["model"] == ["whisper-1"] and sent.form["language"] == ["en"]
    # Text, SRT and VTT say nothing of the audio's length: the hub asks for verbose_json and renders them.
    asked = "verbose_json" if response_format in ("text", "srt", "vtt") else response_format
    assert sent.form["response_format"] == [asked]
    direct = httpx.post(
        f"{upstream.base_url}/audio/transcriptions",
        headers={"authorization": sent.headers["authorization"]},
        data={"model": "whisper-1", "response_format": response_format},
        files={"file": ("talk.wav", audio, "audio/wav")},
    )
    assert via_hub.content == direct.content
    assert via_hub.headers["content-type"].split(";")[0] == direct.headers["content-type"].split(";")[0]
    hub.drain()
    record = UsageRecord.objects.get()
    # Every format is billed at the provider's own count (usage.seconds: whole seconds), whatever was asked.
    assert (record.audio_seconds, record.price, record.usage_estimated) == (Decimal(4), Decimal("0.0008"), False)


def test_a_header_claiming_less_time_than_its_bytes_could_play_is_not_believed():
    from hub.audio import duration

    honest = wav_of(2)
    lying = honest + b"\x80" * 20_000_000  # twenty megabytes "in two seconds"
    assert duration(honest) == Decimal(2)
    assert duration(lying) is None


def test_the_sdk_transcribes_and_translates_through_the_hub(client, hub, upstream, openai_provider):
    transcription_model(openai_provider)
    audio = ("talk.wav", wav_of(1), "audio/wav")
    assert (
        client.audio.transcriptions.create(model="openai/whisper", file=audio).text
        == "Hello from the fake transcriber."
    )
    assert (
        client.audio.translations.create(model="openai/whisper", file=audio).text == "Hello from the fake translator."
    )
    assert [r.path for r in upstream.requests] == ["/v1/audio/transcriptions", "/v1/audio/translations"]


def test_token_billed_transcription_records_tokens_and_seconds(client, hub, upstream, openai_provider):
    transcription_model(openai_provider, "openai/gpt-4o-transcribe", "gpt-4o-transcribe")
    client.audio.transcriptions.create(model="openai/gpt-4o-transcribe", file=("a.wav", wav_of(2), "audio/wav"))
    hub.drain()
    record = UsageRecord.objects.get()
    assert (record.prompt_tokens, record.completion_tokens, record.audio_seconds) == (20, 7, Decimal(2))


def test_a_provider_refusal_is_passed_on_and_free(client, hub, upstream, openai_provider):
    transcription_model(openai_provider, "openai/gpt-4o-transcribe", "gpt-4o-transcribe")
    with pytest.raises(openai.BadRequestError) as raised:
        client.audio.transcriptions.create(
            model="openai/gpt-4o-transcribe", file=("a.wav", wav_of(1), "audio/wav"), response_format="srt"
        )
    assert raised.value.body["param"] == "response_format"
    hub.drain()
    assert UsageRecord.objects.get().price == 0


def test_transcriptions_hold_their_measured_seconds_and_are_charged_to_the_ledger(demo_client, hub):
    from billing.models import LedgerEntry

    per_second("demo/whisper", "0.5", "1")  # the demo organisation has 10 credits
    with pytest.raises(openai.APIStatusError) as raised:
        demo_client.audio.transcriptions.create(model="demo/whisper", file=("a.wav", wav(11), "audio/wav"))
    assert raised.value.status_code == 402
    demo_client.audio.transcriptions.create(
        model="demo/whisper", file=("a.wav", wav(3), "audio/wav"), response_format="text"
    )
    hub.drain()
    charged = UsageRecord.objects.get(status="ok")
    assert (charged.audio_seconds, charged.price) == (Decimal(3), Decimal(3))
    assert LedgerEntry.objects.get(usage_record=charged).amount == Decimal(-3)


def test_a_token_priced_transcription_holds_its_audio_tokens_and_a_transcript(demo_client):
    from hub import credit

    ModelRate.objects.filter(model__public_id="demo/whisper").update(
        input_price=Decimal(6), output_price=Decimal(10), audio_second_price=Decimal("0.001")
    )
    catalogue.invalidate()
    snapshot = catalogue.load()
    held = credit.worst_case({"seconds_bound": Decimal(30)}, snapshot.models["demo/whisper"], snapshot)
    # 30 s: 300 audio tokens at 6 a million, 4096 output tokens at 10 a million, and 30 s at 0.001.
    assert held == Decimal(300 * 6 + 4096 * 10) / 10**6 + Decimal("0.03")


def test_a_transcription_answer_nested_past_the_parser_is_billed_by_estimate_not_a_500():
    """json.loads raises RecursionError (no ValueError) on a body nested deeper than it goes."""
    from providers.adapters import audio

    usage = audio.transcription_usage(b"[" * 200_000, "application/json", {"file": ("a.wav", b"x" * 32000)})
    assert usage.estimated and usage.seconds > 0
