"""One line per gateway request, written when its usage is metered (hub/relay.py, Call.record).

The line carries what an operator greps for (who, which model, what it cost, how long it took) and
nothing a client sent or got: no prompt, no answer, no key (only its visible prefix). It is a plain
log record on the "hub.requests" logger, so LOG_FORMAT=json (hub/logging.py) makes it one JSON object.
"""

import json
import logging

from accounts.models import ApiKey
from billing.usage import UsageEvent

logger = logging.getLogger("hub.requests")


def request_finished(event: UsageEvent, *, key_prefix: str, provider: str) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    fields = {
        "request_id": event.request_id,
        "organization": event.organization_id,
        # Without the "sk-hub-" every key starts with: the rest would look like a key to the log's scrub.
        "key_prefix": key_prefix.removeprefix(ApiKey.PREFIX),
        "endpoint": event.endpoint,
        "model": event.model_name,
        "served_model": event.served_model,
        "provider": provider,
        "stream": event.stream,
        "status": event.status,
        "http_status": event.http_status,
        "tokens_in": event.prompt_tokens,
        "tokens_out": event.completion_tokens,
        "price": str(event.price),
        "latency_ms": event.latency_ms,
        "ttft_ms": event.first_token_ms,
    }
    _write(fields)


# A refused request's line: every field of request_finished's, in its order, with nothing to say.
_NOTHING = {
    "request_id": "",
    "organization": None,
    "key_prefix": "",
    "endpoint": "",
    "model": "",
    "served_model": "",
    "provider": "",
    "stream": False,
    "status": "",
    "http_status": 0,
    "tokens_in": 0,
    "tokens_out": 0,
    "price": "0",
    "latency_ms": 0,
    "ttft_ms": None,
}


def request_unauthenticated(request_id: str, endpoint: str, http_status: int, code: str | None) -> None:
    """A request refused before it had an organisation (no key, a wrong or expired one): it has no usage record,
    so this line (with the refusal's code as its status) is what shows it. Nothing of the key sent is logged."""
    if not logger.isEnabledFor(logging.INFO):
        return
    refused = {"request_id": request_id, "endpoint": endpoint, "status": code or "unauthenticated"}
    _write(_NOTHING | refused | {"http_status": http_status})


def _write(fields: dict) -> None:
    # The text form: key=value pairs, values quoted only when they need it (a model name is client input).
    text = " ".join(f"{name}={_text(value)}" for name, value in fields.items())
    logger.info("request %s", text, extra={"request": fields})


def _text(value) -> str:
    if value is None:
        return "-"
    text = str(value)
    if not text or any(c in text for c in ' "=\\') or not text.isprintable():
        return json.dumps(text)
    return text
