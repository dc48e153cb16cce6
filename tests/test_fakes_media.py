"""The fakes' media routes, driven directly (no hub): OpenAI images and audio through the
official openai SDK, Gemini native image generation through httpx; and tests/fakes/media.py."""

import base64
import hashlib
import io
import json
import math
import struct
import wave
import zlib

import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.fakes import openai_upstream
from tests.fakes.gemini_upstream import API_KEY as GEMINI_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.media import Part, audio_duration, parse_multipart, png_of, wav_of
from tests.fakes.server import server_fixture

TRANSCRIPT = "Hello from the fake transcriber."
TRANSLATION = "Hello from the fake translator."


@pytest.fixture
def oa(upstream):
    with openai.OpenAI(base_url=upstream.base_url, api_key=UPSTREAM_KEY, max_retries=0, timeout=5) as c:
        yield c


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """(width, height, raw scanlines) of an RGB PNG, checking the signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour) == (8, 2)
    return width, height, zlib.decompress(chunks[1][1])


# ------------------------------------------------------------------ media helpers
def test_png_of_is_a_valid_png_of_one_colour_from_the_seed():
    width, height, raw = decode_png(png_of("a red fox", 5))
    assert (width, height) == (5, 5)
    colour = hashlib.sha256(b"a red fox").digest()[:3]
    assert raw == (b"\x00" + colour * 5) * 5
    assert png_of("a red fox", 5) == png_of(b"a red fox", 5)  # deterministic, str or bytes
    assert png_of("a red fox") != png_of("a blue fox")
    assert decode_png(png_of("x"))[:2] == (8, 8)


def test_wav_of_is_a_valid_wav_and_audio_duration_reads_it():
    data = wav_of(1.25)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 1, 8000, 10000)
    assert audio_duration(data) == 1.25
    odd = wav_of(0.0015, rate=2000)  # 3 samples: a pad byte after the data chunk
    assert audio_duration(odd) == 3 / 2000 and len(odd) % 2 == 0
    assert audio_duration(wav_of(2, rate=16000)) == 2.0
    assert audio_duration(b"ID3" + b"\x00" * 31997) == 2.0  # not a WAV: len / 16000


def test_parse_multipart_keeps_binary_and_repeated_fields():
    blob = bytes(range(256)) * 3 + b"\r\n--boundary-ish\r\n\r\n\r" + b"\x00\xff"
    request = httpx.Request(
        "POST",
        "http://fake/",
        data={"prompt": "héllo", "timestamp_granularities[]": ["word", "segment"]},
        files=[
            ("image[]", ("a.png", blob, "image/png")),
            ("image[]", ("b.png", b"", "image/png")),
            ("mask", ("m.png", b"\r\n", "image/png")),
        ],
    )
    form, files = parse_multipart(request.headers["content-type"], request.read())
    assert form == {"prompt": ["héllo"], "timestamp_granularities[]": ["word", "segment"]}
    assert files == [
        Part("image[]", "a.png", "image/png", blob),
        Part("image[]", "b.png", "image/png", b""),
        Part("mask", "m.png", "image/png", b"\r\n"),
    ]
    with pytest.raises(ValueError):
        parse_multipart("application/json", b"{}")


# ------------------------------------------------------------------ OpenAI: generations
def test_dall_e_2_url_images_are_served(oa, upstream):
    resp = oa.images.generate(model="dall-e-2", prompt="a red fox", n=2)
    assert len(resp.data) == 2 and resp.created > 0 and resp.usage is None
    for i, item in enumerate(resp.data):
        assert item.b64_json is None and item.revised_prompt is None
        assert item.url.startswith(upstream.base_url.removesuffix("/v1") + "/fake-images/")
        got = httpx.get(item.url)  # no key: OpenAI's image URLs are signed, public links
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert got.content == png_of(f"a red fox|{i}")
    assert resp.data[0].url != resp.data[1].url
    rec = upstream.requests[0]
    assert (rec.method, rec.path, rec.json) == (
        "POST",
        "/v1/images/generations",
        {"model": "dall-e-2", "prompt": "a red fox", "n": 2},
    )
    assert httpx.get(upstream.base_url.removesuffix("/v1") + "/fake-images/nope.png").status_code == 404


def test_default_model_and_b64_json(oa, upstream):
    resp = oa.images.generate(prompt="a red fox", response_format="b64_json")
    (item,) = resp.data
    assert item.url is None and base64.b64decode(item.b64_json) == png_of("a red fox|0")
    assert "model" not in upstream.requests[0].json  # dall-e-2 by default


def test_dall_e_3_revises_the_prompt_and_wants_n_1(oa):
    (item,) = oa.images.generate(model="dall-e-3", prompt="a red fox", response_format="b64_json").data
    assert item.revised_prompt == "Revised: a red fox"
    assert base64.b64decode(item.b64_json) == png_of("a red fox|0")
    with pytest.raises(openai.BadRequestError) as err:
        oa.images.generate(model="dall-e-3", prompt="a red fox", n=2)
    assert err.value.body == {
        "message": "You must provide n=1 for this model.",
        "type": "invalid_request_error",
        "param": "n",
        "code": None,
    }


def test_gpt_image_1_usage_and_fields(oa):
    raw = oa.images.with_raw_response.generate(model="gpt-image-1", prompt="a red fox at dawn", n=2, quality="high")
    assert raw.headers["content-type"] == "application/json"
    body = json.loads(raw.content)
    assert [base64.b64decode(d["b64_json"]) for d in body["data"]] == [
        png_of("a red fox at dawn|0"),
        png_of("a red fox at dawn|1"),
    ]
    assert all(set(d) == {"b64_json"} for d in body["data"])
    assert {k: body[k] for k in ("background", "output_format", "quality", "size")} == {
        "background": "opaque",
        "output_format": "png",
        "quality": "high",
        "size": "1024x1024",
    }
    assert body["usage"] == {
        "input_tokens": 5,
        "input_tokens_details": {"text_tokens": 5, "image_tokens": 0},
        "output_tokens": 2 * 4160,
        "total_tokens": 5 + 2 * 4160,
    }
    resp = oa.images.generate(model="gpt-image-1", prompt="fox", size="1536x1024")
    assert (resp.quality, resp.size, resp.usage.output_tokens, resp.usage.total_tokens) == (
        "medium",
        "1536x1024",
        1056,
        1057,
    )


def test_gpt_image_refuses_response_format(oa):
    with pytest.raises(openai.BadRequestError) as err:
        oa.images.generate(model="gpt-image-1", prompt="fox", response_format="b64_json")
    assert err.value.body == {
        "message": "Unknown parameter: 'response_format'.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "unknown_parameter",
    }


def test_generation_errors(oa, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        oa.images.generate(model="gpt-image-1", prompt="please error:content_policy")
    assert (err.value.code, err.value.type, err.value.param) == (
        "content_policy_violation",
        "image_generation_user_error",
        None,
    )
    assert err.value.body["message"].startswith("Your request was rejected as a result of our safety system.")
    with pytest.raises(openai.RateLimitError) as err:
        oa.images.generate(model="fake-error-429", prompt="fox")
    assert err.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError):
        oa.images.generate(model="fake-error-500", prompt="fox")
    missing = httpx.post(
        f"{upstream.base_url}/images/generations",
        json={"model": "dall-e-2"},
        headers={"authorization": f"Bearer {UPSTREAM_KEY}"},
    )
    assert missing.status_code == 400 and missing.json() == {
        "error": {
            "message": "Missing required parameter: 'prompt'.",
            "type": "invalid_request_error",
            "param": "prompt",
            "code": None,
        }
    }
    unauthorised = httpx.post(f"{upstream.base_url}/images/generations", json={"prompt": "fox"})
    assert unauthorised.status_code == 401


# ------------------------------------------------------------------ OpenAI: edits
def test_edit_one_image(oa, upstream):
    source = png_of("source")
    resp = oa.images.edit(image=("in.png", source, "image/png"), prompt="add a hat", response_format="b64_json")
    (item,) = resp.data
    assert base64.b64decode(item.b64_json) == png_of(f"add a hat|{sha(source)}|0")
    (rec,) = upstream.requests
    assert rec.path == "/v1/images/edits" and rec.headers["content-type"].startswith("multipart/form-data")
    assert rec.files == [Part("image", "in.png", "image/png", source)]
    assert rec.form == {"prompt": ["add a hat"], "response_format": ["b64_json"]}


def test_edit_list_of_images_with_mask_gpt_image_1(oa, upstream):
    first, second, mask = png_of("one") + b"\r\n\x00", png_of("two"), png_of("mask")
    resp = oa.images.edit(
        model="gpt-image-1",
        image=[("a.png", first, "image/png"), ("b.png", second, "image/png")],
        mask=("m.png", mask, "image/png"),
        prompt="merge them",
        n=2,
        quality="low",
    )
    assert [base64.b64decode(d.b64_json) for d in resp.data] == [
        png_of(f"merge them|{sha(first)}|{i}") for i in range(2)
    ]
    assert resp.usage.input_tokens == 2 + 2 * 65 and resp.usage.input_tokens_details.image_tokens == 130
    assert resp.usage.input_tokens_details.text_tokens == 2
    assert (resp.usage.output_tokens, resp.usage.total_tokens) == (2 * 272, 132 + 2 * 272)
    (rec,) = upstream.requests
    # The SDK sends a list of images as repeated "image[]" parts.
    assert [(f.name, f.filename, f.data) for f in rec.files] == [
        ("image[]", "a.png", first),
        ("image[]", "b.png", second),
        ("mask", "m.png", mask),
    ]
    assert rec.form == {"model": ["gpt-image-1"], "prompt": ["merge them"], "n": ["2"], "quality": ["low"]}


def test_edit_needs_an_image(upstream):
    resp = httpx.post(
        f"{upstream.base_url}/images/edits",
        data={"prompt": "add a hat"},
        files={"mask": ("m.png", b"x", "image/png")},
        headers={"authorization": f"Bearer {UPSTREAM_KEY}"},
    )
    assert resp.status_code == 400 and resp.json()["error"] == {
        "message": "Missing required parameter: 'image'.",
        "type": "invalid_request_error",
        "param": "image",
        "code": None,
    }


# ------------------------------------------------------------------ OpenAI: audio
AUDIO = wav_of(2.5)


def test_transcription_json_whisper(oa, upstream):
    raw = oa.audio.transcriptions.with_raw_response.create(model="whisper-1", file=("a.wav", AUDIO, "audio/wav"))
    assert raw.headers["content-type"] == "application/json"
    assert json.loads(raw.content) == {"text": TRANSCRIPT, "usage": {"type": "duration", "seconds": 3}}
    assert raw.parse().text == TRANSCRIPT
    (rec,) = upstream.requests
    assert rec.path == "/v1/audio/transcriptions"
    assert rec.files == [Part("file", "a.wav", "audio/wav", AUDIO)] and rec.form == {"model": ["whisper-1"]}


def test_transcription_json_gpt_4o_reports_tokens(oa):
    raw = oa.audio.transcriptions.with_raw_response.create(model="gpt-4o-transcribe", file=("a.wav", AUDIO))
    assert json.loads(raw.content) == {
        "text": TRANSCRIPT,
        "usage": {
            "type": "tokens",
            "input_tokens": 20,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 20},
            "output_tokens": 7,
            "total_tokens": 27,
        },
    }


@pytest.mark.parametrize(
    "fmt, expected",
    [
        ("text", TRANSCRIPT + "\n"),
        ("srt", f"1\n00:00:00,000 --> 00:00:02,500\n{TRANSCRIPT}\n\n"),
        ("vtt", f"WEBVTT\n\n00:00:00.000 --> 00:00:02.500\n{TRANSCRIPT}\n\n"),
    ],
)
def test_transcription_text_formats(oa, fmt, expected):
    out = oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), response_format=fmt)
    assert out == expected  # the SDK returns the body as a str
    raw = oa.audio.transcriptions.with_raw_response.create(
        model="whisper-1", file=("a.wav", AUDIO), response_format=fmt
    )
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"


def test_transcription_long_srt_timestamp(oa):
    out = oa.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", wav_of(3725.25, rate=100)), response_format="srt"
    )
    assert "--> 01:02:05,250\n" in out


def test_transcription_verbose_json_with_words(oa, upstream):
    resp = oa.audio.transcriptions.create(
        model="whisper-1",
        file=("a.wav", AUDIO),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert (resp.task, resp.language, resp.duration, resp.text) == ("transcribe", "english", 2.5, TRANSCRIPT)
    (segment,) = resp.segments
    assert (segment.id, segment.start, segment.end, segment.text) == (0, 0.0, 2.5, " " + TRANSCRIPT)
    assert segment.tokens == [50364, 2425] and segment.no_speech_prob == 0.01
    assert [(w.word, w.start, w.end) for w in resp.words] == [
        ("Hello", 0.0, 0.5),
        ("from", 0.5, 1.0),
        ("the", 1.0, 1.5),
        ("fake", 1.5, 2.0),
        ("transcriber", 2.0, 2.5),
    ]
    assert resp.usage.type == "duration" and resp.usage.seconds == 3
    assert upstream.requests[0].form["timestamp_granularities[]"] == ["word", "segment"]
    plain = oa.audio.transcriptions.create(model="whisper-1", file=("a.wav", AUDIO), response_format="verbose_json")
    assert plain.words is None and len(plain.segments) == 1


def test_gpt_4o_transcribe_refuses_other_formats(oa):
    with pytest.raises(openai.BadRequestError) as err:
        oa.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", AUDIO), response_format="srt")
    assert err.value.body == {
        "message": "response_format 'srt' is not compatible with model 'gpt-4o-transcribe'. Use 'json' or 'text' "
        "instead.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "unsupported_value",
    }
    assert (
        oa.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=("a.wav", AUDIO), response_format="text")
        == TRANSCRIPT + "\n"
    )


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # the SDK marks translations deprecated
def test_translation(oa, upstream):
    raw = oa.audio.translations.with_raw_response.create(model="whisper-1", file=("b.mp3", b"ID3" + b"\x01" * 39997))
    assert json.loads(raw.content) == {"text": TRANSLATION}  # no usage on translations
    assert (
        oa.audio.translations.create(model="whisper-1", file=("a.wav", AUDIO), response_format="text")
        == TRANSLATION + "\n"
    )
    verbose = oa.audio.translations.create(model="whisper-1", file=("a.wav", AUDIO), response_format="verbose_json")
    assert (verbose.task, verbose.duration, verbose.segments[0].end) == ("translate", 2.5, 2.5)
    assert upstream.requests[0].path == "/v1/audio/translations"
    assert upstream.requests[0].files[0].data == b"ID3" + b"\x01" * 39997


def test_audio_errors(oa, upstream, monkeypatch):
    monkeypatch.setattr(openai_upstream, "MAX_AUDIO_BYTES", 1000)
    with pytest.raises(openai.APIStatusError) as err:
        oa.audio.transcriptions.create(model="whisper-1", file=("big.wav", wav_of(0.2)))  # 1600 samples
    assert err.value.status_code == 413
    read = len(upstream.requests[-1].raw)
    assert err.value.body == {
        "message": f"Maximum content size limit (1000) exceeded ({read} bytes read)",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert oa.audio.transcriptions.create(model="whisper-1", file=("ok.wav", wav_of(0.1))).text == TRANSCRIPT
    with pytest.raises(openai.RateLimitError):
        oa.audio.transcriptions.create(model="fake-error-429", file=("a.wav", wav_of(0.1)))
    missing = httpx.post(
        f"{upstream.base_url}/audio/transcriptions",
        data={"model": "whisper-1"},
        files={"other": ("a.wav", wav_of(0.1))},
        headers={"authorization": f"Bearer {UPSTREAM_KEY}"},
    )
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "file"


def test_audio_duration_bills_whole_seconds():
    assert math.ceil(audio_duration(AUDIO)) == 3


# ------------------------------------------------------------------ Gemini: native image generation
gemini_server = server_fixture(lambda: FakeGemini())


@pytest.fixture
def gemini(gemini_server):
    gemini_server.reset()
    with httpx.Client(base_url=gemini_server.base_url, headers={"x-goog-api-key": GEMINI_KEY}, timeout=5) as c:
        yield c


IMAGE_MODEL = "gemini-2.5-flash-image"


def generate(client, body, model=IMAGE_MODEL, method="generateContent", **params):
    return client.post(f"/v1beta/models/{model}:{method}", json=body, params=params)


def test_gemini_image_and_text(gemini, gemini_server):
    resp = generate(
        gemini,
        {
            "contents": [{"role": "user", "parts": [{"text": "a cat in a hat"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}},
        },
    )
    assert resp.status_code == 200, resp.text
    (candidate,) = resp.json()["candidates"]
    text, image = candidate["content"]["parts"]
    assert text == {"text": "Here is your image."} and candidate["finishReason"] == "STOP"
    assert image["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(image["inlineData"]["data"]) == png_of("a cat in a hat|16:9")
    assert resp.json()["usageMetadata"] == {
        "promptTokenCount": 5,
        "candidatesTokenCount": 1290,
        "totalTokenCount": 1295,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290}],
    }
    assert gemini_server.requests[0].json["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}


def test_gemini_image_edit_image_only(gemini):
    source = png_of("source")
    resp = generate(
        gemini,
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "add a hat"},
                        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(source).decode()}},
                    ],
                }
            ],
            "generationConfig": {"responseModalities": ["IMAGE"]},
        },
    )
    assert resp.status_code == 200, resp.text
    (part,) = resp.json()["candidates"][0]["content"]["parts"]
    assert base64.b64decode(part["inlineData"]["data"]) == png_of(f"add a hat|{sha(source)}|1:1")
    usage = resp.json()["usageMetadata"]
    assert (usage["promptTokenCount"], usage["totalTokenCount"]) == (3 + 258, 3 + 258 + 1290)


def test_gemini_image_streamed(gemini):
    resp = generate(
        gemini,
        {
            "contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
        },
        method="streamGenerateContent",
        alt="sse",
    )
    events = [json.loads(line[6:]) for line in resp.text.split("\r\n\r\n") if line.startswith("data: ")]
    assert [list(p) for e in events for p in e["candidates"][0]["content"]["parts"]] == [["text"], ["inlineData"]]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    assert events[-1]["usageMetadata"]["candidatesTokenCount"] == 1290


def test_gemini_bad_aspect_ratio(gemini):
    resp = generate(
        gemini,
        {
            "contents": [{"role": "user", "parts": [{"text": "a cat"}]}],
            "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "7:3"}},
        },
    )
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert "aspect_ratio must be one of '1:1', '2:3'" in error["message"] and "'21:9'" in error["message"]


def test_gemini_text_models_still_answer_text(gemini):
    resp = generate(gemini, {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}]}, model="gemini-2.5-flash")
    assert resp.json()["candidates"][0]["content"]["parts"] == [{"text": "Hello! You said: hi there"}]
    text_only = generate(
        gemini,
        {
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"responseModalities": ["TEXT"]},
        },
    )
    assert text_only.json()["candidates"][0]["content"]["parts"] == [{"text": "Hello! You said: hi"}]
