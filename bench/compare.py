#!/usr/bin/python3
"""compare.py — kie-worker against a BullMQ worker doing the same job (bench/bullmq/), one
after the other, each against fresh fakes: a real redis-server, the KIE fake
(tests/fake_kie.py, its limits off, tasks taking --task-ms) and the SigV4-checking S3
fake (tests/fake_s3.py). Prints a Markdown table ready to paste into docs/performance.md.

usage: bench/compare.py [--jobs 2000] [--task-ms 100] [--configs 16x4,10x10]
                        [--systems kie-worker,bullmq] [--round-trips 300]
       bench/compare.py --groups 1,100,10000 [--group-picks 2000]   (the pick's cost)

Each configuration RxP runs kie-worker with R runners and P pollers, and BullMQ with
concurrency R+P (one run per distinct R+P): the same number of jobs' HTTP and store calls
in flight at once.

Both producers enqueue the same N jobs before the worker starts (kie-worker: LPUSH of
its descriptors; BullMQ: Queue.addBulk); then the worker runs until the N-th completion
event is on its results list. Measured at that moment: wall time from the worker's
start, the worker process's utime+stime (/proc/<pid>/stat) and VmHWM, Redis's
used_cpu_user+used_cpu_sys and total_commands_processed (commands inside Lua scripts
included) since the enqueue, minus the commands this script sent to watch. Checked,
or the run fails: exactly N createTask calls at the KIE fake, N metadata objects in
the S3 fake, N completion events with N distinct job ids, all "completed".

--round-trips M (0 = off) runs each system once more with M jobs and a MONITOR client
that tells the commands a client sent (one round trip each, pipelined or not) from
those Lua scripts ran ("lua" in MONITOR's output); MONITOR slows Redis, so that pass
is not timed.
"""
import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("KIE_BIN_DIR", os.path.join(ROOT, "build"))
BULLMQ_DIR = os.path.join(ROOT, "bench", "bullmq")
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from conftest import RedisServer, FakeKie, FakeS3, base_env, stop_proc, TOKEN  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def proc_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise BenchError(f"no VmHWM in /proc/{pid}/status")


def redis_cpu_s(r):
    c = r.info("cpu")
    return c["used_cpu_user"] + c["used_cpu_sys"]


def ensure_node_modules():
    """Installs bench/bullmq's locked dependencies when node_modules is missing."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise BenchError("node and npm are needed for the BullMQ side "
                         "(Debian: apt-get install nodejs npm)")
    import fcntl
    # one npm ci at a time: the system tests run in parallel, and several may get here at
    # once on a fresh clone (an flock on the directory itself, released on any exit)
    fd = os.open(BULLMQ_DIR, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.path.isdir(os.path.join(BULLMQ_DIR, "node_modules", "bullmq")):
            return
        p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BULLMQ_DIR,
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            raise BenchError(f"npm ci in bench/bullmq failed:\n{p.stderr[-2000:]}")
    finally:
        os.close(fd)


class Monitor(threading.Thread):
    """Counts the commands MONITOR reports, those run by Lua scripts apart."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(b"MONITOR\r\n")
        self.client = 0
        self.script = 0
        self.own = 0  # commands of this script's own connections, taken out
        self.ignore_addrs = set()
        self.stopped = False

    def run(self):
        buf = b""
        while not self.stopped:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                # +1700000000.123456 [0 127.0.0.1:5555] "set" "a" / [0 lua] "get" ...
                m = re.match(rb"\+\d+\.\d+ \[\d+ ([^\]]+)\]", line)
                if not m:
                    continue
                who = m.group(1)
                if who == b"lua":
                    self.script += 1
                elif who in self.ignore_addrs:
                    self.own += 1
                else:
                    self.client += 1

    def stop(self):
        self.stopped = True
        self.sock.close()


def enqueue_kie_worker(r, jobs):
    pipe = r.pipeline()
    for i in range(jobs):
        pipe.lpush("kie:queue", json.dumps(
            {"v": 1, "id": f"b-{i}", "type": "raw",
             "input": {"prompt": "bench", "imageUrl": "https://a.b/c.png"}},
            separators=(",", ":")))
    pipe.execute()


def start_kie_worker(srv, fake, s3, d, a, log):
    env = base_env(srv.url, fake.url, d, **s3.env(),
                   KIE_WORKER_CONCURRENCY=a.runners, KIE_WORKER_POLLERS=a.pollers,
                   KIE_POLL_INITIAL_MS=a.poll_initial_ms, KIE_CREATE_LIMIT=100000,
                   KIE_CREATE_WINDOW_MS=1000, KIE_POLL_RATE=10000, KIE_LOG_LEVEL="warn",
                   # the BullMQ worker keeps no copies of the result files: the same work
                   KIE_COPY_RESULTS=0)
    # not --drain: it would exit within milliseconds of its last job, before its CPU time
    # and peak memory are read from /proc; it is stopped after the reading instead
    return subprocess.Popen([os.path.join(BIN, "kie-worker")], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def bullmq_env(srv, fake, s3, a):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIE_", "R2_", "REDIS_", "BENCH_"))}
    env.update(s3.env())
    env.update(REDIS_URL=srv.url, KIE_BASE_URL=fake.url, KIE_API_TOKEN=TOKEN,
               BENCH_CONCURRENCY=str(a.runners + a.pollers),
               BENCH_POLL_INITIAL_MS=str(a.poll_initial_ms), BENCH_RESULTS_KEY="kie:results")
    return env


def enqueue_bullmq(srv, fake, s3, a, jobs):
    p = subprocess.run(["node", os.path.join(BULLMQ_DIR, "produce.mjs"), str(jobs)],
                       env=bullmq_env(srv, fake, s3, a), capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        raise BenchError(f"produce.mjs failed ({p.returncode}):\n{p.stderr[-2000:]}")


def start_bullmq(srv, fake, s3, d, a, log):
    return subprocess.Popen(["node", os.path.join(BULLMQ_DIR, "worker.mjs")],
                            env=bullmq_env(srv, fake, s3, a), stdout=log,
                            stderr=subprocess.STDOUT)


SYSTEMS = {
    "kie-worker": (lambda srv, fake, s3, a, jobs: enqueue_kie_worker(srv.client(), jobs),
                   start_kie_worker),
    "bullmq": (enqueue_bullmq, start_bullmq),
}


def run_system(system, a, jobs, tmp, monitor=False, timeout_s=None):
    """One run of one system against fresh fakes in a new folder of tmp (the worker's
    log stays there: out["log"]). Returns a dict of figures and counts; raises BenchError
    when the work was not all done. a carries task_ms, poll_initial_ms, runners, pollers."""
    enqueue, start = SYSTEMS[system]
    d = tempfile.mkdtemp(dir=tmp, prefix=system + "-")
    srv = fake = s3 = proc = mon = None
    logpath = os.path.join(d, "worker.log")
    try:
        srv = RedisServer(d)
        fake = FakeKie(d, task_ms=a.task_ms, create_limit=0, query_limit=0)
        s3 = FakeS3(d)
        r = srv.client()
        enqueue(srv, fake, s3, a, jobs)
        r.config_resetstat()
        if monitor:
            mon = Monitor(srv.port)
            mon.ignore_addrs.add(r.client_info()["addr"].encode())
            mon.start()
        cpu0 = redis_cpu_s(r)
        own = 1  # the INFO above
        timeout = timeout_s or 60 + jobs * 0.05
        with open(logpath, "w") as log:
            t0 = time.monotonic()
            proc = start(srv, fake, s3, d, a, log)
            while True:
                done = r.llen("kie:results")
                own += 1
                if done >= jobs:
                    break
                if proc.poll() is not None:
                    raise BenchError(f"{system} exited ({proc.returncode}) after {done} of "
                                     f"{jobs} completions")
                if time.monotonic() - t0 > timeout:
                    raise BenchError(f"{system}: {done} of {jobs} completions after "
                                     f"{timeout:.0f} s")
                time.sleep(0.02)
            wall = time.monotonic() - t0
            cpu = proc_cpu_s(proc.pid)
            hwm = proc_hwm_kib(proc.pid)
            stats = r.info("stats")
            cmdstats = r.info("commandstats")
            redis_cpu = redis_cpu_s(r) - cpu0
            cmds = stats["total_commands_processed"] - own - 2  # - INFO cpu, commandstats
            if mon:
                time.sleep(0.2)
                mon.stop()
            stop_proc(proc)
        exit_code = proc.returncode
        kst, sst = fake.stats(), s3.stats()
        events = [json.loads(e) for e in r.lrange("kie:results", 0, -1)]
        label = (f"kie-worker {a.runners} x {a.pollers}" if system == "kie-worker"
                 else f"BullMQ {a.runners + a.pollers}")
        out = {"system": label, "jobs": jobs, "wall_s": wall, "cpu_s": cpu,
               "hwm_kib": hwm, "redis_cpu_s": redis_cpu, "redis_cmds": cmds,
               "creates": kst["creates_total"], "record_info": kst["record_info_total"],
               "s3_objects": sst["objects"], "s3_requests": sst["accepted"],
               "events": len(events), "event_ids": len({e["jobId"] for e in events}),
               "completed": sum(e["status"] == "completed" for e in events),
               "exit": exit_code, "log": logpath,
               "commandstats": {k[len("cmdstat_"):]: v["calls"] for k, v in cmdstats.items()},
               "commandusec": {k[len("cmdstat_"):]: v["usec"] for k, v in cmdstats.items()}}
        if mon:
            out.update(client_cmds=mon.client, script_cmds=mon.script)
        bad = [k for k in ("creates", "s3_objects", "events", "event_ids", "completed")
               if out[k] != jobs]
        if bad:
            raise BenchError(f"{system} did not do all the work ({jobs} jobs): " +
                             ", ".join(f"{k}={out[k]}" for k in bad))
        return out
    except BenchError as e:
        try:
            with open(logpath) as f:
                tail = f.read()[-3000:]
        except OSError:
            tail = ""
        raise BenchError(f"{e}\n--- {system} log (tail) ---\n{tail}") from None
    finally:
        if mon:
            mon.stop()
        if proc:
            stop_proc(proc)
        for x in (s3, fake, srv):
            if x:
                x.stop()


def version(cmd, pattern=r"(\d+\.\d+\.\d+)"):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except OSError:
        return "?"
    m = re.search(pattern, out)
    return m.group(1) if m else "?"


def machine_facts():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    try:
        with open(os.path.join(BULLMQ_DIR, "node_modules", "bullmq", "package.json")) as f:
            bullmq = json.load(f)["version"]
    except OSError:
        bullmq = "?"
    return (f"{os.cpu_count()} CPUs ({model}), {mem_kib / 1048576:.1f} GiB RAM, "
            f"Linux {platform.release()}; redis-server {version(['redis-server', '--version'])}, "
            f"node {version(['node', '--version'])}, bullmq {bullmq}; "
            f"{time.strftime('%Y-%m-%d', time.gmtime())}")


def row(o):
    n = o["jobs"]
    return (f"| {o['system']} | {n} | {o['wall_s']:.2f} | {n / o['wall_s']:.0f} | "
            f"{o['cpu_s'] * 1e3 / n:.2f} | {o['redis_cpu_s'] * 1e3 / n:.2f} | "
            f"{o['hwm_kib'] / 1024:.1f} | {o['redis_cmds'] / n:.1f} | "
            f"{o['record_info'] / n:.2f} | {o['s3_requests'] / n:.2f} |")


# --- issue 19: the pick's Redis cost by the number of groups ---

def lua_src(name):
    for sub in ("pool",):
        path = os.path.join(ROOT, "common", sub, "lua", name + ".lua")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                return f.read()
    raise BenchError(f"no script {name}.lua")


def groups_run(groups, jobs_per_group_min, picks, tmp):
    """The scheduling scripts alone against a real redis-server: route.lua queues jobs over
    G groups (at least jobs_per_group_min each, and at least 2 * picks in all), then
    pick.lua + job_start.lua run `picks` times as a runner would (the processing list
    emptied between picks, as the runner's hand-off does). Returns Redis's own µs per
    call of each script (INFO commandstats: the script and the commands it ran) and the
    ready set's size. The worker's calls, without the worker: the script's cost is what
    grows with G, if anything does."""
    d = tempfile.mkdtemp(dir=tmp, prefix="groups-")
    srv = RedisServer(d)
    try:
        r = srv.client()
        P, S = "kie", "kie:sched:default"
        route, pick, start = (r.register_script(lua_src(n))
                              for n in ("route", "pick", "job_start"))
        n = max(2 * picks, groups * jobs_per_group_min)
        proc = "kie:processing:bench#router"
        for i in range(n):
            jid, g = f"b{i}", f"user{i % groups}"
            raw = json.dumps({"v": 1, "id": jid, "group": g})
            r.lpush(proc, raw)
            route(keys=[f"{P}:job:{jid}", f"{P}:recoveries", proc, f"{S}:ready",
                        f"{S}:delayed", f"{S}:items", f"{S}:state", f"{S}:gtag",
                        f"{S}:gcount", f"{S}:inflight", f"{S}:picked", f"{P}:group:weight",
                        f"{S}:wake", f"{P}:cancel:{jid}", f"{P}:stats", f"{P}:results"],
                  args=[raw, jid, "bench#router", 5000, 3, "raw", "", "", "0", 5, g, 0, "0",
                        f"{P}:events", 1000, 1000, 3600, 600])
        route_stats = r.info("commandstats")
        r.config_resetstat()
        runner = "kie:processing:bench#0"
        pk = [f"{S}:ready", f"{S}:delayed", f"{S}:items", f"{S}:state", f"{S}:gtag",
              f"{S}:gcount", f"{S}:inflight", f"{S}:picked", f"{S}:parked",
              f"{S}:parkedGroups", f"{P}:group:weight", f"{P}:group:limit", f"{P}:pause",
              runner, f"{S}:wake"]
        for _ in range(picks):
            out = pick(keys=pk, args=[10])
            jid = out[1] if isinstance(out[1], str) else out[1].decode()
            start(keys=[f"{P}:job:{jid}", f"{P}:pause", f"{S}:inflight", f"{S}:picked"],
                  args=["bench#0", 5000, jid, ""])
            r.delete(runner)
        cs = r.info("commandstats")
        ev = cs.get("cmdstat_evalsha", {})
        rev = route_stats.get("cmdstat_evalsha", {})
        return {"groups": groups, "queued": n, "route_us": rev.get("usec_per_call", 0),
                "pick_and_start_us": ev.get("usec", 0) / max(1, picks),
                "calls": ev.get("calls", 0)}
    finally:
        srv.stop()


def print_groups(spec, picks):
    rows = []
    with tempfile.TemporaryDirectory(prefix="kie-bench-groups-") as tmp:
        for g in (int(x) for x in spec.split(",")):
            print(f"groups run: {g} group(s) ...", file=sys.stderr, flush=True)
            rows.append(groups_run(g, 2, picks, tmp))
    print("\nThe pick's Redis cost by the number of groups (route.lua, then pick.lua + "
          f"job_start.lua {picks} times; Redis's µs inside the scripts, INFO "
          "commandstats):\n")
    print("| groups | jobs queued | route µs/job | pick + start µs/job |")
    print("|---|---|---|---|")
    for o in rows:
        print(f"| {o['groups']} | {o['queued']} | {o['route_us']:.1f} | "
              f"{o['pick_and_start_us']:.1f} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("BENCH_JOBS", 2000)))
    ap.add_argument("--task-ms", type=int, default=100)
    ap.add_argument("--poll-initial-ms", type=int, default=100)
    ap.add_argument("--configs", default="16x4,10x10",
                    help="kie-worker runners x pollers; BullMQ runs with their sum")
    ap.add_argument("--systems", default="kie-worker,bullmq")
    ap.add_argument("--commandstats", action="store_true",
                    help="also print Redis's INFO commandstats per job of each run")
    ap.add_argument("--round-trips", type=int, default=300,
                    help="jobs of the MONITOR pass per system (0: no such pass)")
    ap.add_argument("--groups", default="",
                    help="only the scheduling run: e.g. 1,100,10000 groups (pick's cost)")
    ap.add_argument("--group-picks", type=int, default=2000)
    a = ap.parse_args()
    if a.groups:
        try:
            print_groups(a.groups, a.group_picks)
        except BenchError as e:
            print(f"bench failed: {e}", file=sys.stderr)
            return 1
        return 0
    systems = a.systems.split(",")
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"--systems: unknown system {s!r} (kie-worker, bullmq)")
    try:
        configs = [tuple(int(x) for x in c.split("x")) for c in a.configs.split(",")]
        if not configs or any(len(c) != 2 or min(c) < 1 for c in configs):
            raise ValueError
    except ValueError:
        ap.error(f"--configs: {a.configs!r} is not a list of RxP such as 16x4,10x10")
    runs = []  # (system, runners, pollers); BullMQ once per distinct sum
    sums = set()
    for rn, pl in configs:
        if "kie-worker" in systems:
            runs.append(("kie-worker", rn, pl))
        if "bullmq" in systems and rn + pl not in sums:
            sums.add(rn + pl)
            runs.append(("bullmq", rn, pl))
    try:
        if "bullmq" in systems:
            ensure_node_modules()
        if "kie-worker" in systems and not os.access(os.path.join(BIN, "kie-worker"), os.X_OK):
            raise BenchError(f"no {BIN}/kie-worker: run make first")
        with tempfile.TemporaryDirectory(prefix="kie-bench-") as tmp:
            results, trips = [], []
            for s, a.runners, a.pollers in runs:
                what = (f"{a.runners}x{a.pollers}" if s == "kie-worker"
                        else f"concurrency {a.runners + a.pollers}")
                print(f"running {s} {what}: {a.jobs} jobs ...",
                      file=sys.stderr, flush=True)
                results.append(run_system(s, a, a.jobs, tmp))
            if a.round_trips:
                a.runners, a.pollers = configs[0]
                for s in systems:
                    print(f"counting the commands of {s} with MONITOR: {a.round_trips} "
                          "jobs ...", file=sys.stderr, flush=True)
                    trips.append(run_system(s, a, a.round_trips, tmp, monitor=True))
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        return 1
    print(f"\n{machine_facts()}.")
    print(f"Each run: {a.jobs} jobs enqueued first; the KIE fake's tasks take {a.task_ms} ms, "
          f"its limits off; first poll {a.poll_initial_ms} ms after the create; kie-worker "
          "R runners x P pollers, BullMQ concurrency R + P.\n")
    print("| system | jobs | wall s | jobs/s | worker CPU ms/job | Redis CPU ms/job | "
          "worker peak RSS MiB | Redis cmds/job | recordInfo/job | S3 requests/job |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for o in results:
        print(row(o))
    if a.commandstats:
        names = sorted({c for o in results for c in o["commandstats"]},
                       key=lambda c: -max(o["commandusec"].get(c, 0) / o["jobs"]
                                          for o in results))
        print("\nINFO commandstats per job: calls, and Redis's µs in them (a script's µs "
              "include the commands it ran, which are also counted on their own lines):\n")
        print("| command | " + " | ".join(o["system"] + " calls | µs" for o in results) + " |")
        print("|---|" + "---|---|" * len(results))
        for c in names:
            print(f"| {c} | " + " | ".join(
                f"{o['commandstats'].get(c, 0) / o['jobs']:.2f} | "
                f"{o['commandusec'].get(c, 0) / o['jobs']:.1f}" for o in results) + " |")


if __name__ == "__main__":
    sys.exit(main())
