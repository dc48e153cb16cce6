"""The attack: an upstream (a proxy, a self-hosted server) quotes the hub's credential back in an error.

Each fake's echo mode (tests/fakes/server.py echo_of) answers 400, 401, 403,
404, 429, 500 and 503, and breaks a stream with an error event, quoting the
credential it was sent with: as a header, bare, in a URL's key= and base64'd. Nothing a tenant, an
operator or a log reader can see may then hold the canary: not the SDK's
answers, not UsageRecord.error, not a single Redis key, not the admin's
credential list, not a log line.
"""

import base64
import json
import logging

import httpx
import openai
import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from billing.models import UsageRecord
from providers.models import Credential
from providers.redaction import REDACTED, scrub
from tests import factories
from tests.factories import add_model
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.bedrock_upstream import FakeBedrock
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.media import wav_of
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.server import server_fixture

OPENAI_CANARY = "sk-proj-CANARY7f3kQ9xLm2Vb8Nw4Tz6Ry1Hs5Jd0Gc"
GEMINI_CANARY = "AIzaCANARYq8Wm3Xk7Lp2Nv9Bt4Yr6Hs1Jd5Fg0"
ANTHROPIC_CANARY = "sk-ant-api03-CANARYm4Qx8Lk2Vb7Nw3Tz9Ry5Hs1Jd6Gc0"
AWS_KEY_ID_CANARY = "AKIACANARY0000000001"
AWS_SECRET_CANARY = "wJalrCANARYK7MDENGbPxRfiCYEXAMPLEKEY0001"
AWS_TOKEN_CANARY = "FwoGZXIvYXdzCANARYEJr//////////wEaDMx1c2VzdGVkIjYwVGVzdA"
STATUSES = [400, 401, 403, 404, 429, 500, 503]


def needles(*canaries: str) -> list[str]:
    """What must never be seen of a canary: itself, a long piece of it, its base64."""
    out = []
    for canary in canaries:
        out += [canary, canary[6:18], base64.b64encode(canary.encode()).decode()[:24]]
    return out


fakes = server_fixture(
    lambda: {
        "openai": FakeOpenAI(api_key=OPENAI_CANARY),
        "gemini": FakeGemini(api_key=GEMINI_CANARY),
        "anthropic": FakeAnthropic(api_key=ANTHROPIC_CANARY),
        "bedrock": FakeBedrock(AWS_KEY_ID_CANARY, AWS_SECRET_CANARY, AWS_TOKEN_CANARY),
    }
)


def _provider(kind: str, fake) -> tuple[Credential, str, list[str]]:
    """The kind's provider with the canary credential; (credential, public model id, needles)."""
    if kind == "openai":
        fields = {"kind": "openai_compatible", "preset": "openai"}
        secret, upstream, canaries = OPENAI_CANARY, "gpt-4o-mini", [OPENAI_CANARY]
    elif kind == "gemini":
        fields = {"kind": "gemini"}
        secret, upstream, canaries = GEMINI_CANARY, "gemini-2.5-flash", [GEMINI_CANARY]
    elif kind == "anthropic":
        fields = {"kind": "anthropic"}
        secret, upstream, canaries = ANTHROPIC_CANARY, "claude-test", [ANTHROPIC_CANARY]
    else:
        fields = {"kind": "bedrock", "options": {"region": "us-east-1"}}
        secret, upstream = fake.secret, "anthropic.claude-3-haiku-20240307-v1:0"
        canaries = [AWS_KEY_ID_CANARY, AWS_SECRET_CANARY, AWS_TOKEN_CANARY]
    provider = factories.provider(kind, base_url=fake.base_url, **fields)
    credential = factories.credential(provider, secret)
    add_model(provider, f"{kind}/canary", upstream)
    return credential, f"{kind}/canary", needles(*canaries)


@pytest.fixture
def operator(transactional_db):
    browser = Client()
    browser.force_login(User.objects.create_superuser("operator", "op@example.com", "pw"))
    return browser


def _everything_stored(operator, credential) -> list[str]:
    """Every Redis key of the hub's Redis db, the routing state of the credential, the admin's credential list."""
    from hub import route_health

    seen = [repr(route_health.store().read(credential.pk))]
    if settings.REDIS_URL:
        import redis

        # Django's cache (allauth's rate limits) keeps pickles there: read as text, the odd byte escaped, so a
        # secret pickled inside one still shows.
        r = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True, encoding_errors="backslashreplace")
        readers = {
            "string": r.get,
            "hash": r.hgetall,
            "list": lambda k: r.lrange(k, 0, -1),
            "set": r.smembers,
            "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
            "stream": lambda k: r.xrange(k),
        }
        for key in r.scan_iter("*"):
            kind = r.type(key)
            seen.append(f"{key} = {readers.get(kind, lambda k: kind)(key)!r}")
    page = operator.get("/admin/providers/credential/")
    assert page.status_code == 200
    seen.append(page.content.decode())
    return seen


@pytest.mark.parametrize("kind", ["openai", "gemini", "anthropic", "bedrock"])
def test_an_upstream_that_echoes_the_credential_leaks_it_nowhere(kind, fakes, hub, api_key, operator, caplog, capfd):
    from hub import route_health

    caplog.set_level(logging.DEBUG)
    credential, model, secret = _provider(kind, fakes[kind])
    secret += needles(api_key)  # the tenant's own hub key: shown once, at its creation, never again
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    seen, stored, statuses = [], [], []
    for status in STATUSES:
        with pytest.raises(openai.APIStatusError) as raised:
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": f"echo:{status}"}])
        seen += [raised.value.response.text, str(raised.value)]
        statuses.append(raised.value.status_code)
        stored += _everything_stored(operator, credential)
        route_health.reset()  # three failures in a row would take the credential out: the next status must reach it

    chunks = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": "echo:stream"}]
        ):
            chunks.append(chunk.model_dump_json())
    seen += [*chunks, str(raised.value), json.dumps(raised.value.body)]
    raw = httpx.post(
        f"{hub.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {api_key}"},
        timeout=10,
        json={"model": model, "stream": True, "messages": [{"role": "user", "content": "echo:stream"}]},
    )
    seen.append(raw.text)
    stored += _everything_stored(operator, credential)
    hub.drain()
    records = list(UsageRecord.objects.values_list("error", flat=True))
    logged = [r.getMessage() + (r.exc_text or "") for r in caplog.records] + list(capfd.readouterr())

    # The attack did run: every answer is an error, each recorded with its (scrubbed) words.
    assert len(records) == len(STATUSES) + 2 and all(records), records
    assert 200 not in statuses and "Hello" in "".join(chunks)
    for place, texts in (("answers", seen), ("usage records", records), ("redis/admin", stored), ("logs", logged)):
        for text in texts:
            for needle in secret:
                assert needle not in text, f"{kind}: {needle!r} leaked in {place}: {text[:2000]}"
    assert any(REDACTED in text for text in seen), "the echo never reached the hub"


def assert_recorded_free_and_clean(hub, answer: str, secret) -> None:
    """The one request's record is an upstream error, free, and neither it nor the answer holds the secret."""
    hub.drain()
    record = UsageRecord.objects.get()
    assert record.status == "upstream_error" and record.price == 0
    for text in (answer, record.error):
        for needle in secret:
            assert needle not in text


def test_an_error_sent_as_a_200_is_an_error_and_is_scrubbed(fakes, hub, api_key):
    """A proxy that reports a failure as 200 {"error": …}: not relayed (nor billed) as an answer."""
    _credential, model, secret = _provider("openai", fakes["openai"])
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "echo:200"}])
    assert raised.value.status_code == 502 and REDACTED in raised.value.response.text
    assert_recorded_free_and_clean(hub, raised.value.response.text, secret)


def test_a_probe_that_meets_an_echo_keeps_no_trace(fakes, hub, operator):
    """The admin's health check: its stored error, the routing state and both admin columns stay clean."""
    from hub import health_checks

    credential, _, secret = _provider("openai", fakes["openai"])
    add_model(credential.provider, "openai/probe", "fake-echo-500").routes.update(priority=-1)  # the one probed
    health_checks.check(credential)
    credential.refresh_from_db()
    assert credential.last_check_ok is False and REDACTED in credential.last_check_error
    page = operator.get(f"/admin/providers/credential/{credential.pk}/change/").content.decode()
    for text in [credential.last_check_error, page, *_everything_stored(operator, credential)]:
        for needle in secret:
            assert needle not in text


def test_scrub_removes_every_form_of_the_credential_and_anything_shaped_like_a_key():
    aws = json.dumps({"access_key_id": AWS_KEY_ID_CANARY, "secret_access_key": AWS_SECRET_CANARY})
    for text, secret in [
        (f"Authorization: Bearer {OPENAI_CANARY}", OPENAI_CANARY),
        (f"basic {base64.b64encode(OPENAI_CANARY.encode()).decode()}", OPENAI_CANARY),
        (f"masked {OPENAI_CANARY[:20]}...", OPENAI_CANARY),  # a long enough piece
        (f"GET /v1beta/models/x?alt=sse&key={GEMINI_CANARY}", GEMINI_CANARY),
        (f"signed by {AWS_KEY_ID_CANARY} with {AWS_SECRET_CANARY.replace('/', '%2F')}", aws),
    ]:
        clean = scrub(text, secret)
        assert REDACTED in clean and OPENAI_CANARY[8:18] not in clean and "CANARY" not in clean, clean
    # Without knowing the secret: whatever looks like a key or a token.
    for leaked in [
        "sk-hub-0123456789abcdefghijkl",
        "sk-ant-api03-abcdefghijkl",
        "AIzaSyA1234567890abcdefgh",
        "AKIAIOSFODNN7EXAMPLE",
        "Bearer eyJhbGciOiJIUzI1NiJ9.e30",
        "x-api-key: whatever-it-is-1234",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    ]:
        assert scrub(f"echoed {leaked} back") != f"echoed {leaked} back", leaked
    # …and ordinary provider words stay as they are.
    for words in [
        "The model `accounts/fireworks/models/llama-v3p1-405b-instruct` does not exist",
        "Rate limit reached for gpt-4o-mini-2024-07-18 on requests per min (RPM): Limit 3, Used 3",
        "Meta-Llama-3-70B-Instruct-Turbo is overloaded (request req_0123456789abcdef0123456789abcdef)",
    ]:
        assert scrub(words, OPENAI_CANARY) == words


ENDPOINTS = {  # endpoint -> (catalogue kind, the call with the SDK)
    "embeddings": ("embedding", lambda c, m: c.embeddings.create(model=m, input="hi")),
    "speech": ("audio", lambda c, m: c.audio.speech.create(model=m, voice="alloy", input="hi").read()),
    "transcription": (
        "transcription",
        lambda c, m: c.audio.transcriptions.create(model=m, file=("a.wav", wav_of(1.0), "audio/wav")),
    ),
    "images": ("image", lambda c, m: c.images.generate(model=m, prompt="a fox", size="1024x1024")),
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_error_sent_as_a_200_is_an_error_and_is_scrubbed_on_every_endpoint(endpoint, fakes, hub, api_key):
    """Chat saw a 200 {"error": …} for what it is; transcriptions and speech relayed it to the tenant as it came,
    credential and all (embeddings and images refused it, but unexplained). Now every endpoint answers it as
    the provider's failure, scrubbed, with its record, and free."""
    from providers.models import CatalogModel, ModelRoute

    _credential, model, secret = _provider("openai", fakes["openai"])
    CatalogModel.objects.filter(public_id=model).update(kind=ENDPOINTS[endpoint][0])
    ModelRoute.objects.filter(model__public_id=model).update(upstream_name="fake-echo-200")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        ENDPOINTS[endpoint][1](client, model)
    assert raised.value.status_code == 502 and REDACTED in raised.value.response.text
    assert raised.value.body["code"] == "proxy_error"
    assert_recorded_free_and_clean(hub, raised.value.response.text, secret)
