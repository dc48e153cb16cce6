"""Stripe, played on loopback: localstripe in a subprocess, and recorded answers for what it lacks.

- `LocalStripe` runs localstripe (customers, payment methods, payment
  intents, refunds, signed webhooks) on a free loopback port. Run as
  `python -m tests.fakes.stripe_server PORT` it is that subprocess.
- `RecordedStripe` answers POST /v1/checkout/sessions (localstripe has no
  Checkout) with a recorded checkout.session object, filled in from the
  request, and keeps every request for the test to inspect.
- `sign` signs a payload the way Stripe does, for events the tests write.
"""

import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl

import httpx

from tests.fakes.server import FakeUpstream, free_port, wait_until_answers

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A Stripe-Signature header: t=…,v1=HMAC-SHA256(secret, "t.payload")."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def event(type: str, obj: dict, event_id: str | None = None) -> dict:
    """An event envelope as Stripe sends it."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": type,
    }


class LocalStripe:
    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "LocalStripe":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.stripe_server", str(self.port)],
            cwd=Path(__file__).resolve().parent.parent.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_answers(self.url, alive=lambda: self.process.poll() is None, what="localstripe")
        return self

    def webhook(self, url: str, secret: str, events: list[str]) -> None:
        """Have localstripe deliver these events, signed with `secret`, to `url`."""
        data = {"url": url, "secret": secret} | {f"events[{i}]": e for i, e in enumerate(events)}
        httpx.post(f"{self.url}/_config/webhooks/hub", data=data).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class RecordedStripe(FakeUpstream):
    """A loopback server with Stripe's recorded Checkout answer. Each request is kept as a dict: path,
    headers (looked up in any case, as Stripe's are) and form."""

    thread_name = "recorded-stripe"

    @property
    def url(self) -> str:
        return self.base_url

    async def handle(self, scope, receive, send, body: bytes, headers: dict[str, str]) -> None:
        path = scope["path"]
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        if scope["method"] != "POST":  # the hub only ever POSTs to Stripe
            status, payload = 501, {"error": {"type": "invalid_request_error", "message": "Unsupported method"}}
        elif path != "/v1/checkout/sessions":
            self._record({"path": path, "headers": httpx.Headers(headers), "form": form})
            status, payload = (
                404,
                {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL (POST: {path})"}},
            )
        else:
            self._record({"path": path, "headers": httpx.Headers(headers), "form": form})
            status, payload = 200, self.checkout_session(form)
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    (b"request-id", f"req_{uuid.uuid4().hex[:14]}".encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    def checkout_session(self, form: dict) -> dict:
        session = fixture("checkout_session")
        session_id = f"cs_test_{uuid.uuid4().hex}"
        amount = int(form["line_items[0][price_data][unit_amount]"])
        session.update(
            id=session_id,
            url=f"https://checkout.stripe.com/c/pay/{session_id}",
            amount_subtotal=amount,
            amount_total=amount,
            currency=form["line_items[0][price_data][currency]"],
            client_reference_id=form.get("client_reference_id"),
            success_url=form["success_url"],
            cancel_url=form["cancel_url"],
            metadata={k[len("metadata[") : -1]: v for k, v in form.items() if k.startswith("metadata[")},
        )
        return session


def _serve_localstripe(port: int) -> None:
    import asyncio

    from aiohttp import web
    from localstripe import resources, server

    # localstripe saves its store to /tmp/localstripe.pickle on every write;
    # tests keep it in memory so parallel sessions do not share it.
    resources.Store.dump_to_disk = lambda self: None

    async def main():
        runner = web.AppRunner(server.app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__":
    _serve_localstripe(int(sys.argv[1]))
