#!/usr/bin/python3
"""bench_worker.py — throughput, peak memory and CPU per job of kie-worker against the
KIE fake and a real redis-server, at several thread counts.

usage: bench/bench_worker.py [--jobs 2000] [--task-ms 100] [--configs 4x2,16x4,64x8]
Prints one Markdown table row per configuration (runners x pollers). Peak RSS is the
worker's VmHWM, sampled from /proc every 20 ms until it exits (wait4's ru_maxrss would
count this Python process's memory too: Linux keeps the pre-exec high-water mark of a
forked child). Redis cmds/job is what Redis ran for the worker (total_commands_processed from a reset after the enqueue,
commands inside Lua scripts included), per job.
"""
import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KIE_BIN_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from conftest import RedisServer, FakeKie, base_env  # noqa: E402


def sample_hwm(p, out):
    """Keeps the largest VmHWM (KiB) of p's /proc/<pid>/status in out[0] until p exits."""
    while True:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        out[0] = max(out[0], int(line.split()[1]))
        except OSError:
            return
        if p.returncode is not None:
            return
        time.sleep(0.02)


def run(cfg, jobs, task_ms, tmp):
    runners, pollers = (int(x) for x in cfg.split("x"))
    d = tempfile.mkdtemp(dir=tmp)
    srv = RedisServer(d)
    fake = FakeKie(d, task_ms=task_ms, create_limit=0, query_limit=0)
    try:
        r = srv.client()
        pipe = r.pipeline()
        for i in range(jobs):
            pipe.lpush("kie:queue", json.dumps({"v": 1, "id": f"b-{i}", "type": "raw",
                       "input": {"prompt": "bench", "imageUrl": "https://a.b/c.png"}}))
        pipe.execute()
        r.config_resetstat()  # count only what the worker sends
        env = base_env(srv.url, fake.url, d, KIE_WORKER_CONCURRENCY=runners,
                       KIE_WORKER_POLLERS=pollers, KIE_POLL_INITIAL_MS=100,
                       # the account's limits off, as in the fake: the worker is measured
                       KIE_CREATE_LIMIT=100000, KIE_CREATE_WINDOW_MS=1000,
                       KIE_POLL_RATE=10000, KIE_LOG_LEVEL="warn")
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            env.pop(k, None)
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(BIN, "kie-worker"), "--drain"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hwm = [0]
        sampler = threading.Thread(target=sample_hwm, args=(p, hwm), daemon=True)
        sampler.start()
        _, status, ru = os.wait4(p.pid, 0)
        sampler.join()
        wall = time.monotonic() - t0
        calls = r.info("stats")["total_commands_processed"]
        done = r.llen("kie:results")
        creates = fake.stats()["creates_total"]
        assert done == jobs and creates == jobs, (done, creates)
        cpu = ru.ru_utime + ru.ru_stime
        return (f"| {runners} x {pollers} | {jobs} | {wall:.2f} | {jobs / wall:.0f} | "
                f"{hwm[0] / 1024:.1f} | {cpu * 1e6 / jobs:.0f} | {calls / jobs:.1f} |")
    finally:
        fake.stop()
        srv.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--task-ms", type=int, default=100)
    ap.add_argument("--configs", default="4x2,16x4,64x8")
    a = ap.parse_args()
    print(f"kie-worker {BIN}: {a.jobs} raw jobs, fake task time {a.task_ms} ms, "
          f"{os.cpu_count()} cores")
    print("| runners x pollers | jobs | wall s | jobs/s | peak RSS MiB | CPU µs/job | "
          "Redis cmds/job |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="kie-bench-") as tmp:
        for cfg in a.configs.split(","):
            print(run(cfg, a.jobs, a.task_ms, tmp), flush=True)


if __name__ == "__main__":
    main()
