"""One structured line per gateway request (hub/accesslog.py): who, which model, what it cost, how long it took."""

import json
import logging
import subprocess
import time

import httpx
import openai
import pytest

from hub.logging import JsonFormatter
from tests.conftest import UPSTREAM_KEY
from tests.factories import add_model
from tests.processes import ROOT, VENV_BIN, runtime_env

FIELDS = {
    "request_id",
    "organization",
    "key_prefix",
    "endpoint",
    "model",
    "served_model",
    "provider",
    "stream",
    "status",
    "http_status",
    "tokens_in",
    "tokens_out",
    "price",
    "latency_ms",
    "ttft_ms",
}


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger="hub.requests")

    def wait(count=1, timeout=5.0) -> list[logging.LogRecord]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in caplog.records if r.name == "hub.requests"]
            if len(found) >= count:
                time.sleep(0.1)  # a second line for the same request would show up here
                return [r for r in caplog.records if r.name == "hub.requests"]
            time.sleep(0.02)
        raise AssertionError("no request line was logged")

    return wait


def test_it_logs_one_line_for_an_answered_request_in_text_and_json(client, api_key, organization, lines):
    answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}])
    [record] = lines()
    fields = record.request
    assert set(fields) == FIELDS
    assert fields["organization"] == organization.pk and api_key.startswith("sk-hub-" + fields["key_prefix"])
    assert len(fields["key_prefix"]) == 6
    assert fields["model"] == "gpt-4o-mini" and fields["served_model"] == "openai/gpt-4o-mini"
    assert fields["provider"] == "openai" and fields["status"] == "ok" and fields["http_status"] == 200
    assert fields["tokens_in"] == answer.usage.prompt_tokens and fields["tokens_out"] == answer.usage.completion_tokens
    assert fields["latency_ms"] >= 0 and fields["request_id"].startswith("req_")
    text = record.getMessage()
    assert f"request_id={fields['request_id']}" in text and "model=gpt-4o-mini" in text and "status=ok" in text
    assert f"price={fields['price']}" in text and "latency_ms=" in text
    assert api_key not in text and "hi there" not in text and answer.choices[0].message.content not in text
    line = json.loads(JsonFormatter().format(record))
    assert line["logger"] == "hub.requests" and line["time"].endswith("+00:00")
    assert {k: line[k] for k in FIELDS} == json.loads(json.dumps(fields))


def test_it_logs_a_streamed_request_with_its_time_to_first_token(client, lines):
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    [record] = lines()
    assert record.request["stream"] is True and record.request["status"] == "ok"
    assert record.request["ttft_ms"] is not None and 0 <= record.request["ttft_ms"] <= record.request["latency_ms"]


def test_it_logs_an_upstream_error(hub, api_key, openai_provider, lines):
    add_model(openai_provider, "openai/broken", "fake-error-500")
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="openai/broken", messages=[{"role": "user", "content": "hi"}])
    [record] = lines()
    assert record.request["status"] == "upstream_error" and record.request["http_status"] >= 500
    assert record.request["served_model"] == "openai/broken" and record.request["price"] == "0"
    assert UPSTREAM_KEY not in record.getMessage()
    # No route served: the line, the record and the metrics name the provider that failed, at no charge.
    assert record.request["provider"] == "openai"
    usage = wait_for_record(record.request["request_id"])
    assert usage.provider_id == openai_provider.pk and usage.credential_id is not None and usage.price == 0
    assert usage.served_model == "openai/broken"


def wait_for_record(request_id: str, timeout: float = 5.0):
    from billing.models import UsageRecord

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = UsageRecord.objects.filter(request_id=request_id).first()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no usage record {request_id}")


def test_it_logs_a_refused_request_for_an_unknown_model(client, lines):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no/such-model", messages=[{"role": "user", "content": "hi"}])
    [record] = lines()
    assert record.request["model"] == "no/such-model" and record.request["http_status"] == 404
    assert record.request["provider"] == "" and record.request["tokens_out"] == 0


def test_it_logs_a_client_that_leaves_mid_stream_once(hub, api_key, openai_provider, upstream, lines):
    add_model(openai_provider, "openai/slow", "fake-slow")
    body = {"model": "openai/slow", "messages": [{"role": "user", "content": "long story"}], "stream": True}
    with httpx.stream(
        "POST", f"{hub.url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {api_key}"}, timeout=10
    ) as response:
        for n, _line in enumerate(response.iter_lines()):
            if n == 6:
                break
    assert upstream.wait_for_disconnect(timeout=5)
    [record] = lines()
    assert record.request["status"] == "cancelled" and record.request["stream"] is True


def test_it_logs_a_request_refused_for_its_key_without_the_key(hub, lines):
    wrong = "sk-hub-" + "w" * 40
    response = httpx.post(
        f"{hub.url}/v1/chat/completions", json={"model": "m"}, headers={"authorization": f"Bearer {wrong}"}
    )
    assert response.status_code == 401
    [record] = lines()
    fields = record.request
    assert set(fields) == FIELDS
    assert fields["request_id"] == response.headers["x-request-id"]
    assert fields["status"] == "invalid_api_key" and fields["http_status"] == 401
    assert fields["organization"] is None and fields["key_prefix"] == "" and fields["endpoint"] == "chat.completions"
    assert "w" * 10 not in record.getMessage()


def test_a_model_name_with_spaces_is_quoted_in_the_text_line(client, lines):
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model='a b="c"', messages=[{"role": "user", "content": "hi"}])
    [record] = lines()
    assert 'model="a b=\\"c\\""' in record.getMessage()


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_log_format_json_writes_every_record_as_one_scrubbed_json_object(tmp_path, log_format):
    code = (
        "import django, logging; django.setup();"
        "logging.getLogger('hub.anything').warning('upstream said %s', 'sk-proj-abcdefghijklmnop1234')"
    )
    env = runtime_env(tmp_path / "var", LOG_FORMAT=log_format, DJANGO_SETTINGS_MODULE="hub.settings")
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    [line] = [line for line in done.stderr.splitlines() if "upstream said" in line]
    assert "sk-proj-abcdefghijklmnop1234" not in line
    if log_format == "json":
        record = json.loads(line)
        assert record["level"] == "WARNING" and record["logger"] == "hub.anything"
        assert record["message"].startswith("upstream said ") and record["time"]
    else:
        assert " WARNING hub.anything upstream said " in line


def test_an_unknown_log_format_is_refused(tmp_path):
    env = runtime_env(tmp_path / "var", LOG_FORMAT="xml")
    done = subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0 and "LOG_FORMAT must be text or json" in done.stderr
