"""The gateway API's OpenAPI document (hub/openapi.py): valid OpenAPI 3.1, true to hub/urls.py both ways, served
at /v1/openapi.json with its Swagger UI at /docs/api/, and the live hub fuzzed with it (schemathesis).

The fuzzing run sends every operation schemathesis's examples, coverage cases (boundaries, wrong types,
methods the path lacks, no key) and a bounded, derandomized run of generated cases, with the demo provider's
key; a case meant to be valid asks for the demo model of its endpoint, so that real answers (not only refusals)
are checked against the document: no 5xx, and every status, content type, header and body as documented.
"""

import io
import json
import re

import anthropic
import httpx
import jsonschema
import pytest
import schemathesis
from django.core.management import call_command
from django.urls import URLPattern, get_resolver
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from hub import openapi
from tests.browser import screenshot
from tests.factories import add_model
from tests.fakes.anthropic_upstream import API_KEY as ANTHROPIC_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic

EXAMPLES = 12  # generated per operation, beyond the examples and coverage cases: the run stays near a minute
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
    ignored_auth,
]
# The demo provider's model for each endpoint (hub/management/commands/hub_bootstrap.py).
DEMO_MODEL = {
    "/v1/chat/completions": "demo/echo",
    "/v1/embeddings": "demo/embed",
    "/v1/audio/speech": "demo/tts",
    "/v1/images/generations": "demo/image",
    "/v1/images/edits": "demo/image",
    "/v1/audio/transcriptions": "demo/whisper",
    "/v1/audio/translations": "demo/whisper",
    "/v1/messages": "demo/echo",  # once served (hub/openapi.py documents it then)
    "/v1/messages/count_tokens": "demo/echo",
}
GATEWAY = re.compile(r"^(v1|api)/")

schema = schemathesis.openapi.from_dict(openapi.document())


def gateway_routes() -> dict[str, URLPattern]:
    """hub/urls.py's gateway patterns, each as an OpenAPI path: v1/models/<path:model_id> is /v1/models/{model_id}."""
    return {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(p.pattern)): p
        for p in get_resolver().url_patterns
        if isinstance(p, URLPattern) and GATEWAY.match(str(p.pattern))
    }


def test_the_document_is_valid_openapi_3_1():
    document = openapi.document()
    assert document["openapi"] == "3.1.0"
    schema.validate()  # schemathesis's OpenAPI 3.1 meta-schema
    for body in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(body)
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', str(document).replace("'", '"'))
    assert refs and set(refs) <= set(document["components"]["schemas"])


def test_every_v1_route_is_documented_and_every_documented_path_is_served():
    routes = gateway_routes()
    documented = set(openapi.document()["paths"])
    assert documented == {path for path in routes if path.startswith("/v1/")}
    # An /api/ path is another name of a /v1/ one: the same view.
    v1_views = {routes[path].callback for path in documented}
    aliases = {path: p.callback for path, p in routes.items() if path.startswith("/api/")}
    assert aliases and all(view in v1_views for view in aliases.values()), aliases


def test_an_endpoint_is_documented_only_once_its_url_is_registered():
    assert openapi.served("/v1/models/{model_id}") and not openapi.served("/v1/nothing/{here}")
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        assert (path in openapi.document()["paths"]) == openapi.served(path)
    assert "/v1/messages" in openapi.PATHS  # written already, served once the Messages API's URLs are


def test_every_error_status_is_answered_in_openais_shape():
    chat = openapi.document()["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) == {"200", "400", "401", "402", "403", "404", "405", "413", "429", "500", "502", "503", "504"}
    error = openapi.document()["components"]["schemas"]["Error"]
    jsonschema.validate(
        {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}, error
    )
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"detail": "Not found."}, error)


def test_the_document_is_served_without_a_key_and_cacheable(hub):
    response = httpx.get(f"{hub.url}/v1/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert response.json() == openapi.document()
    assert "public" in response.headers["cache-control"]
    again = httpx.get(f"{hub.url}/v1/openapi.json", headers={"if-none-match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content
    refused = httpx.post(f"{hub.url}/v1/openapi.json")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD"
    assert refused.json()["error"]["code"] == "method_not_allowed"


def test_the_docs_page_is_swagger_ui_from_the_hub_on_the_gateway_document(hub):
    page = httpx.get(f"{hub.url}/docs/api/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    html = page.text
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "https://" not in html
    assert "style-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(f"{hub.url}/docs/api/?script")
    assert script.status_code == 200 and '"/v1/openapi.json"' in script.text


@pytest.fixture
def demo_key(hub):
    out = io.StringIO()
    call_command("hub_bootstrap", "--key-only", stdout=out)
    return out.getvalue().strip()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
def test_no_generated_request_gets_a_server_error_or_an_undocumented_answer(case, hub, demo_key):
    model = DEMO_MODEL.get(case.path)
    positive = case.meta.generation.mode == GenerationMode.POSITIVE
    if model and positive and isinstance(case.body, dict):
        case.body["model"] = model
    if positive and "model_id" in (case.path_parameters or {}):
        case.path_parameters["model_id"] = "demo/echo"  # one the key may use: a slash in the path, too
    response = case.call(base_url=hub.url, headers={"Authorization": f"Bearer {demo_key}"}, timeout=30)
    case.validate_response(response, checks=CHECKS)


def streamed_events(hub, key: str, model: str) -> list[str]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream("POST", f"{hub.url}/v1/chat/completions", json=body, headers={"x-api-key": key}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        return [line.removeprefix("data: ") for line in response.iter_lines() if line.startswith("data: ")]


def test_a_demo_chat_completion_streams_as_documented(hub, demo_key):
    """Each event held to ChatCompletionChunk here too (jsonschema, apart from schemathesis's own reading)."""
    events = streamed_events(hub, demo_key, "demo/echo")
    assert events[-1] == "[DONE]" and len(events) > 2
    for event in events[:-1]:
        conforms("ChatCompletionChunk", json.loads(event))


def test_a_stream_cut_by_the_provider_ends_in_a_documented_error_event(hub, api_key, openai_provider):
    add_model(openai_provider, "openai/cut", "fake-cut")
    *chunks, last = streamed_events(hub, api_key, "openai/cut")
    for event in chunks:
        conforms("ChatCompletionChunk", json.loads(event))
    conforms("Error", json.loads(last))


@pytest.mark.browser
def test_the_docs_page_renders_the_gateway_api_in_a_browser(page):
    """Swagger UI under the site's Content-Security-Policy: no refused script or style (the `page` fixture fails
    on a console error), every operation of the document listed."""
    page.goto("/docs/api/")
    page.locator(".swagger-ui .info").wait_for()
    assert page.get_by_text("The hub: gateway API").count()
    page.locator(".opblock").first.wait_for()
    listed = set(page.locator(".opblock-summary-path").evaluate_all("nodes => nodes.map(n => n.dataset.path)"))
    assert listed == set(openapi.document()["paths"])
    screenshot(page, "gateway-docs")


def conforms(name: str, instance) -> None:
    schemas = openapi.document()["components"]["schemas"]
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
    ).validate(instance)


def test_the_messages_schemas_are_what_anthropics_sdk_sends_and_reads():
    """/v1/messages is documented before it is served: its schemas held to Anthropic's own SDK, against the fake
    Anthropic API (tests/fakes/anthropic_upstream.py) the adapter's tests trust."""
    fake = FakeAnthropic().start()
    try:
        client = anthropic.Anthropic(base_url=fake.base_url, api_key=ANTHROPIC_KEY, max_retries=0)
        sent = {
            "model": "claude-test",
            "max_tokens": 64,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        }
        answer = client.messages.with_raw_response.create(**sent)
        conforms("AnthropicMessagesRequest", fake.requests[-1].json)
        conforms("AnthropicMessage", answer.http_response.json())
        refused = client.messages.with_raw_response.create(
            **{**sent, "messages": [{"role": "user", "content": "error:rate_limit"}]}
        )
    except anthropic.APIStatusError as error:
        conforms("AnthropicError", error.response.json())
    else:
        raise AssertionError(f"the fake did not refuse: {refused.http_response.status_code}")
    finally:
        fake.stop()
    conforms("AnthropicCountTokensRequest", {k: v for k, v in sent.items() if k != "max_tokens"})
    conforms("AnthropicTokenCount", {"input_tokens": 12})
    with pytest.raises(jsonschema.ValidationError):
        conforms("AnthropicMessagesRequest", {k: v for k, v in sent.items() if k != "max_tokens"})
