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
import socket
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx

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
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}", "object": "event", "api_version": "2026-10-28.endive",
        "created": int(time.time()), "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None}, "type": type,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalStripe:
    def __init__(self):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> "LocalStripe":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.stripe_server", str(self.port)],
            cwd=Path(__file__).resolve().parent.parent.parent,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{self.url}/_config/webhooks/probe", data={"url": "http://127.0.0.1:9/", "secret": "x",
                                                                       "events[0]": "none"})
                return self
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise RuntimeError("localstripe did not start")
                time.sleep(0.05)
        raise RuntimeError("localstripe did not answer")

    def webhook(self, url: str, secret: str, events: list[str]) -> None:
        """Have localstripe deliver these events, signed with `secret`, to `url`."""
        data = {"url": url, "secret": secret} | {f"events[{i}]": e for i, e in enumerate(events)}
        httpx.post(f"{self.url}/_config/webhooks/hub", data=data).raise_for_status()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


class RecordedStripe:
    """A loopback server with Stripe's recorded Checkout answer."""

    def __init__(self):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                form = dict(parse_qsl(body, keep_blank_values=True))
                outer.requests.append({"path": self.path, "headers": dict(self.headers), "form": form})
                if self.path != "/v1/checkout/sessions":
                    return self.answer(404, {"error": {"type": "invalid_request_error",
                                                       "message": f"Unrecognized request URL (POST: {self.path})"}})
                self.answer(200, outer.checkout_session(form))

            def answer(self, status: int, payload: dict):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def checkout_session(self, form: dict) -> dict:
        session = fixture("checkout_session")
        session_id = f"cs_test_{uuid.uuid4().hex}"
        amount = int(form["line_items[0][price_data][unit_amount]"])
        session.update(
            id=session_id, url=f"https://checkout.stripe.com/c/pay/{session_id}",
            amount_subtotal=amount, amount_total=amount, currency=form["line_items[0][price_data][currency]"],
            client_reference_id=form.get("client_reference_id"), success_url=form["success_url"],
            cancel_url=form["cancel_url"],
            metadata={k[len("metadata["):-1]: v for k, v in form.items() if k.startswith("metadata[")},
        )
        return session

    def start(self) -> "RecordedStripe":
        threading.Thread(target=self.server.serve_forever, name="recorded-stripe", daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


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
