"""GET /metrics from the real gunicorn with two uvicorn workers: a scrape reaching either worker adds up both,
and a worker that dies stops counting in the in-flight gauge (gunicorn's child_exit, hub/gunicorn.conf.py)."""

import json
import signal
import socket
import subprocess
import threading

import httpx
import openai
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.server import free_port
from tests.processes import ROOT, VENV_BIN, manage, runtime_env, wait_for

pytestmark = pytest.mark.processes
TOKEN = "scrape-token-for-the-process-test"


def figures(port: int) -> dict[tuple, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert text.status_code == 200, text.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.text)
        for s in family.samples
    }


def total(found: dict, name: str, **labels) -> float:
    return sum(v for (n, ls), v in found.items() if n == name and labels.items() <= dict(ls).items())


def _long_stream(port: int, key: str) -> socket.socket:
    """A demo stream of ~2,000 words (10 ms each) on a socket of its own, its headers read: in flight."""
    body = json.dumps(
        {"model": "demo/echo", "stream": True, "messages": [{"role": "user", "content": "word " * 2000}]}
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        + f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 200"), "the stream did not start"
    return sock


def test_two_workers_scrape_as_one_and_a_dead_worker_stops_counting(tmp_path):
    var, port = tmp_path / "var", free_port()
    env = runtime_env(var, HUB_BIND=f"127.0.0.1:{port}", HUB_WORKERS="2", HUB_METRICS_TOKEN=TOKEN)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "hub_bootstrap", "--base-url", f"http://127.0.0.1:{port}/v1")
    key = (var / "demo_api_key").read_text().strip()
    log = tmp_path / "gunicorn.log"
    master = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "hub/gunicorn.conf.py", "hub.asgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: log.read_text().count("Application startup complete") == 2, 120, "two workers", log.read_text)
        folder = var / "metrics"
        workers = {c.pid for c in psutil.Process(master.pid).children()}
        assert len(workers) == 2

        # Requests from 8 threads, a new connection each, until both workers have served some.
        sent = {"ok": 0, "unknown": 0, "in": 0, "out": 0}
        lock = threading.Lock()

        def send(i: int):
            client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0, timeout=60)
            if i % 4 == 3:
                with pytest.raises(openai.NotFoundError):
                    client.chat.completions.create(model=f"unknown-{i}", messages=[{"role": "user", "content": "x"}])
                with lock:
                    sent["unknown"] += 1
            else:
                answer = client.chat.completions.create(
                    model="demo/echo", messages=[{"role": "user", "content": f"count these {i} words"}]
                )
                with lock:
                    sent["ok"] += 1
                    sent["in"] += answer.usage.prompt_tokens
                    sent["out"] += answer.usage.completion_tokens
            client.close()

        def served_by_both() -> bool:
            pids = {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("counter_*.db")}
            return workers <= pids

        rounds = 0
        while not served_by_both() and rounds < 20:
            threads = [threading.Thread(target=send, args=(rounds * 8 + i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            rounds += 1
        assert served_by_both(), list(folder.iterdir())

        def settled(found):
            return total(found, "hub_requests_total") == sent["ok"] + sent["unknown"]

        for _ in range(4):  # whichever worker each scrape reaches, the same sums
            found = wait_for(lambda: (f := figures(port)) and settled(f) and f, 10, "all requests counted")
            assert total(found, "hub_requests_total", model="demo/echo", status_class="2xx") == sent["ok"]
            assert total(found, "hub_requests_total", model="other", status_class="4xx") == sent["unknown"]
            assert total(found, "hub_tokens_total", model="demo/echo", direction="in") == sent["in"]
            assert total(found, "hub_tokens_total", model="demo/echo", direction="out") == sent["out"]
            assert total(found, "hub_requests_in_flight") == 0

        # A stream in flight on one worker, which is then killed: its gauge goes with it, its counts stay.
        stream = _long_stream(port, key)
        local_port = stream.getsockname()[1]
        serving = [
            pid
            for pid in workers
            if any(c.raddr and c.raddr.port == local_port for c in psutil.Process(pid).net_connections("tcp"))
        ]
        assert len(serving) == 1, serving
        assert total(figures(port), "hub_requests_in_flight") == 1
        psutil.Process(serving[0]).send_signal(signal.SIGKILL)
        wait_for(lambda: f"Worker (pid:{serving[0]})" in log.read_text(), 30, "the master noticing", log.read_text)
        wait_for(lambda: total(figures(port), "hub_requests_in_flight") == 0, 30, "the dead worker's gauge gone")
        stream.close()
        found = figures(port)
        assert total(found, "hub_requests_total", model="demo/echo", status_class="2xx") == sent["ok"]
        assert not list(folder.glob(f"gauge_livesum_{serving[0]}.db"))
    finally:
        master.terminate()
        master.wait(timeout=60)
