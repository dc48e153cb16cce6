"""bench/run.py's bars and readings on made-up results: the issue's ratios are computed against the right
columns, pass at their bound and fail past it; RSS and CPU are read from /proc of real processes; the pinned
LiteLLM virtualenv is reused once installed. No timing here: the bench itself measures (bench/README.md)."""

import subprocess
import sys
import time

import pytest

from bench import loadgen, run


def measured(*, p50, rps, ttft, total, rss=None, server_cores=1.0, errors=None):
    result = {
        "latency": {"p50_ms": p50, "p99_ms": p50 * 2, "error_counts": errors or {}},
        "throughput": {
            "clients": 32,
            "rps": rps,
            "errors": 0,
            "error_counts": {},
            "cpu_cores": {"server": server_cores, "loadgen": 0.2, "upstream": 0.1, "machine": 1.5},
        },
        "streams": {
            "streams": 500,
            "done": 500,
            "ttft_p50_ms": ttft,
            "ttft_p99_ms": ttft * 2,
            "total_p50_ms": total,
            "total_p99_ms": total * 2,
            "error_counts": {},
        },
    }
    if rss is not None:
        result["memory"] = {
            "idle": {"rss_mb": rss - 10, "peak_mb": rss - 10},
            "after_burst": {"rss_mb": rss, "peak_mb": rss},
        }
    return result


def results(**hub):
    """direct, a hub that meets every bar by a little, LiteLLM, and the hub on two workers."""
    direct = measured(p50=0.2, rps=10000, ttft=25, total=230, server_cores=0)
    plain = measured(**{"p50": 1.1, "rps": 1000, "ttft": 190, "total": 250, "rss": 140} | hub)
    plain["metering"] = {
        "records": 10,
        "requests_sent": 10,
        "all_metered": True,
        "balance_equals_ledger": True,
        "balance": "1",
        "ledger_sum": "1",
        "ledger_sum_sql": "1",
    }
    litellm = measured(p50=9, rps=100, ttft=5000, total=8000, rss=500)
    cores = {"server": 1.7, "machine": 2, "worker 11": 0.9, "worker 12": 0.8}
    scaled = {"throughput": dict(plain["throughput"], rps=1700, cpu_cores=cores)}
    return {"direct": direct, "plain": plain, "litellm": litellm, "plain, 2 workers": scaled}


def passed(bars):
    return {name.split(" <= ")[0].split(" >= ")[0]: ok for name, (ok, _) in bars.items()}


def test_a_hub_just_inside_every_bar_passes_them_all():
    bars = run.verdicts(results(), "plain")
    assert all(ok for ok, _ in bars.values()), bars
    assert bars["req/s >= 10x LiteLLM's, one worker each"][1] == "10.00x (1000 vs 100 req/s)"
    assert bars["2 workers >= 1.7x one worker's req/s"][1] == "1.70x (1700 vs 1000)"
    assert bars["stream total p50 <= 1.1x direct"][1] == "1.087x (250 vs 230 ms)"


@pytest.mark.parametrize(
    ("change", "bar"),
    [
        ({"p50": 1.3}, "added p50"),  # 1.1 ms over direct's 0.2
        ({"rps": 990}, "req/s"),  # 9.9x LiteLLM's (and 1.72x on two workers still)
        ({"ttft": 196}, "stream TTFT p50 - direct"),  # 171 ms over direct's 25
        ({"total": 254}, "stream total p50"),  # 1.104x direct's 230
        ({"rss": 151}, "worker RSS after the stream burst"),
        ({"rps": 1010}, "2 workers"),  # 1700 is 1.68x of 1010
    ],
)
def test_each_bar_fails_just_past_its_bound(change, bar):
    verdict = passed(run.verdicts(results(**change), "plain"))
    assert [name for name, ok in verdict.items() if not ok] == [bar]


def test_without_litellm_the_absolute_bar_stands_and_with_a_failing_litellm_its_bar_fails():
    r = results()
    del r["litellm"]
    assert run.verdicts(r, "plain")[">= 600 req/s on one worker"] == (True, "1000 req/s")
    r = results()
    r["litellm"]["streams"]["done"] = 499
    assert not any(ok for ok, _ in run.litellm_verdicts(r).values())


def test_the_table_shows_litellm_and_the_two_worker_hub_beside_the_hub():
    text = run.table(results(), ["plain"])
    assert "| measurement | direct | hub (plain) | hub − direct | LiteLLM | LiteLLM − direct |" in text
    assert "| throughput, hub (plain, 2 workers) (req/s) | – | 1,700 | 1.70x one worker |  |  |" in text
    assert "| req/s per core the server used | – | 1,000 |  | 100 |  |" in text
    assert "| CPU of each of the two workers | – | 0.90 / 0.80 |  |  |  |" in text
    assert "| 1.00 / 0.20 / 0.10 / – / – / 0.20 |  |" in text  # the rest: the machine's 1.5 less the others
    assert "| RSS after the stream burst (MB) | – | 140.0 |  | 500.0 |  |" in text
    assert "req/s 10.00x (1,000 vs 100)" in text


def test_rss_and_cpu_are_read_from_proc_of_the_serving_processes():
    child = subprocess.Popen([sys.executable, "-c", "import time; x = b'x' * (64 << 20); time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while run.rss_mb([child.pid])["rss_mb"] < 64 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.pid in run.child_pids(run.os.getpid())
        memory = run.rss_mb([child.pid])
        assert 64 <= memory["rss_mb"] <= memory["peak_mb"] < 200
    finally:
        child.kill()
        child.wait()
    watch = [("me", run.os.getpid())]
    before = loadgen.cpu_snapshot(watch)
    end = time.perf_counter() + 0.3
    while time.perf_counter() < end:
        pass
    cores = loadgen.cpu_cores(before, loadgen.cpu_snapshot(watch), watch)
    assert 0.5 < cores["me"] <= 1.05  # a busy loop is one core, as the process itself counts it
    assert cores["machine"] >= cores["me"] - 0.05


class NoCommands(run.Children):
    def run(self, cmd, env, timeout):
        raise AssertionError(f"ran {cmd}")


def test_an_installed_litellm_venv_is_reused_and_another_pin_is_installed_anew(tmp_path):
    litellm = tmp_path / "bin" / "litellm"
    litellm.parent.mkdir()
    litellm.write_text("")
    (tmp_path / "bench-installed.txt").write_text(run.LITELLM_REQUIREMENT + "\n")
    assert run.litellm_venv(NoCommands(), tmp_path) == litellm
    (tmp_path / "bench-installed.txt").write_text("litellm[proxy]==1.0.0\n")
    with pytest.raises(AssertionError, match="'-m', 'venv'"):
        run.litellm_venv(NoCommands(), tmp_path)
    assert not litellm.exists()  # the old one is gone before the new one is made
