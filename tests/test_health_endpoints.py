"""GET /healthz and /readyz (hub/health.py): what load balancers and orchestrators probe."""

import socket
import subprocess
import time

import httpx
import pytest

from tests.processes import ROOT, VENV_BIN, runtime_env, wait_for


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_a_key_a_session_or_a_known_host(hub):
    answer = httpx.get(f"{hub.url}/healthz", headers={"host": "10.1.2.3:8000"})
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert "set-cookie" not in answer.headers and answer.headers["cache-control"] == "no-store"


def test_readyz_names_each_check_it_passed(hub):
    answer = httpx.get(f"{hub.url}/readyz", headers={"host": "10.1.2.3:8000"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok"}, "down": []}


def test_a_probe_only_reads(hub):
    assert httpx.post(f"{hub.url}/readyz").status_code == 405
    assert httpx.head(f"{hub.url}/healthz").status_code == 200


@pytest.fixture
def served(tmp_path):
    """Start `make run`'s web process (gunicorn, uvicorn workers) with the environment given; its base URL."""
    started = []

    def start(**env) -> str:
        port = closed_port()
        log = tmp_path / f"web-{len(started)}.log"
        process = subprocess.Popen(
            [str(VENV_BIN / "gunicorn"), "-c", "hub/gunicorn.conf.py", "hub.asgi:application"],
            cwd=ROOT,
            env=runtime_env(tmp_path / f"var-{len(started)}", HUB_BIND=f"127.0.0.1:{port}", **env),
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        wait_for(lambda: "Application startup complete" in log.read_text(), 120, "the hub serving", log.read_text)
        return f"http://127.0.0.1:{port}"

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=60)


def probe(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    answer = httpx.get(f"{url}/readyz", timeout=10)
    return answer, time.monotonic() - started


def test_readyz_is_ready_on_sqlite_and_the_file_broker(served):
    answer, _ = probe(served())
    assert answer.status_code == 200, answer.text
    assert answer.json()["checks"] == {"database": "ok", "cache": "ok", "broker": "ok"}


def test_readyz_names_a_broker_that_is_down_and_does_not_hang_on_it(served):
    url = served(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port()}/0")
    answer, took = probe(url)
    assert answer.status_code == 503 and answer.json()["down"] == ["broker"], answer.text
    assert took < 3
    assert httpx.get(f"{url}/healthz").status_code == 200  # the process is up: only readiness fails


def test_readyz_names_redis_down_as_the_cache_and_the_broker(served):
    answer, took = probe(served(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"))
    assert answer.status_code == 503 and answer.json()["down"] == ["cache", "broker"], answer.text
    assert answer.json()["checks"]["database"] == "ok" and took < 3


def test_readyz_names_a_database_that_is_down(served):
    answer, took = probe(served(DATABASE_URL=f"postgres://hub@127.0.0.1:{closed_port()}/hub"))
    assert answer.status_code == 503 and answer.json()["down"] == ["database"], answer.text
    assert took < 3
