#!/usr/bin/python3
"""redis_cmds.py — Redis commands per job of kie-worker, split into round trips (commands
the worker sends) and commands run inside Lua scripts, from Redis's MONITOR stream.

usage: bench/redis_cmds.py [--jobs 500] [--task-ms 100] [--config 4x2]
Runs the jobs through the whole lifecycle (claim, createTask, pending metadata, polling,
completed metadata, completion event) against the KIE fake and a real redis-server with
--drain, and prints per job: round trips by command, commands inside scripts by command,
and total_commands_processed. MONITOR marks a command run by a script with "lua" as its
client, so the split is exact; MONITOR itself slows Redis a little, not the counts.
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KIE_BIN_DIR", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from conftest import RedisServer, FakeKie, base_env  # noqa: E402


def monitor(srv, top, inner, ready, done):
    r = srv.client()
    with r.monitor() as m:
        ready.set()
        for ev in m.listen():
            if done.is_set() and ev["command"].startswith("ECHO kie-bench-end"):
                return
            # redis-py leaves the name empty for some EVALs of a long script body
            cmd = ev["command"].split(" ", 1)[0].strip('"').upper() or "EVAL"
            (inner if ev.get("client_type") == "lua" or ev["client_address"] == "lua"
             else top)[cmd] += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=500)
    ap.add_argument("--task-ms", type=int, default=100)
    ap.add_argument("--config", default="4x2")
    ap.add_argument("--copies", type=int, default=0,
                    help="KIE_COPY_RESULTS: 1 copies each result file into the store")
    a = ap.parse_args()
    runners, pollers = (int(x) for x in a.config.split("x"))
    with tempfile.TemporaryDirectory(prefix="kie-cmds-") as d:
        srv = RedisServer(d)
        fake = FakeKie(d, task_ms=a.task_ms, create_limit=0, query_limit=0)
        try:
            r = srv.client()
            pipe = r.pipeline()
            for i in range(a.jobs):
                pipe.lpush("kie:queue", json.dumps({"v": 1, "id": f"b-{i}", "type": "raw",
                           "input": {"prompt": "bench", "imageUrl": "https://a.b/c.png"}}))
            pipe.execute()
            top, inner = collections.Counter(), collections.Counter()
            ready, done = threading.Event(), threading.Event()
            t = threading.Thread(target=monitor, args=(srv, top, inner, ready, done), daemon=True)
            t.start()
            ready.wait(10)
            r.config_resetstat()
            env = base_env(srv.url, fake.url, d, KIE_WORKER_CONCURRENCY=runners,
                           KIE_WORKER_POLLERS=pollers, KIE_POLL_INITIAL_MS=100,
                           KIE_LOG_LEVEL="warn", KIE_CREATE_LIMIT=100000,
                           KIE_CREATE_WINDOW_MS=1000, KIE_POLL_RATE=10000,
                           KIE_COPY_RESULTS=a.copies)
            for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
                env.pop(k, None)
            subprocess.run([os.path.join(BIN, "kie-worker"), "--drain"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            total = r.info("stats")["total_commands_processed"]
            done.set()
            r.echo("kie-bench-end")
            t.join(30)
            assert r.llen("kie:results") == a.jobs, r.llen("kie:results")
            assert fake.stats()["creates_total"] == a.jobs
            for name in ("CONFIG", "ECHO", "INFO", "LLEN"):  # this script's own
                top.pop(name, None)
            n = a.jobs
            print(f"{n} jobs, {runners} runners x {pollers} pollers, task {a.task_ms} ms")
            print(f"round trips/job: {sum(top.values()) / n:.2f}")
            for c, k in top.most_common():
                print(f"  {c:<16} {k / n:6.2f}")
            print(f"inside scripts/job: {sum(inner.values()) / n:.2f}")
            for c, k in inner.most_common():
                print(f"  {c:<16} {k / n:6.2f}")
            print(f"total Redis commands/job: {(sum(top.values()) + sum(inner.values())) / n:.2f}"
                  f" (total_commands_processed {total / n:.2f}, with this script's own)")
        finally:
            fake.stop()
            srv.stop()


if __name__ == "__main__":
    main()
