"""Smoke tests of the live benchmarks: tiny runs, last line one JSON object with the figures."""
import json
import shutil
import sys
from pathlib import Path

import pytest

import children

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _db14(redis_url: str) -> str:
    return redis_url.rsplit("/", 1)[0] + "/14"


def _figures(*args) -> dict:
    out = children.run([sys.executable, *map(str, args)])
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
def test_bench_ingest_prints_json_figures(redis_server):
    figures = _figures(BENCH / "ingest.py", "--duration", 1, "--rounds", 1, "--warmup", 0, "--bodies", 20,
                       "--connections", 4, "--threads", 1, "--redis-url", _db14(redis_server))
    for key in ("keepwell_rps", "minimal_rps", "trivial_rps", "ratio", "ratio_vs_trivial", "p50_ms", "p99_ms",
                "accepted", "errors", "targets", "pass"):
        assert key in figures
    assert figures["targets"] == {"ratio": 0.8, "p99_ms": 50.0}
    assert figures["ratio"] == pytest.approx(figures["keepwell_rps"] / figures["minimal_rps"], rel=0.01)
    assert figures["errors"] == {"keepwell": 0, "minimal": 0, "trivial": 0}
    assert figures["accepted"]["keepwell"] > 0 and figures["accepted"]["minimal"] > 0
    assert isinstance(figures["pass"], bool)


def test_bench_worker_prints_json_figures(redis_server):
    figures = _figures(BENCH / "worker.py", "--customers", 6, "--rounds", 1, "--shops", 2,
                       "--redis-url", _db14(redis_server))
    for key in ("keepwell_events_per_s", "noop_jobs_per_s", "ratio", "events", "decisions", "emails", "targets", "pass"):
        assert key in figures
    assert figures["targets"] == {"ratio": 1.0}
    # 6 signups, 3 paid first orders (order.created + order.paid), 6 welcome timers
    assert figures["events"] == 18 and figures["timers_fired"] == 6
    assert figures["emails"] > 0 and "pending" not in figures["decisions"] and "failed" not in figures["decisions"]
    assert figures["ratio"] == pytest.approx(figures["keepwell_events_per_s"] / figures["noop_jobs_per_s"], rel=0.01)
    assert isinstance(figures["pass"], bool)


def test_bench_import_prints_json_figures(redis_server):
    figures = _figures(BENCH / "import.py", "--orders", 300, "--repeat", 1, "--redis-url", redis_server)
    for key in ("ratio", "target", "orders", "repeat", "database", "platforms", "pass"):
        assert key in figures
    assert figures["target"] == 0.5 and figures["orders"] == 300 and figures["database"] == "sqlite"
    for platform in ("shopify", "woocommerce"):
        p = figures["platforms"][platform]
        assert p["orders"] == 300 and p["customers"] >= 60 and p["events"] > 300
        assert p["ratio"] == pytest.approx(p["parse_s"] / p["import_s"], rel=0.01)
    assert figures["ratio"] == min(p["ratio"] for p in figures["platforms"].values())
    assert isinstance(figures["pass"], bool)


def test_bench_fork_prints_json_figures(redis_server):
    figures = _figures(BENCH / "fork.py", "--jobs", 3, "--rounds", 1, "--redis-url", _db14(redis_server))
    for key in ("simple_cpu_ms_per_job", "forking_cpu_ms_per_job", "ratio", "jobs", "events", "pass"):
        assert key in figures
    assert figures["jobs"] == {"SimpleWorker": 3, "Worker (fork per job)": 3}
    assert figures["ratio"] == pytest.approx(figures["forking_cpu_ms_per_job"] / figures["simple_cpu_ms_per_job"],
                                             rel=0.01)
    assert figures["dead_letters"] == 0 and figures["failed_jobs"] == 0 and figures["pass"] is True
