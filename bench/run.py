"""Benchmark the hub against direct calls to a fake upstream, in one run on one machine.

    python bench/run.py [--variant plain|adrf|both] [--quick] [--help for every knob]

Starts a fake OpenAI upstream, a throwaway hub (its own temp dir and database,
served by gunicorn + uvicorn worker as in production), then measures latency,
throughput and streaming time-to-first-token through the load generator, direct
and through the hub back to back. Checks that every hub request was metered and
charged, prints a markdown table and writes bench/results/latest.json.
See bench/README.md for what the numbers mean.
"""

import argparse
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

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_PY = ROOT / ".venv" / "bin" / "python"
PY = str(VENV_PY) if VENV_PY.exists() else sys.executable
VARIANTS = {"plain": "hub.settings", "adrf": "bench.settings_adrf"}
MODEL = "bench/gpt-4o-mini"  # what clients ask the hub for
UPSTREAM_MODEL = "gpt-4o-mini"  # what the hub (and a direct client) asks the upstream for
BARS = {"added_p50_ms": 3.0, "rps": 600.0}

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
        proc = subprocess.Popen(cmd, start_new_session=True, cwd=ROOT, **kwargs)
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


def gunicorn_command(port: int, *options: str) -> list[str]:
    """The hub as users run it: gunicorn with one uvicorn worker on loopback; `options` add gunicorn flags."""
    return [
        str(Path(PY).parent / "gunicorn"),
        "hub.asgi:application",
        "-k",
        "uvicorn_worker.UvicornWorker",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--graceful-timeout",
        "10",
        "--no-control-socket",  # gunicorn's default one is per user: it would take a running hub's
        *options,
    ]


def start_hub(children: Children, env: dict, variant: str, key: str) -> str:
    port = free_port()
    logfile = open(Path(env["HUB_VAR_DIR"]) / f"gunicorn-{variant}.log", "wb")
    cmd = gunicorn_command(port)
    proc = children.start(
        cmd, env=dict(env, DJANGO_SETTINGS_MODULE=VARIANTS[variant]), stdout=logfile, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the {variant} hub exited:\n{Path(logfile.name).read_text()[-3000:]}")
        try:
            if http(f"{base}/v1/models", key=key, timeout=2)[0] == 200:
                return base
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the {variant} hub did not answer within 60 s")


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


def loadgen(children: Children, env: dict, mode: str, url: str, key: str, model: str, args) -> dict:
    flags = {
        "latency": ["--requests", args.latency_requests, "--warmup", args.latency_warmup],
        "throughput": ["--clients", args.clients, "--seconds", args.seconds, "--warmup", args.throughput_warmup],
        "streams": ["--streams", args.streams, "--warmup", args.stream_warmup],
    }[mode]
    cmd = [PY, str(BENCH / "loadgen.py"), "--mode", mode, "--url", url, "--key", key, "--model", model]
    return json.loads(children.run(cmd + [str(f) for f in flags], env, timeout=args.seconds + 300))


def check_db(children: Children, env: dict, expected: dict[str, int]) -> dict:
    check_env = dict(env, BENCH_EXPECTED=json.dumps(expected), BENCH_FLUSH_WAIT="5")
    out = children.run([PY, "manage.py", "shell", "-c", CHECK_DB], check_env, timeout=120)
    return json.loads(next(line for line in out.splitlines() if line.startswith("BENCH-CHECK "))[12:])


def measure(args, children: Children, tmp: Path) -> dict:
    variants = list(VARIANTS) if args.variant == "both" else [args.variant]
    upstream_key = "sk-bench-upstream-" + secrets.token_hex(16)
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
    )
    where = "DATABASE_URL (must be a scratch database)" if env.get("DATABASE_URL") else f"SQLite in {tmp}"
    log(f"database: {where}")

    upstream_port = start_upstream(children, upstream_key, args.chunk_ms)
    direct = f"http://127.0.0.1:{upstream_port}/v1"
    keys = prepare_hub(children, env, upstream_port, variants)
    hubs = {v: start_hub(children, env, v, keys[v]) for v in variants}
    log(f"upstream {direct}; " + "; ".join(f"hub ({v}) {b}" for v, b in hubs.items()))
    preflight(direct, upstream_key, hubs, keys)
    sent = dict.fromkeys(variants, 1)  # the preflight request

    # Each measurement: direct, then every hub, back to back.
    targets = [("direct", f"{direct}/chat/completions", upstream_key, UPSTREAM_MODEL)]
    targets += [(v, f"{hubs[v]}/v1/chat/completions", keys[v], MODEL) for v in variants]
    results = {name: {} for name, *_ in targets}
    for mode in ("latency", "throughput", "streams"):
        for name, url, key, model in targets:
            result = loadgen(children, env, mode, url, key, model, args)
            results[name][mode] = result
            if name in sent:
                sent[name] += result["sent"]
            log(
                f"{mode:>10} {name:>6}: "
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


def verdicts(results: dict, variant: str) -> dict:
    direct, hub = results["direct"], results[variant]
    p50s = (hub["latency"]["p50_ms"], direct["latency"]["p50_ms"])
    added = None if None in p50s else p50s[0] - p50s[1]
    rps = hub["throughput"]["rps"]
    streams = hub["streams"]
    return {
        f"added p50 <= {BARS['added_p50_ms']:g} ms": (
            added is not None and added <= BARS["added_p50_ms"],
            "no answer" if added is None else f"{added:+.2f} ms",
        ),
        f">= {BARS['rps']:g} req/s on one worker": (rps >= BARS["rps"], f"{rps:.0f} req/s"),
        "no errors, every stream ended with [DONE]": (
            not any(hub[mode]["error_counts"] for mode in ("latency", "throughput", "streams"))
            and streams["done"] == streams["streams"],
            "",
        ),
        "every request metered, balance = ledger sum": (
            hub["metering"]["all_metered"] and hub["metering"]["balance_equals_ledger"],
            "",
        ),
    }


def table(results: dict, variants: list[str]) -> str:
    direct = results["direct"]

    def num(value, digits=2):
        return "–" if value is None else f"{value:,.{digits}f}"

    def delta(a, b):
        return "–" if a is None or b is None else f"{a - b:+,.2f}"

    head = ["measurement", "direct"]
    for v in variants:
        head += [f"hub ({v})", "hub − direct"]
    rows = []

    def each(show) -> list[str]:
        """A column pair per variant: what `show` says of it, and nothing under "hub − direct"."""
        return [cell for v in variants for cell in (show(results[v]), "")]

    def add(label, get, digits=2, diff=True, ratio=False):
        row = [label, num(get(direct), digits)]
        for v in variants:
            value = get(results[v])
            row.append(num(value, digits))
            if ratio:
                row.append(f"{value / get(direct):.1%} of direct" if get(direct) else "–")
            else:
                row.append(delta(value, get(direct)) if diff else "")
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
    add(f"stream TTFT p50, {direct['streams']['streams']} streams (ms)", lambda r: r["streams"]["ttft_p50_ms"])
    add("stream TTFT p99 (ms)", lambda r: r["streams"]["ttft_p99_ms"])
    rows.append(
        [
            "streams ended with [DONE]",
            f"{direct['streams']['done']}/{direct['streams']['streams']}",
            *each(lambda r: f"{r['streams']['done']}/{r['streams']['streams']}"),
        ]
    )
    rows.append(
        [
            "usage records / hub requests",
            "–",
            *each(lambda r: f"{r['metering']['records']}/{r['metering']['requests_sent']}"),
        ]
    )
    rows.append(
        ["credit balance = ledger sum", "–", *each(lambda r: "yes" if r["metering"]["balance_equals_ledger"] else "NO")]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    m = results[variants[0]]["metering"]  # one organisation, one balance, whatever the variant
    lines.append(
        f"\ndemo organisation: balance {m['balance']}, ledger sum {m['ledger_sum']}"
        f" (the database's SUM says {m['ledger_sum_sql']})"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the hub against direct calls (see bench/README.md).")
    parser.add_argument(
        "--variant",
        choices=[*VARIANTS, "both"],
        default="plain",
        help="plain: the hub's async Django view; adrf: an adrf APIView; both: side by side",
    )
    parser.add_argument("--quick", action="store_true", help="a ~30 s smoke run with small counts")
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--latency-warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured throughput seconds")
    parser.add_argument("--throughput-warmup", type=float, default=2.0, help="seconds")
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

    # SIGTERM and SIGHUP clean up as Ctrl-C does (SIGINT too when started in the background, where it is ignored).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    children = Children()
    tmp = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    started = time.time()
    try:
        results = measure(args, children, tmp)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except RuntimeError as exc:
        log(f"bench failed: {exc}")
        return 2
    finally:
        children.stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    bars = {v: verdicts(results, v) for v in variants}
    report = {
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "variant": args.variant,
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "settings": {k: v for k, v in vars(args).items() if k != "output"},
        "results": results,
        "bars": {v: {name: {"pass": ok, "value": value} for name, (ok, value) in b.items()} for v, b in bars.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nhub vs direct, same run, {os.cpu_count()} CPUs (noisy: compare columns, not runs)\n")
    print(table(results, variants))
    print()
    for v in variants:
        for name, (ok, value) in bars[v].items():
            print(f"{'PASS' if ok else 'FAIL'}  hub ({v}): {name}" + (f"  [{value}]" if value else ""))
    print(f"\nwritten to {os.path.relpath(args.output)}")
    return 0 if all(ok for b in bars.values() for ok, _ in b.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
