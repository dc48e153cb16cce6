"""One table, every provider family: the openai SDK gets what OpenAI would give, the
provider gets exactly its documented native request, and usage shown equals usage billed.

Parametrized over families (conftest.FAMILIES) × cases (cases.ALL_CASES) × stream or not.
"""

import json

import openai
import pytest

from billing.models import LedgerEntry, ModelRate, UsageRecord
from billing.ratecard import token_amount

from .cases import ALL_CASES, IMAGE_URL


def substitute(messages, image_url):
    return json.loads(json.dumps(messages).replace(IMAGE_URL, image_url))


def collect_stream(chunks) -> dict:
    """Reassemble a stream as the SDK user sees it, checking OpenAI's chunk invariants."""
    assert chunks, "an empty stream"
    ids = {c.id for c in chunks}
    assert len(ids) == 1 and all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices and chunks[0].choices[0].delta.role == "assistant"
    text, calls, finish = "", {}, None
    for chunk in chunks[:-1]:
        assert chunk.choices, "only the last chunk may have no choices (the usage chunk)"
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = entry["id"] or call.id
                entry["name"] = entry["name"] or (call.function.name if call.function else None)
                entry["arguments"] += (call.function.arguments or "") if call.function else ""
            finish = choice.finish_reason or finish
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == [] and usage_chunk.usage is not None, "the usage chunk comes last"
    return {"text": text, "calls": [calls[i] for i in sorted(calls)], "finish": finish, "usage": usage_chunk.usage}


def collect_answer(answer) -> dict:
    message = answer.choices[0].message
    calls = [{"id": c.id, "name": c.function.name, "arguments": c.function.arguments} for c in message.tool_calls or []]
    return {"text": message.content, "calls": calls, "finish": answer.choices[0].finish_reason, "usage": answer.usage}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
def test_conformance(hub, api_key, family, image_url, case, stream):
    family.reset()
    model = family.configure()
    expect = family.overrides.get(case.name, case.expect)
    client = openai.OpenAI(base_url=f"{hub.url}/v1", api_key=api_key, max_retries=0)
    request = dict(model=model, messages=substitute(case.messages, image_url), **case.params)
    if stream:
        request.update(stream=True, stream_options={"include_usage": True})

    if expect.status != 200:
        with pytest.raises(openai.APIStatusError) as raised:
            result = client.chat.completions.create(**request)
            list(result)
        error = raised.value
        assert (error.status_code, error.body.get("code")) == (expect.status, expect.code), error.response.text
        assert set(error.body) == {"message", "type", "param", "code"} and error.body["message"]
        if expect.retry_after:
            assert error.response.headers.get("retry-after") == expect.retry_after
        assert family.upstream_secret not in error.response.text
        hub.drain()
        record = UsageRecord.objects.get()
        assert (record.status, record.http_status, record.price) == ("upstream_error", expect.status, 0)
        assert not LedgerEntry.objects.filter(kind="usage").exists()
    else:
        result = client.chat.completions.create(**request)
        got = collect_stream(list(result)) if stream else collect_answer(result)
        assert (got["text"] or None) == (expect.text or None)
        assert got["finish"] == expect.finish
        assert [(c["name"], json.loads(c["arguments"])) for c in got["calls"]] == [
            list(t) for t in expect.tool_calls
        ] or [(c["name"], json.loads(c["arguments"])) for c in got["calls"]] == list(expect.tool_calls)
        ids = [c["id"] for c in got["calls"]]
        assert all(ids) and len(set(ids)) == len(ids), "every tool call needs its own id"

        usage = got["usage"]
        hub.drain()
        record = UsageRecord.objects.get()
        assert record.status == "ok" and not record.usage_estimated
        assert (record.prompt_tokens, record.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
        cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else 0
        assert record.cache_read_tokens == (cached or 0)
        rate = ModelRate.objects.get(model__public_id=model)
        price = token_amount(record.prompt_tokens, rate.input_price) + token_amount(
            record.completion_tokens, rate.output_price
        )
        assert record.price == price and LedgerEntry.objects.get(kind="usage").amount == -price

    (native,) = family.requests
    family.check_request(case, native, stream)
