"""The benchmark's load generator: one measurement against one URL, result as JSON on stdout.

A process of its own (aiohttp on uvloop) so that its CPU time is not the hub's
and each run starts with a cold client. bench/run.py calls it once per target
and measurement, direct and hub back to back, with the same requests.

    python bench/loadgen.py --url URL --key KEY --model M --mode latency    [--requests 2000 --warmup 200]
    python bench/loadgen.py --url URL --key KEY --model M --mode throughput [--clients 32 --seconds 10 --warmup 2]
                            [--start-at EPOCH] [--watch NAME=PID,NAME=PID…]
    python bench/loadgen.py --url URL --key KEY --model M --mode streams    [--streams 500 --warmup 500]

Every request started counts in "sent", warm-ups included: bench/run.py
compares that with the usage records the hub wrote.

Throughput reports the CPU its own process and each --watch process used
inside the measured window (in cores: CPU seconds per second), so a run shows
whether the server, or the load generator itself, was the limit. --start-at
lets several load generator processes share one window.
"""

import argparse
import asyncio
import json
import math
import os
import sys
import time
from pathlib import Path

import aiohttp
import uvloop

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one short sentence."},
    {"role": "user", "content": "Which animal jumps over the lazy dog in the pangram?"},
]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of values in seconds, as milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000, 3)


class Load:
    def __init__(self, args):
        self.url = args.url
        self.headers = {"authorization": f"Bearer {args.key}", "content-type": "application/json"}
        body = {"model": args.model, "messages": MESSAGES, "max_tokens": 64, "temperature": 0.2}
        self.payload = json.dumps(body).encode()
        self.stream_payload = json.dumps(dict(body, stream=True, stream_options={"include_usage": True})).encode()
        self.sent = 0
        self.statuses: dict[str, int] = {}
        self.error_samples: list[str] = []

    def _error(self, kind: str, detail: str = "") -> None:
        self.statuses[kind] = self.statuses.get(kind, 0) + 1
        sample = f"{kind}: {detail}" if detail else kind
        if len(self.error_samples) < 3 and sample not in self.error_samples:
            self.error_samples.append(sample)

    async def call(self, session: aiohttp.ClientSession) -> bool:
        """One non-streaming request, body read in full. True if it answered 200."""
        self.sent += 1
        try:
            async with session.post(self.url, data=self.payload, headers=self.headers) as response:
                body = await response.read()
                if response.status == 200:
                    return True
                self._error(f"HTTP {response.status}", body[:300].decode(errors="replace"))
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._error(type(exc).__name__, str(exc))
        return False

    async def stream(self, session: aiohttp.ClientSession) -> tuple[float | None, float | None]:
        """One streaming request: seconds to the first non-empty delta.content, and to [DONE] (None if absent)."""
        self.sent += 1
        started = time.perf_counter()
        first = None
        done = None
        try:
            async with session.post(self.url, data=self.stream_payload, headers=self.headers) as response:
                if response.status != 200:
                    body = await response.read()
                    self._error(f"HTTP {response.status}", body[:300].decode(errors="replace"))
                    return None, None
                async for line in response.content:  # one line at a time; SSE events are "data: …\n\n"
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == b"[DONE]":
                        done = time.perf_counter() - started
                    elif first is None:
                        event = json.loads(data)
                        if any((c.get("delta") or {}).get("content") for c in event.get("choices") or []):
                            first = time.perf_counter() - started
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            self._error(type(exc).__name__, str(exc))
        if done is None:
            self._error("no [DONE]")
        return first, done


def session(limit: int = 0) -> aiohttp.ClientSession:
    # limit=0: no client-side cap on connections, so 500 streams really are concurrent.
    connector = aiohttp.TCPConnector(limit=limit, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120))


async def latency(load: Load, args) -> dict:
    times = []
    async with session(limit=1) as s:  # one keep-alive connection, one request at a time
        for _ in range(args.warmup):
            await load.call(s)
        load.statuses.clear()
        for _ in range(args.requests):
            started = time.perf_counter()
            ok = await load.call(s)
            if ok:
                times.append(time.perf_counter() - started)
    return {
        "requests": args.requests,
        "ok": len(times),
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "mean_ms": round(sum(times) / len(times) * 1000, 3) if times else None,
    }


TICK = os.sysconf("SC_CLK_TCK")


DATABASE = ("postgres", "redis-server")  # their processes, whoever they serve


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far (/proc/<pid>/stat; the name before them may hold spaces)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def database_seconds() -> dict[int, float]:
    """CPU so far of each PostgreSQL and Redis process this machine shows (a backend may come or go)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "comm").read_text().strip() in DATABASE:
                    found[int(proc.name)] = cpu_seconds(int(proc.name))
            except OSError:  # it ended meanwhile
                pass
    return found


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent on anything but idling (/proc/stat), every process of every user."""
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / TICK


def cpu_snapshot(watch: list[tuple[str, int]]) -> tuple[float, float, float, list[float], dict[int, float]]:
    pids = [cpu_seconds(pid) for _, pid in watch]
    return time.perf_counter(), time.process_time(), machine_busy_seconds(), pids, database_seconds()


def cpu_cores(before, after, watch: list[tuple[str, int]]) -> dict[str, float]:
    """CPU used between two snapshots, in cores; processes watched under one name are added up.

    "machine" is all of the machine's (the other users' too, seen or not), so a run shows when someone else
    took a core; "database" is PostgreSQL's and Redis's processes (a backend started inside the window counts
    whole, one that ended inside it is lost).
    """
    wall = after[0] - before[0]
    cores = {"loadgen": (after[1] - before[1]) / wall, "machine": (after[2] - before[2]) / wall}
    cores["database"] = sum(a - before[4].get(pid, 0.0) for pid, a in after[4].items()) / wall
    for (name, _), b, a in zip(watch, before[3], after[3], strict=True):
        cores[name] = cores.get(name, 0.0) + (a - b) / wall
    return {name: round(value, 3) for name, value in cores.items()}


async def throughput(load: Load, args) -> dict:
    """Closed loop: each client sends its next request when the last one answered.

    Only answers that arrive inside the measured window count; the requests
    still out when it closes are finished (so the hub can meter them) but not counted.
    """
    counted = {"ok": 0, "errors": 0}
    if args.start_at:  # a wall-clock start shared with other load generator processes
        await asyncio.sleep(max(0.0, args.start_at - time.time()))
    loop_start = time.perf_counter()
    window_start = loop_start + args.warmup
    window_end = window_start + args.seconds
    cpu = {}

    async def watcher():
        await asyncio.sleep(window_start - time.perf_counter())
        before = cpu_snapshot(args.watch)
        await asyncio.sleep(window_end - time.perf_counter())
        cpu.update(cpu_cores(before, cpu_snapshot(args.watch), args.watch))

    async def client(s):
        while time.perf_counter() < window_end:
            ok = await load.call(s)
            if window_start <= time.perf_counter() <= window_end:
                counted["ok" if ok else "errors"] += 1

    async with session(limit=args.clients) as s:
        await asyncio.gather(watcher(), *(client(s) for _ in range(args.clients)))
    return {
        "clients": args.clients,
        "seconds": args.seconds,
        "ok": counted["ok"],
        "errors": counted["errors"],
        "rps": round(counted["ok"] / args.seconds, 1),
        "cpu_cores": cpu,
    }


async def streams(load: Load, args) -> dict:
    async with session() as s:
        if args.warmup:
            # A first wave opens the connections (client→hub and hub→upstream) so
            # the measured wave times relaying, not TCP handshakes.
            await asyncio.gather(*(load.stream(s) for _ in range(args.warmup)))
            load.statuses.clear()
        started = time.perf_counter()
        results = await asyncio.gather(*(load.stream(s) for _ in range(args.streams)))
        elapsed = time.perf_counter() - started
    firsts = [first for first, _ in results if first is not None]
    totals = [done for _, done in results if done is not None]  # request sent to [DONE] read
    return {
        "streams": args.streams,
        "done": len(totals),
        "with_first_token": len(firsts),
        "ttft_p50_ms": percentile(firsts, 50),
        "ttft_p99_ms": percentile(firsts, 99),
        "total_p50_ms": percentile(totals, 50),
        "total_p99_ms": percentile(totals, 99),
        "wave_seconds": round(elapsed, 3),
    }


MODES = {"latency": latency, "throughput": throughput, "streams": streams}


def main() -> None:
    parser = argparse.ArgumentParser(description="One benchmark measurement against one URL.")
    parser.add_argument("--url", required=True, help="the chat completions URL")
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--requests", type=int, default=2000, help="latency: measured requests")
    parser.add_argument("--clients", type=int, default=32, help="throughput: concurrent clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="throughput: measured seconds")
    parser.add_argument("--streams", type=int, default=500, help="streams: concurrent streams")
    parser.add_argument("--start-at", type=float, default=0.0, help="throughput: start at this time.time()")
    parser.add_argument(
        "--watch", default="", help="throughput: NAME=PID,… processes whose CPU to report (a name may repeat)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="requests (latency), seconds (throughput) or streams (streams) before measuring",
    )
    args = parser.parse_args()
    if args.warmup is None:
        args.warmup = {"latency": 200, "throughput": 2.0, "streams": args.streams}[args.mode]
    if args.mode != "throughput":
        args.warmup = int(args.warmup)
    args.watch = [(name, int(pid)) for name, _, pid in (w.partition("=") for w in args.watch.split(",") if w)]
    load = Load(args)
    result = uvloop.run(MODES[args.mode](load, args))
    result.update(mode=args.mode, sent=load.sent, error_counts=load.statuses, error_samples=load.error_samples)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
