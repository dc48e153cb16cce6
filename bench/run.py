"""Benchmark the hub against direct calls to a fake upstream, in one run on one machine.

    python bench/run.py [--variant plain|adrf|both] [--with-litellm] [--scale] [--quick] [--help for every knob]

Starts a fake OpenAI upstream, a throwaway hub (its own temp dir and database,
served by gunicorn + uvicorn worker as in production), then measures latency,
throughput and streaming (time to first token, time to [DONE]) through the load
generator, direct and through the hub back to back; with --with-litellm the
LiteLLM proxy (pinned, in a virtualenv of its own) as a third column, with
--scale the hub's throughput on two workers too. Reads the serving processes'
RSS idle and after the stream burst. Checks that every hub request was metered
and charged, prints a markdown table and writes bench/results/latest.json.
See bench/README.md for what the numbers mean.
"""

import argparse
import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(VENV_PY) if VENV_PY.exists() else sys.executable
VARIANTS = {"plain": "hub.settings", "adrf": "bench.settings_adrf"}
MODEL = "bench/gpt-4o-mini"  # what clients ask the hub for
UPSTREAM_MODEL = "gpt-4o-mini"  # what the hub (and a direct client) asks the upstream for
# The bars (18): ratios against direct and LiteLLM measured in the same run; the absolute req/s bar
# stands in for the LiteLLM ratio when LiteLLM is not measured.
BARS = {
    "added_p50_ms": 1.0,
    "rps": 600.0,
    "rps_vs_litellm": 10.0,
    "ttft_added_p50_ms": 170.0,
    "stream_total_vs_direct": 1.1,
    "rss_after_burst_mb": 150.0,
    "two_workers_vs_one": 1.7,
}
LITELLM_VERSION = "1.106.2"
LITELLM_REQUIREMENT = f"litellm[proxy]=={LITELLM_VERSION}"

# LiteLLM's proxy config: the same fake upstream as an OpenAI-compatible model; no database, so no spend logs.
LITELLM_YAML = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {api_base}
      api_key: os.environ/BENCH_UPSTREAM_KEY
general_settings:
  master_key: os.environ/LITELLM_MASTER_KEY
"""

CONFIG_YAML = """\
providers:
  - name: bench
    kind: openai_compatible
    preset: custom
    base_url: {base_url}
    credentials:
      - name: default
        secret_env: BENCH_UPSTREAM_KEY
models:
  - id: {model}
    provider: bench
    upstream: {upstream}
    rate: {{input_cost: 0.15, output_cost: 0.60, margin: 0.2}}
"""

# Run inside the hub's Django (manage.py shell -c): were all requests metered and charged?
CHECK_DB = r"""
import json, os, time
from django.db.models import Count, Sum
from accounts.models import Organization
from accounts.services import hash_api_key
from billing.models import CreditAccount, LedgerEntry, UsageRecord

expected = json.loads(os.environ["BENCH_EXPECTED"])
deadline = time.monotonic() + float(os.environ["BENCH_FLUSH_WAIT"])
while True:  # the meter writes in batches: give it a moment to flush
    counts = {k: UsageRecord.objects.filter(api_key__hashed_key=hash_api_key(k)).count() for k in expected}
    if all(counts[k] >= n for k, n in expected.items()) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
out = {"keys": {}}
for raw in expected:
    records = UsageRecord.objects.filter(api_key__hashed_key=hash_api_key(raw))
    out["keys"][raw] = {
        "records": counts[raw], "charged": str(sum(records.values_list("price", flat=True))),
        "by_status": dict(records.values_list("status").annotate(n=Count("pk")).values_list("status", "n")),
        "usage_ledger_entries": LedgerEntry.objects.filter(usage_record__in=records).count(),
    }
account = CreditAccount.objects.get(organization=Organization.objects.get(slug="demo"))
out["balance"] = str(account.balance)
entries = LedgerEntry.objects.filter(account=account)
# Summed here in Decimal, exactly; the database's SUM is shown beside it (on SQLite it adds floats).
out["ledger_sum"] = str(sum(entries.values_list("amount", flat=True)))
out["ledger_sum_sql"] = str(entries.aggregate(s=Sum("amount"))["s"])
print("BENCH-CHECK " + json.dumps(out))
"""


class Children:
    """Every process the bench starts, each in its own process group, so all can be stopped."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("cwd", ROOT)
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, cmd: list[str], env: dict, timeout: float) -> str:
        """Run to completion and return stdout; stop it (and fail) past `timeout`."""
        proc = self.start(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise RuntimeError(f"timed out after {timeout:.0f}s: {' '.join(cmd)}") from None
        self.procs.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} … failed ({proc.returncode}):\n{err[-3000:]}")
        return out

    def stop(self, proc: subprocess.Popen, grace: float = 15.0) -> None:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # gunicorn drains the meter on SIGTERM
                proc.wait(grace)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def http(url: str, body: dict | None = None, key: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def start_upstream(children: Children, key: str, chunk_ms: float) -> int:
    proc = children.start(
        [PY, str(BENCH / "fake_upstream.py"), "--key", key, "--chunk-ms", str(chunk_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise RuntimeError("the fake upstream did not start")
    return json.loads(line)["port"]


def prepare_hub(children: Children, env: dict, upstream_port: int, variants: list[str]) -> dict[str, str]:
    """Migrate, configure the bench provider and model, and get one demo-org key per variant."""
    manage = [PY, "manage.py"]
    log("hub: migrating a fresh database …")
    children.run([*manage, "migrate", "--noinput", "-v0"], env, timeout=300)
    config = Path(env["HUB_VAR_DIR"]) / "bench.yaml"
    config.write_text(
        CONFIG_YAML.format(base_url=f"http://127.0.0.1:{upstream_port}/v1", model=MODEL, upstream=UPSTREAM_MODEL)
    )
    children.run([*manage, "hub_config", "apply", str(config)], env, timeout=120)
    keys = {}
    for variant in variants:
        # One key per variant, so each hub's usage records can be counted apart.
        wanted = f"sk-hub-bench{variant}{secrets.token_urlsafe(24)}"
        printed = children.run([*manage, "hub_bootstrap", "--key-only"], dict(env, HUB_DEMO_API_KEY=wanted), 120)
        keys[variant] = printed.strip().splitlines()[-1]
    return keys


def gunicorn_command(port: int, *options: str, workers: int = 1) -> list[str]:
    """The hub as users run it: gunicorn with uvicorn workers (one unless told) on loopback; `options` add flags."""
    return [
        str(Path(PY).parent / "gunicorn"),
        "hub.asgi:application",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "10",
        "--no-control-socket",  # gunicorn's default one is per user: it would take a running hub's
        "--reuse-port",  # as hub/gunicorn.conf.py: a socket per worker, connections spread by the kernel
        *options,
    ]


def start_hub(children: Children, env: dict, variant: str, key: str, workers: int = 1) -> str:
    return start_hub_process(children, env, variant, key, workers)[0]


def start_hub_process(
    children: Children, env: dict, variant: str, key: str, workers: int = 1
) -> tuple[str, subprocess.Popen]:
    """start_hub, also giving the gunicorn master's process (its children are the workers)."""
    port = free_port()
    name = variant if workers == 1 else f"{variant}-{workers}workers"
    logfile = open(Path(env["HUB_VAR_DIR"]) / f"gunicorn-{name}.log", "wb")
    cmd = gunicorn_command(port, workers=workers)
    proc = children.start(
        cmd, env=dict(env, DJANGO_SETTINGS_MODULE=VARIANTS[variant]), stdout=logfile, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {name} hub exited:\n{Path(logfile.name).read_text()[-3000:]}")
        try:
            # Every worker booted, and one answers (which one is the kernel's choice).
            if len(child_pids(proc.pid)) == workers and http(f"{base}/v1/models", key=key, timeout=2)[0] == 200:
                return base, proc
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the {name} hub did not answer within 60 s")


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hub-bench"


def litellm_venv(children: Children, venv: Path) -> Path:
    """The pinned LiteLLM proxy in a virtualenv of its own, made once and reused; returns its `litellm` script.

    The marker is written only after pip succeeded, so a broken or interrupted install is made again.
    """
    marker = venv / "bench-installed.txt"
    litellm = venv / "bin" / "litellm"
    if marker.exists() and marker.read_text().strip() == LITELLM_REQUIREMENT and litellm.exists():
        return litellm
    log(f"litellm: installing {LITELLM_REQUIREMENT} into {venv} (once; about a minute) …")
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Created in place: a virtualenv's scripts name its path in their first line, so it cannot be moved.
    children.run([PY, "-m", "venv", str(venv)], dict(os.environ), timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    try:
        children.run([*pip, LITELLM_REQUIREMENT], dict(os.environ), timeout=900)
    except RuntimeError as exc:
        raise RuntimeError(f"could not install {LITELLM_REQUIREMENT} into {venv}: {exc}") from None
    marker.write_text(LITELLM_REQUIREMENT + "\n")
    return litellm


def start_litellm(
    children: Children, tmp: Path, litellm: Path, upstream_port: int, upstream_key: str
) -> tuple[str, str, subprocess.Popen]:
    """LiteLLM's proxy on one worker, a master key and no database: (base URL, master key, its process)."""
    config = tmp / "litellm.yaml"
    config.write_text(LITELLM_YAML.format(model=UPSTREAM_MODEL, api_base=f"http://127.0.0.1:{upstream_port}/v1"))
    master_key = "sk-bench-litellm-" + secrets.token_hex(16)  # LiteLLM wants master keys to start with sk-
    # An environment of its own: the hub's DATABASE_URL or REDIS_URL would give LiteLLM a database or a cache.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(
        BENCH_UPSTREAM_KEY=upstream_key,
        LITELLM_MASTER_KEY=master_key,
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # offline: the cost map it ships, not a download
        LITELLM_MODE="PRODUCTION",  # no .env read from the working directory
        LITELLM_LOG="WARNING",  # as the hub's: no per-request access log
        LITELLM_DONT_SHOW_FEEDBACK_BOX="True",
    )
    port = free_port()
    cmd = [str(litellm), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    logfile = open(tmp / "litellm.log", "wb")
    proc = children.start(cmd, env=env, cwd=tmp, stdout=logfile, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # it imports for a while
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"litellm exited:\n{Path(logfile.name).read_text()[-3000:]}")
        try:
            if http(f"{base}/health/liveliness", timeout=2)[0] == 200:
                return base, master_key, proc
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("litellm did not answer within 180 s")


def child_pids(pid: int) -> list[int]:
    """A process's children, from /proc (every thread's list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):  # the thread ended meanwhile
            found += [int(p) for p in task.read_text().split()]
    return sorted(set(found))


def rss_mb(pids: list[int]) -> dict[str, float]:
    """Resident memory now (VmRSS) and at its peak so far (VmHWM), in MB, of each process, added up."""
    total = {"rss_mb": 0.0, "peak_mb": 0.0}
    for pid in pids:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        total["rss_mb"] += int(fields["VmRSS"].split()[0]) / 1024
        total["peak_mb"] += int(fields["VmHWM"].split()[0]) / 1024
    return {k: round(v, 1) for k, v in total.items()}


def preflight(direct: str, upstream_key: str, hubs: dict[str, str], keys: dict[str, str]) -> None:
    """Fail fast, and prove the upstream checks its key, so a 200 through the hub means the hub sent it."""
    body = {"model": UPSTREAM_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    status, _ = http(f"{direct}/chat/completions", body)
    if status != 401:
        raise RuntimeError(f"the fake upstream answered {status} without a key, not 401")
    for variant, base in hubs.items():
        status, answer = http(f"{base}/v1/chat/completions", dict(body, model=MODEL), key=keys[variant])
        if status != 200 or json.loads(answer).get("usage", {}).get("total_tokens") != 29:
            raise RuntimeError(f"the {variant} hub answered {status}: {answer[:500]!r}")


def loadgen(
    children: Children,
    env: dict,
    mode: str,
    url: str,
    key: str,
    model: str,
    args,
    watch: dict[str, list[int]] | None = None,
) -> dict:
    """One measurement; throughput over `args.loadgen_procs` processes (one unless set) sharing one window.

    `watch` names the processes (name: pids) whose CPU a throughput run reports beside its own.
    """
    flags = {
        "latency": ["--requests", args.latency_requests, "--warmup", args.latency_warmup],
        "throughput": ["--clients", args.clients, "--seconds", args.seconds, "--warmup", args.throughput_warmup],
        "streams": ["--streams", args.streams, "--warmup", args.stream_warmup],
    }[mode]
    cmd = [PY, str(BENCH / "loadgen.py"), "--mode", mode, "--url", url, "--key", key, "--model", model]
    cmd += [str(f) for f in flags]
    if mode != "throughput":
        return json.loads(children.run(cmd, env, timeout=args.seconds + 300))
    watching = ["--watch", ",".join(f"{name}={pid}" for name, pids in (watch or {}).items() for pid in pids)]
    procs = getattr(args, "loadgen_procs", 1)
    if procs == 1:
        return json.loads(children.run(cmd + watching, env, timeout=args.seconds + 300))
    return throughput_split(children, env, cmd, watching, args, procs)


def throughput_split(children: Children, env: dict, cmd: list[str], watching: list[str], args, procs: int) -> dict:
    """The clients shared out over `procs` load generators that start their window at one wall-clock time."""
    start_at = time.time() + 3  # time for each to start Python and import aiohttp, on a busy machine too
    running = []
    for i in range(procs):
        clients = args.clients // procs + (i < args.clients % procs)
        part = [*cmd, "--clients", str(clients), "--start-at", f"{start_at:.3f}"]  # the later --clients wins
        part += watching if i == 0 else []  # one of them reports the watched processes
        running.append(children.start(part, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    parts = []
    for proc in running:
        try:
            out, err = proc.communicate(timeout=args.seconds + 300)
        except subprocess.TimeoutExpired:
            raise RuntimeError("a load generator timed out") from None
        children.procs.remove(proc)
        if proc.returncode != 0:
            raise RuntimeError(f"a load generator failed ({proc.returncode}):\n{err[-3000:]}")
        parts.append(json.loads(out))
    result = dict(parts[0], clients=args.clients, processes=procs)
    for key in ("ok", "errors", "sent"):
        result[key] = sum(part[key] for part in parts)
    result["rps"] = round(result["ok"] / args.seconds, 1)
    result["error_counts"] = {}
    for part in parts:
        for kind, n in part["error_counts"].items():
            result["error_counts"][kind] = result["error_counts"].get(kind, 0) + n
    result["error_samples"] = [sample for part in parts for sample in part["error_samples"]][:3]
    result["cpu_cores"] = dict(parts[0]["cpu_cores"], loadgen=round(sum(p["cpu_cores"]["loadgen"] for p in parts), 3))
    return result


def check_db(children: Children, env: dict, expected: dict[str, int]) -> dict:
    check_env = dict(env, BENCH_EXPECTED=json.dumps(expected), BENCH_FLUSH_WAIT="5")
    out = children.run([PY, "manage.py", "shell", "-c", CHECK_DB], check_env, timeout=120)
    return json.loads(next(line for line in out.splitlines() if line.startswith("BENCH-CHECK "))[12:])


MODES = ("latency", "throughput", "streams")


class Target(NamedTuple):
    """What one column measures: its URL, key and model, the processes serving it, what it runs."""

    name: str
    url: str
    key: str
    model: str
    pids: list[int]  # the serving processes (a hub's workers, not its master); none for direct
    variant: str | None = None  # the hub variant whose key (and usage records) it uses
    modes: tuple[str, ...] = MODES


def hub_env(tmp: Path, upstream_key: str, **extra: str) -> dict:
    """A bench hub's environment: this one's (DATABASE_URL, REDIS_URL…), production's settings, `tmp` as its
    var/ folder, the demo organisation's credit, charging on, the upstream's key; `extra` on top."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "HUB_DEMO_API_KEY")}
    env.update(
        HUB_VAR_DIR=str(tmp),
        DEBUG="false",
        LOG_LEVEL="WARNING",
        HUB_DEMO_CREDITS="1000000",
        HUB_BILLING_MODE="credits",
        BENCH_UPSTREAM_KEY=upstream_key,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        PYTHONWARNINGS="ignore::DeprecationWarning",
        **extra,
    )
    return env


def measure(args, children: Children, tmp: Path) -> dict:
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]
    upstream_key = "sk-bench-upstream-" + secrets.token_hex(16)
    env = hub_env(tmp, upstream_key)
    # Installed (once) before anything starts, so a failed install fails the run at once.
    litellm = litellm_venv(children, Path(args.litellm_venv)) if args.with_litellm else None
    where = "DATABASE_URL (must be a scratch database)" if env.get("DATABASE_URL") else f"SQLite in {tmp}"
    log(f"database: {where}")

    upstream_port = start_upstream(children, upstream_key, args.chunk_ms)
    upstream_pid = children.procs[-1].pid  # the process start_upstream just started
    direct = f"http://127.0.0.1:{upstream_port}/v1"
    keys = prepare_hub(children, env, upstream_port, variants)
    started = {v: start_hub_process(children, env, v, keys[v]) for v in variants}
    hubs = {v: base for v, (base, _) in started.items()}
    log(f"upstream {direct}; " + "; ".join(f"hub ({v}) {b}" for v, b in hubs.items()))
    preflight(direct, upstream_key, hubs, keys)
    sent = dict.fromkeys(variants, 1)  # the preflight request

    chat = "/v1/chat/completions"
    targets = [Target("direct", f"{direct}/chat/completions", upstream_key, UPSTREAM_MODEL, [])]
    targets += [Target(v, hubs[v] + chat, keys[v], MODEL, child_pids(proc.pid), v) for v, (_, proc) in started.items()]
    if args.scale:
        # The first variant again on two workers, on the same database with the same key: throughput only.
        scaled, v = f"{variants[0]}, 2 workers", variants[0]
        base, proc = start_hub_process(children, env, v, keys[v], workers=2)
        preflight(direct, upstream_key, {scaled: base}, {scaled: keys[v]})
        sent[v] += 1
        targets.append(Target(scaled, base + chat, keys[v], MODEL, child_pids(proc.pid), v, ("throughput",)))
    if litellm:
        base, master_key, proc = start_litellm(children, tmp, litellm, upstream_port, upstream_key)
        preflight_litellm(base, master_key)
        # One worker serves in the process itself (uvicorn, no master).
        targets.append(Target("litellm", base + chat, master_key, UPSTREAM_MODEL, [proc.pid]))
        log(f"litellm {base}")

    results: dict[str, dict] = {t.name: {} for t in targets}
    for t in targets:
        if t.pids:
            results[t.name]["memory"] = {"pids": t.pids, "idle": rss_mb(t.pids)}
    # Each measurement: direct, then every server, back to back.
    for mode in MODES:
        for t in targets:
            if mode not in t.modes:
                continue
            others = [pid for other in targets if other.name != t.name for pid in other.pids]
            watch = {"upstream": [upstream_pid], "server": t.pids, "idle servers": others}
            if len(t.pids) > 1:  # each worker apart too: did both serve?
                watch.update({f"worker {pid}": [pid] for pid in t.pids})
            result = loadgen(children, env, mode, t.url, t.key, t.model, args, watch)
            results[t.name][mode] = result
            if t.variant:
                sent[t.variant] += result["sent"]
            if mode == "streams" and t.pids:
                results[t.name]["memory"]["after_burst"] = rss_mb(t.pids)
            log(
                f"{mode:>10} {t.name:>6}: "
                + ", ".join(
                    f"{k}={v}" for k, v in result.items() if k not in ("mode", "error_samples") and v not in ({}, [])
                )
            )

    check = check_db(children, env, {keys[v]: sent[v] for v in variants})
    balanced = Decimal(check["balance"]) == Decimal(check["ledger_sum"])
    for v in variants:
        row = check["keys"][keys[v]]
        results[v]["metering"] = dict(
            row,
            requests_sent=sent[v],
            all_metered=row["records"] == sent[v],
            balance=check["balance"],
            ledger_sum=check["ledger_sum"],
            ledger_sum_sql=check["ledger_sum_sql"],
            balance_equals_ledger=balanced,
        )
    return results


def preflight_litellm(base: str, master_key: str) -> None:
    body = {"model": UPSTREAM_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    status, answer = http(f"{base}/v1/chat/completions", body, key=master_key, timeout=30)
    if status != 200 or json.loads(answer).get("usage", {}).get("total_tokens") != 29:
        raise RuntimeError(f"litellm answered {status}: {answer[:500]!r}")


def clean(result: dict, modes=MODES) -> bool:
    """No errors in any measurement, and every stream ended with [DONE]."""
    measured = [result[m] for m in modes if m in result]
    streams = result.get("streams")
    return not any(r["error_counts"] for r in measured) and (not streams or streams["done"] == streams["streams"])


def scale_name(results: dict) -> str | None:
    return next((name for name in results if name.endswith(", 2 workers")), None)


def verdicts(results: dict, variant: str) -> dict:
    direct, hub = results["direct"], results[variant]
    litellm = results.get("litellm")
    p50s = (hub["latency"]["p50_ms"], direct["latency"]["p50_ms"])
    added = None if None in p50s else p50s[0] - p50s[1]
    rps = hub["throughput"]["rps"]
    streams, direct_streams = hub["streams"], direct["streams"]
    bars = {
        f"added p50 <= {BARS['added_p50_ms']:g} ms": (
            added is not None and added <= BARS["added_p50_ms"],
            "no answer" if added is None else f"{added:+.2f} ms",
        )
    }
    if litellm:
        times = rps / litellm["throughput"]["rps"] if litellm["throughput"]["rps"] else None
        bars[f"req/s >= {BARS['rps_vs_litellm']:g}x LiteLLM's, one worker each"] = (
            times is not None and times >= BARS["rps_vs_litellm"],
            f"{'–' if times is None else f'{times:.2f}x'} ({rps:.0f} vs {litellm['throughput']['rps']:.0f} req/s)",
        )
    else:
        bars[f">= {BARS['rps']:g} req/s on one worker"] = (rps >= BARS["rps"], f"{rps:.0f} req/s")
    ttft = (streams["ttft_p50_ms"], direct_streams["ttft_p50_ms"])
    ttft_added = None if None in ttft else ttft[0] - ttft[1]
    bars[f"stream TTFT p50 - direct <= {BARS['ttft_added_p50_ms']:g} ms"] = (
        ttft_added is not None and ttft_added <= BARS["ttft_added_p50_ms"],
        "no answer" if ttft_added is None else f"{ttft_added:+.1f} ms",
    )
    total = (streams["total_p50_ms"], direct_streams["total_p50_ms"])
    total_times = None if None in total or not total[1] else total[0] / total[1]
    bars[f"stream total p50 <= {BARS['stream_total_vs_direct']:g}x direct"] = (
        total_times is not None and total_times <= BARS["stream_total_vs_direct"],
        "no answer" if total_times is None else f"{total_times:.3f}x ({total[0]:.0f} vs {total[1]:.0f} ms)",
    )
    rss = hub["memory"]["after_burst"]["rss_mb"]
    bars[f"worker RSS after the stream burst <= {BARS['rss_after_burst_mb']:g} MB"] = (
        rss <= BARS["rss_after_burst_mb"],
        f"{rss:.1f} MB",
    )
    scaled = scale_name(results)
    if scaled and scaled.startswith(f"{variant},"):
        times = results[scaled]["throughput"]["rps"] / rps if rps else None
        bars[f"2 workers >= {BARS['two_workers_vs_one']:g}x one worker's req/s"] = (
            times is not None and times >= BARS["two_workers_vs_one"],
            f"{'–' if times is None else f'{times:.2f}x'} ({results[scaled]['throughput']['rps']:.0f} vs {rps:.0f})",
        )
    bars["no errors, every stream ended with [DONE]"] = (
        clean(hub) and (not scaled or not scaled.startswith(f"{variant},") or clean(results[scaled])),
        "",
    )
    bars["every request metered, balance = ledger sum"] = (
        hub["metering"]["all_metered"] and hub["metering"]["balance_equals_ledger"],
        "",
    )
    return bars


def litellm_verdicts(results: dict) -> dict:
    """LiteLLM's own answers must be right, or the ratios against it mean nothing."""
    return {"no errors, every stream ended with [DONE] (else no ratio holds)": (clean(results["litellm"]), "")}


CPU_NAMES = ("server", "loadgen", "upstream", "database", "idle servers", "rest")


def cpu_cell(result: dict) -> str:
    """Cores each took in the throughput window (CPU_NAMES), "rest" the machine's less all the others."""
    cpu = dict(result["throughput"].get("cpu_cores") or {})
    if not cpu:
        return "–"
    cpu["rest"] = cpu["machine"] - sum(cpu.get(name, 0.0) for name in CPU_NAMES[:-1])  # other users', the kernel's
    return " / ".join("–" if name not in cpu else f"{cpu[name]:.2f}" for name in CPU_NAMES)


def per_core(result: dict) -> float | None:
    """Throughput per core of CPU the serving processes had: what the server does with the CPU it gets."""
    cores = (result["throughput"].get("cpu_cores") or {}).get("server")
    return result["throughput"]["rps"] / cores if cores else None


def table(results: dict, variants: list[str]) -> str:
    direct = results["direct"]
    litellm = results.get("litellm")
    scaled = scale_name(results)

    def num(value, digits=2):
        return "–" if value is None else f"{value:,.{digits}f}"

    def delta(a, b):
        return "–" if a is None or b is None else f"{a - b:+,.2f}"

    columns = [*variants, *(["litellm"] if litellm else [])]
    head = ["measurement", "direct"]
    for c in columns:
        head += [f"hub ({c})", "hub − direct"] if c != "litellm" else ["LiteLLM", "LiteLLM − direct"]
    rows = []

    def each(show, hubs_only=False) -> list[str]:
        """A column pair per column: what `show` says of it, and nothing under "… − direct"."""
        cells = []
        for c in columns:
            cells += ["–" if hubs_only and c == "litellm" else show(results[c]), ""]
        return cells

    def add(label, get, digits=2, diff=True, ratio=False, of_direct=True):
        row = [label, num(get(direct), digits) if of_direct else "–"]
        for c in columns:
            value = get(results[c])
            row.append(num(value, digits))
            if ratio:
                row.append(f"{value / get(direct):.1%} of direct" if get(direct) else "–")
            else:
                row.append(delta(value, get(direct)) if diff and of_direct else "")
        rows.append(row)

    add("latency p50 (ms)", lambda r: r["latency"]["p50_ms"])
    add("latency p99 (ms)", lambda r: r["latency"]["p99_ms"])
    add(
        f"throughput, {direct['throughput']['clients']} clients (req/s)",
        lambda r: r["throughput"]["rps"],
        0,
        ratio=True,
    )
    add("throughput errors (non-200)", lambda r: r["throughput"]["errors"], 0, diff=False)
    rows.append(
        [
            "CPU in that window, cores: server / loadgen / upstream / database / idle servers / rest (other users)",
            cpu_cell(direct),
        ]
    )
    rows[-1] += [cell for c in columns for cell in (cpu_cell(results[c]), "")]
    add("req/s per core the server used", per_core, 0, diff=False, of_direct=False)
    if scaled:
        one, two = results[scaled.split(",")[0]]["throughput"], results[scaled]["throughput"]

        def under_its_hub(label: str, cells: tuple[str, str]) -> None:
            """A row with `cells` under the hub variant that was scaled, and nothing elsewhere."""
            rows.append(
                [label, "–", *(x for c in columns for x in (cells if scaled.startswith(f"{c},") else ("", "")))]
            )

        times = f"{two['rps'] / one['rps']:.2f}x one worker" if one["rps"] else "–"
        under_its_hub(f"throughput, hub ({scaled}) (req/s)", (num(two["rps"], 0), times))
        under_its_hub(f"CPU in that window ({scaled})", (cpu_cell(results[scaled]), ""))
        # Workers race to accept(): one may take every keep-alive connection and serve alone.
        split = [f"{v:.2f}" for k, v in (two.get("cpu_cores") or {}).items() if k.startswith("worker ")]
        under_its_hub("CPU of each of the two workers", (" / ".join(split) or "–", ""))
        under_its_hub("req/s per core the two workers used", (num(per_core(results[scaled]), 0), ""))
    streams = direct["streams"]["streams"]
    add(f"stream TTFT p50, {streams} streams (ms)", lambda r: r["streams"]["ttft_p50_ms"])
    add("stream TTFT p99 (ms)", lambda r: r["streams"]["ttft_p99_ms"])
    add("stream total p50, sent to [DONE] (ms)", lambda r: r["streams"]["total_p50_ms"])
    add("stream total p99 (ms)", lambda r: r["streams"]["total_p99_ms"])
    rows.append(
        [
            "streams ended with [DONE]",
            f"{direct['streams']['done']}/{streams}",
            *each(lambda r: f"{r['streams']['done']}/{r['streams']['streams']}"),
        ]
    )
    add(
        "serving process RSS idle (MB)",
        lambda r: r.get("memory", {}).get("idle", {}).get("rss_mb"),
        1,
        diff=False,
        of_direct=False,
    )
    add(
        "RSS after the stream burst (MB)",
        lambda r: r.get("memory", {}).get("after_burst", {}).get("rss_mb"),
        1,
        diff=False,
        of_direct=False,
    )
    add(
        "peak RSS so far (VmHWM, MB)",
        lambda r: r.get("memory", {}).get("after_burst", {}).get("peak_mb"),
        1,
        diff=False,
        of_direct=False,
    )
    rows.append(
        [
            "usage records / hub requests",
            "–",
            *each(lambda r: f"{r['metering']['records']}/{r['metering']['requests_sent']}", hubs_only=True),
        ]
    )
    rows.append(
        [
            "credit balance = ledger sum",
            "–",
            *each(lambda r: "yes" if r["metering"]["balance_equals_ledger"] else "NO", hubs_only=True),
        ]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    m = results[variants[0]]["metering"]  # one organisation, one balance, whatever the variant
    lines.append(
        f"\ndemo organisation: balance {m['balance']}, ledger sum {m['ledger_sum']}"
        f" (the database's SUM says {m['ledger_sum_sql']})"
    )
    if litellm:
        lines.append("")
        lines += [ratios(results, v) for v in variants]
    return "\n".join(lines)


def ratios(results: dict, variant: str) -> str:
    """The hub against LiteLLM in one line: what the issue asks as ratios."""
    direct, hub, litellm = results["direct"], results[variant], results["litellm"]

    def added(r, mode, key):
        a, b = r[mode][key], direct[mode][key]
        return "–" if a is None or b is None else f"{a - b:+,.1f} ms"

    def times(a, b):
        return "–" if a is None or not b else f"{a / b:.2f}x ({a:,.0f} vs {b:,.0f})"

    return (
        f"hub ({variant}) against LiteLLM: req/s {times(hub['throughput']['rps'], litellm['throughput']['rps'])}"
        f" (per core the server used {times(per_core(hub), per_core(litellm))});"
        f" added latency p50 {added(hub, 'latency', 'p50_ms')} vs {added(litellm, 'latency', 'p50_ms')};"
        f" added TTFT p50 {added(hub, 'streams', 'ttft_p50_ms')} vs {added(litellm, 'streams', 'ttft_p50_ms')};"
        f" stream total p50 {added(hub, 'streams', 'total_p50_ms')} vs {added(litellm, 'streams', 'total_p50_ms')};"
        f" RSS after the burst {hub['memory']['after_burst']['rss_mb']:.1f}"
        f" vs {litellm['memory']['after_burst']['rss_mb']:.1f} MB"
    )


def run_in_temp_dir(prefix: str, keep: bool, measure, broken=(RuntimeError,)):
    """`measure(children, tmp)` in a temp dir of its own, every process it starts stopped at the end and the
    dir removed (unless `keep`); SIGTERM and SIGHUP clean up as Ctrl-C does (SIGINT too when started in the
    background, where it is ignored). (its result, None), or (None, exit code): 130 interrupted, 2 broken."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return measure(children, tmp), None
    except KeyboardInterrupt:
        log("interrupted")
        return None, 130
    except broken as exc:
        log(f"bench failed: {exc}")
        return None, 2
    finally:
        children.stop_all()
        if keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the hub against direct calls (see bench/README.md).")
    parser.add_argument(
        "--variant",
        choices=[*VARIANTS, "both"],
        default="plain",
        help="plain: the hub's async Django view; adrf: an adrf APIView; both: side by side",
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run with small counts")
    parser.add_argument(
        "--with-litellm",
        action="store_true",
        help=f"also measure the LiteLLM proxy ({LITELLM_REQUIREMENT}, installed once into --litellm-venv)",
    )
    parser.add_argument(
        "--litellm-venv",
        default=os.environ.get("HUB_BENCH_LITELLM_VENV") or str(cache_dir() / f"litellm-{LITELLM_VERSION}"),
        help="LiteLLM's virtualenv (default $HUB_BENCH_LITELLM_VENV or $XDG_CACHE_HOME/hub-bench/litellm-VERSION)",
    )
    parser.add_argument("--scale", action="store_true", help="also measure throughput on a hub with two workers")
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--latency-warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured throughput seconds")
    parser.add_argument("--throughput-warmup", type=float, default=2.0, help="seconds")
    parser.add_argument(
        "--loadgen-procs", type=int, default=1, help="throughput: load generator processes sharing the clients"
    )
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--stream-warmup", type=int, default=None, help="streams in a first wave (default: --streams)")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="the upstream's gap between stream events")
    parser.add_argument("--output", default=str(BENCH / "results" / "latest.json"))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, gunicorn logs)")
    args = parser.parse_args()
    if args.quick:
        args.latency_requests, args.latency_warmup = 300, 50
        args.seconds, args.throughput_warmup = 3.0, 1.0
        args.streams = 100
    if args.stream_warmup is None:
        args.stream_warmup = args.streams
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]

    started = time.time()
    results, failed = run_in_temp_dir("hub-bench-", args.keep, lambda children, tmp: measure(args, children, tmp))
    if failed is not None:
        return failed

    bars = {v: verdicts(results, v) for v in variants}
    if "litellm" in results:
        bars["litellm"] = litellm_verdicts(results)
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "variant": args.variant,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "litellm": LITELLM_VERSION if args.with_litellm else None,
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "results": results,
        "bars": {v: {name: {"pass": ok, "value": value} for name, (ok, value) in b.items()} for v, b in bars.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")

    against = "direct and LiteLLM" if args.with_litellm else "direct"
    print(f"\nhub vs {against}, same run, {os.cpu_count()} CPUs (noisy: compare columns, not runs)\n")
    print(table(results, variants))
    print()
    for v, b in bars.items():
        who = "LiteLLM" if v == "litellm" else f"hub ({v})"
        for name, (ok, value) in b.items():
            print(f"{'PASS' if ok else 'FAIL'}  {who}: {name}" + (f"  [{value}]" if value else ""))
    print(f"\nwritten to {os.path.relpath(args.output)}")
    return 0 if all(ok for b in bars.values() for ok, _ in b.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
