#!/usr/bin/python3
"""bench_drain.py — how long `kie-worker --drain` takes to exit after its last completion.

usage: bench/bench_drain.py [--runs 20] [--jobs 5]
Each run: a fresh queue of --jobs raw jobs, one worker in drain mode (release build,
build/ or KIE_BIN_DIR), a watcher that sees the last completion event appear in
<p>:results (polling every 1 ms) and the time the process is reaped. Prints the median,
90th percentile and maximum of (exit - last completion) in milliseconds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KIE_BIN_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from conftest import RedisServer, FakeKie, base_env, Worker  # noqa: E402


def one(srv, fake, d, jobs, n):
    r = srv.client()
    r.flushall()
    for i in range(jobs):
        r.lpush("kie:queue", json.dumps({"v": 1, "id": f"d{n}-{i}", "type": "raw",
                "input": {"prompt": "drain", "imageUrl": "https://a.b/c.png"}}))
    env = base_env(srv.url, fake.url, d, **{**Worker.FAST, "KIE_LOG_LEVEL": "warn"})
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env.pop(k, None)
    p = subprocess.Popen([os.path.join(BIN, "kie-worker"), "--drain"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while r.llen("kie:results") < jobs:
        time.sleep(0.001)
    last = time.monotonic()
    while p.poll() is None:
        time.sleep(0.001)
    assert p.returncode == 0, p.returncode
    return (time.monotonic() - last) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--jobs", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kie-drain-") as d:
        srv = RedisServer(d)
        fake = FakeKie(d, task_ms=50, create_limit=0, query_limit=0)
        try:
            ms = sorted(one(srv, fake, d, a.jobs, n) for n in range(a.runs))
        finally:
            fake.stop()
            srv.stop()
    p90 = ms[int(0.9 * (len(ms) - 1))]
    print(f"kie-worker --drain ({BIN}), {a.runs} runs of {a.jobs} jobs: exit after the last "
          f"completion: median {statistics.median(ms):.0f} ms, p90 {p90:.0f} ms, "
          f"max {ms[-1]:.0f} ms")


if __name__ == "__main__":
    main()
