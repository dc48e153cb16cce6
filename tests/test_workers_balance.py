"""Two workers of `make run`'s web process share the connections a client opens at once (hub/gunicorn.conf.py).

Each worker listens on a socket of its own (gunicorn's reuse_port), made before it loads the app, and the kernel
spreads new connections over them by their addresses, each waiting in its worker's own backlog. On one shared
socket, whichever worker could accept first took the whole burst, and keep-alive kept it there (seen: 32
connections on one worker, the other idle, in bench/run.py --scale on a busy machine), so two workers served
no more than one. Seen failing with `reuse_port = False`: all 32 on the first worker.
"""

import socket
import subprocess
import time

import psutil
import pytest

from tests.processes import ROOT, VENV_BIN, runtime_env, wait_for

pytestmark = pytest.mark.processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_burst_of_connections_is_spread_over_both_workers(tmp_path):
    port = free_port()
    log = tmp_path / "web.log"
    master = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "-c", "hub/gunicorn.conf.py", "hub.asgi:application"],
        cwd=ROOT,
        env=runtime_env(tmp_path / "var", HUB_BIND=f"127.0.0.1:{port}", HUB_WORKERS="2"),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    connections = []
    try:
        wait_for(lambda: log.read_text().count("Application startup complete") == 2, 120, "two workers", log.read_text)
        first, second = psutil.Process(master.pid).children()
        # A client's pool opened while one worker cannot accept (busy, descheduled, still loading the app):
        # the second is stopped for the burst, each connection kept open.
        second.suspend()
        try:
            for _ in range(32):
                conn = socket.socket()
                conn.setblocking(False)
                conn.connect_ex(("127.0.0.1", port))
                connections.append(conn)
            for conn in connections:
                conn.settimeout(10)
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            time.sleep(0.5)  # the first worker takes what it can
        finally:
            second.resume()
        for conn in connections:
            assert conn.recv(4096).startswith(b"HTTP/1.1 200"), log.read_text()
        held = [
            sum(1 for c in w.net_connections("tcp") if c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED)
            for w in (first, second)
        ]
        # Spread by the kernel's hash of each connection's addresses: fewer than 4 of 32 on one side is
        # about one in a million.
        assert len(held) == 2 and sum(held) == 32 and min(held) >= 4, held
    finally:
        for conn in connections:
            conn.close()
        master.terminate()
        master.wait(timeout=60)
