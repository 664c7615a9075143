#!/usr/bin/python3
"""compare.py — kie-worker against a BullMQ worker doing the same job (bench/bullmq/), one
after the other, each against fresh fakes: a real redis-server, the KIE fake
(tests/fake_kie.py, its limits off, tasks taking --task-ms) and the SigV4-checking S3
fake (tests/fake_s3.py). Prints a Markdown table ready to paste into docs/performance.md.

usage: bench/compare.py [--jobs 2000] [--task-ms 100] [--configs 16x4,10x10]
                        [--systems kie-worker,bullmq] [--round-trips 300] [--repeat 3]
                        [--latency-jobs 120] [--memory-jobs 1000]
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

--repeat K (default 3) runs each throughput run K times and prints the median of each
figure (the runs of one sitting vary by about ±25% on a shared machine).

The latency run (issue 18; --latency-jobs N, 0 = off): N generate_image jobs through
kie-worker at KIE's real limits (the KIE fake's 20 createTask per 10 s, 10 recordInfo per
second), its tasks taking --latency-task-ms (300), result copies on (the S3 fake), every
server on loopback. KIE's callbacks reach an "app" route of this script (a small HTTP
server) that LPUSHes each onto kie:callbacks unverified, as docs/protocol.md section 9
lets a web app do; the worker serves no callback route itself. A subscriber on
kie:events timestamps each event's arrival; completeTime is read back from the KIE fake
(the moment its task finished). Printed: p50 / p90 / p99 / max of completeTime -> event,
with callbacks, and again with polling only (no callback URL: KIE_POLL_INITIAL_MS).

The memory run (--memory-jobs N, 0 = off): N generate_image jobs, limits off, copies on,
then MEMORY USAGE of every key the finished jobs left (job and task hashes) per job, and
used_memory after minus before with the capped lists (<p>:results, replyTo) taken out;
and what that is per account-week at KIE's full rate (172,800 jobs a day).

BENCH_LOG_LEVEL=debug and BENCH_KEEP_LOG=<file> keep the latency run's worker log;
BENCH_CB_ONLY=1 skips its polling-only pass; BENCH_MEM_DEBUG=1 prints the memory run's
MEMORY USAGE by key kind.

--round-trips M (0 = off) runs each system once more with M jobs and a MONITOR client
that tells the commands a client sent (one round trip each, pipelined or not) from
those Lua scripts ran ("lua" in MONITOR's output); MONITOR slows Redis, so that pass
is not timed.
"""
import argparse
import collections
import http.server
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse

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


def with_log_tail(e, who, logpath):
    """e with the last 3000 bytes of the worker's log appended (a run that failed)."""
    try:
        with open(logpath) as f:
            tail = f.read()[-3000:]
    except OSError:
        tail = ""
    return BenchError(f"{e}\n--- {who} log (tail) ---\n{tail}")


def script_names():
    """sha1 -> script name, from the generated build/gen/lua_scripts.c (the expanded
    text's SHA1, which Redis knows each script by)."""
    path = os.path.join(BIN, "gen", "lua_scripts.c")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return {}
    return {sha: name for name, sha in
            re.findall(r'struct script lua_\w+ = \{"(\w+)", \w+, \d+, "([0-9a-f]{40})"\}', text)}


def slowlog_by_command(r, names):
    """Every top-level command Redis ran (SLOWLOG at threshold 0; a script's inner commands
    are not logged on their own), summed by script name or command: {name: [calls, µs]}."""
    out = collections.defaultdict(lambda: [0, 0])
    for e in r.slowlog_get(10 ** 6):
        args = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in e["command"].split()] \
            if isinstance(e["command"], (str, bytes)) else e["command"]
        cmd = args[0].lower() if args else "?"
        if cmd in ("evalsha", "evalsha_ro") and len(args) > 1:
            key = names.get(args[1], "script " + args[1][:8])
        elif cmd in ("fcall", "fcall_ro") and len(args) > 1:
            key = "function " + args[1]
        else:
            key = cmd
        out[key][0] += 1
        out[key][1] += e["duration"]
    return out


def run_system(system, a, jobs, tmp, monitor=False, timeout_s=None, slowlog=False):
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
        # the enqueue's Redis CPU is part of a job's cost: BullMQ's Queue.add runs its
        # addJob script there, while kie-worker's producer LPUSHes and the worker routes
        cpu_pre = redis_cpu_s(r)
        enqueue(srv, fake, s3, a, jobs)
        enqueue_cpu = redis_cpu_s(r) - cpu_pre
        r.config_resetstat()
        if slowlog:
            r.config_set("slowlog-max-len", 10 ** 6)
            r.config_set("slowlog-log-slower-than", 0)
            r.slowlog_reset()
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
            if slowlog:
                r.config_set("slowlog-log-slower-than", -1)
                by_script = slowlog_by_command(r, script_names())
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
               "redis_enqueue_cpu_s": enqueue_cpu,
               "creates": kst["creates_total"], "record_info": kst["record_info_total"],
               "s3_objects": sst["objects"], "s3_requests": sst["accepted"],
               "events": len(events), "event_ids": len({e["jobId"] for e in events}),
               "completed": sum(e["status"] == "completed" for e in events),
               "exit": exit_code, "log": logpath,
               "commandstats": {k[len("cmdstat_"):]: v["calls"] for k, v in cmdstats.items()},
               "commandusec": {k[len("cmdstat_"):]: v["usec"] for k, v in cmdstats.items()}}
        if mon:
            out.update(client_cmds=mon.client, script_cmds=mon.script)
        if slowlog:
            out["by_script"] = by_script
        bad = [k for k in ("creates", "s3_objects", "events", "event_ids", "completed")
               if out[k] != jobs]
        if bad:
            raise BenchError(f"{system} did not do all the work ({jobs} jobs): " +
                             ", ".join(f"{k}={out[k]}" for k in bad))
        return out
    except BenchError as e:
        raise with_log_tail(e, system, logpath) from None
    finally:
        if mon:
            mon.stop()
        if proc:
            stop_proc(proc)
        for x in (s3, fake, srv):
            if x:
                x.stop()


# --- latency: KIE's completeTime to the completion event (issue 18) ---

GEN_IMAGE = {"description": "lavender velvet jacket + high-waisted straight jeans",
             "imageUrl": "https://cdn.example.com/model.png", "wearMask": True}


def gen_image_job(i, prefix="lat"):
    return json.dumps({"v": 1, "id": f"{prefix}-{i}", "type": "generate_image",
                       "input": GEN_IMAGE, "ratio": "9:16", "outputFormat": "png"},
                      separators=(",", ":"))


class AppRoute(threading.Thread):
    """The web app's own callback route (docs/protocol.md section 9): every POST it gets
    is pushed onto kie:callbacks as an unverified entry, with the URL's jobId."""

    def __init__(self, redis_client):
        super().__init__(daemon=True)
        r = redis_client
        received = self.received = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                try:
                    d = json.loads(body)
                    tid = (d.get("data") or {}).get("taskId") or d.get("taskId")
                except ValueError:
                    tid = None
                entry = {"v": 1, "jobId": (q.get("jobId") or [None])[0], "taskId": tid,
                         "verified": False, "receivedAt": int(time.time() * 1000),
                         "body": body.decode()}
                r.lpush("kie:callbacks", json.dumps(entry, separators=(",", ":")))
                received.append((tid, time.time() * 1000))
                out = b'{"code":200,"msg":"success"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/kie/callback"

    def run(self):
        self.httpd.serve_forever(poll_interval=0.1)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class EventClock(threading.Thread):
    """Subscribes to kie:events and notes each event's arrival (epoch ms) by task id."""

    def __init__(self, redis_client):
        super().__init__(daemon=True)
        self.ps = redis_client.pubsub(ignore_subscribe_messages=True)
        self.ps.subscribe("kie:events")
        self.arrived = {}
        self.stopped = False

    def run(self):
        while not self.stopped:
            m = self.ps.get_message(timeout=0.05)
            if m and m["type"] == "message":
                at = time.time() * 1000
                ev = json.loads(m["data"])
                if ev.get("event") == "job.started":  # not a completion: issue 19's start
                    continue
                self.arrived[ev.get("taskId")] = (at, ev)

    def stop(self):
        self.stopped = True


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    xs = sorted(xs)
    return xs[max(0, min(len(xs) - 1, int(round(p / 100 * len(xs) + 0.5)) - 1))]


def run_latency(a, jobs, tmp, callbacks=True, timeout_s=None):
    """jobs generate_image jobs at KIE's real limits, copies on; returns the latencies
    (ms) of completeTime -> event, and counts. Raises BenchError when work is missing."""
    d = tempfile.mkdtemp(dir=tmp, prefix="latency-")
    srv = fake = s3 = proc = app = clock = None
    logpath = os.path.join(d, "worker.log")
    try:
        srv = RedisServer(d)
        fake = FakeKie(d, task_ms=a.latency_task_ms)  # KIE's limits: 20/10 s, 10/s
        s3 = FakeS3(d)
        r = srv.client()
        clock = EventClock(srv.client())
        clock.start()
        extra = {}
        if callbacks:
            app = AppRoute(srv.client())
            app.start()
            extra["KIE_CALLBACK_URL"] = app.url
        env = base_env(srv.url, fake.url, d, **s3.env(),
                       KIE_LOG_LEVEL=os.environ.get("BENCH_LOG_LEVEL", "warn"),
                       KIE_COPY_ALLOW_PRIVATE="1", **extra)
        for k in ("KIE_POLL_INITIAL_MS", "KIE_POLL_MAX_MS", "KIE_CREATE_LIMIT",
                  "KIE_CREATE_WINDOW_MS", "KIE_POLL_RATE"):
            env.pop(k, None)  # KIE's real cadence and limits
        # the producer: 20 jobs per 10 s, one every 500 ms (--latency-rate 0: all at once;
        # then the account's limiter lets 20 createTask through together, the 20 tasks end
        # together, and their confirmations queue behind KIE's 10 recordInfo/s)
        def produce():
            for i in range(jobs):
                r.lpush("kie:queue", gen_image_job(i))
                if a.latency_rate > 0:
                    time.sleep(1 / a.latency_rate)
        if a.latency_rate <= 0:
            produce()
        else:
            threading.Thread(target=produce, daemon=True).start()
        timeout = timeout_s or 60 + jobs * 0.8
        with open(logpath, "w") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen([os.path.join(BIN, "kie-worker")], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            while len(clock.arrived) < jobs:
                if proc.poll() is not None:
                    raise BenchError(f"kie-worker exited ({proc.returncode}) after "
                                     f"{len(clock.arrived)} of {jobs} events")
                if time.monotonic() - t0 > timeout:
                    raise BenchError(f"latency: {len(clock.arrived)} of {jobs} events after "
                                     f"{timeout:.0f} s")
                time.sleep(0.05)
            stop_proc(proc)
        tasks = fake.stats(brief=False)["tasks"]
        lat, missing = [], []
        for tid, t in tasks.items():
            got = clock.arrived.get(tid)
            if not got or not t.get("completeTime"):
                missing.append(tid)
                continue
            lat.append(got[0] - t["completeTime"])
        evs = [e for _, e in clock.arrived.values()]
        bad = [e for e in evs if e.get("status") != "completed" or not e.get("storedUrls")]
        if missing or len(tasks) != jobs or bad:
            raise BenchError(f"latency: {len(tasks)} tasks for {jobs} jobs, {len(missing)} "
                             f"without an event, {len(bad)} events not completed with copies")
        if app:  # where the time goes: KIE's callback reaching the app, then the worker
            pushed = dict(app.received)
            to_app = [pushed[t] - tasks[t]["completeTime"] for t in pushed if t in tasks]
            to_ev = [clock.arrived[t][0] - pushed[t] for t in pushed if t in clock.arrived]
            if to_app and to_ev:
                print(f"  completeTime -> app push: p50 {pct(to_app, 50):.0f} ms, p90 "
                      f"{pct(to_app, 90):.0f}; app push -> event: p50 {pct(to_ev, 50):.0f}, "
                      f"p90 {pct(to_ev, 90):.0f}", file=sys.stderr)
        return {"jobs": jobs, "lat_ms": lat, "callbacks": callbacks, "log": logpath,
                "app_posts": len(app.received) if app else 0,
                "record_info": fake.stats()["record_info_total"]}
    except BenchError as e:
        raise with_log_tail(e, "kie-worker", logpath) from None
    finally:
        if os.environ.get("BENCH_KEEP_LOG"):
            shutil.copy(logpath, os.environ["BENCH_KEEP_LOG"])
        if clock:
            clock.stop()
        if app:
            app.stop()
        if proc:
            stop_proc(proc)
        for x in (s3, fake, srv):
            if x:
                x.stop()


# --- memory: what a finished job leaves in Redis (issue 18) ---

FULL_RATE_PER_DAY = 172800  # KIE's 20 createTask per 10 s, all day


def run_memory(a, jobs, tmp, timeout_s=None):
    """jobs generate_image jobs, limits off, copies on; then the bytes the finished jobs
    left in Redis: MEMORY USAGE of their keys, and used_memory after - before with the
    capped lists apart."""
    d = tempfile.mkdtemp(dir=tmp, prefix="memory-")
    srv = fake = s3 = proc = None
    logpath = os.path.join(d, "worker.log")
    try:
        srv = RedisServer(d)
        fake = FakeKie(d, task_ms=a.task_ms, create_limit=0, query_limit=0)
        s3 = FakeS3(d)
        r = srv.client()
        env = base_env(srv.url, fake.url, d, **s3.env(), KIE_LOG_LEVEL="warn",
                       KIE_COPY_ALLOW_PRIVATE="1", KIE_WORKER_CONCURRENCY=a.runners,
                       KIE_WORKER_POLLERS=a.pollers, KIE_POLL_INITIAL_MS=a.poll_initial_ms,
                       KIE_CREATE_LIMIT=100000, KIE_CREATE_WINDOW_MS=1000, KIE_POLL_RATE=10000)
        mem0 = r.info("memory")["used_memory"]
        pipe = r.pipeline()
        for i in range(jobs):
            pipe.lpush("kie:queue", gen_image_job(i, "mem"))
        pipe.execute()
        timeout = timeout_s or 60 + jobs * 0.05
        with open(logpath, "w") as log:
            t0 = time.monotonic()
            proc = subprocess.Popen([os.path.join(BIN, "kie-worker")], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            while r.llen("kie:results") < jobs:
                if proc.poll() is not None or time.monotonic() - t0 > timeout:
                    raise BenchError(f"memory: {r.llen('kie:results')} of {jobs} events")
                time.sleep(0.05)
            stop_proc(proc)
        per_key = {}
        for k in r.scan_iter("kie:*", count=1000):
            name = k.decode() if isinstance(k, bytes) else k
            kind = name.split(":")[1]
            if kind not in ("job", "task"):
                kind = "other"  # limiter logs, stats, results: bounded, not per job
            per_key[kind] = per_key.get(kind, 0) + (r.memory_usage(k, samples=0) or 0)
        lists = sum(r.memory_usage(k, samples=0) or 0 for k in ("kie:results",)
                    if r.exists(k))
        info1 = r.info("memory")
        mem1 = info1["used_memory"]
        if os.environ.get("BENCH_MEM_DEBUG"):
            kinds = {}
            for k in r.scan_iter("*", count=1000):
                kk = (k.decode() if isinstance(k, bytes) else k).split(":")[:2]
                kinds[":".join(kk)] = kinds.get(":".join(kk), 0) + (r.memory_usage(k, samples=0) or 0)
            print("keys:", kinds, {k: v for k, v in info1.items() if "clients" in k or "scripts" in k or "overhead" in k or "dataset" in k}, file=sys.stderr)
        return {"jobs": jobs, "job_b": per_key.get("job", 0) / jobs,
                "other_b": per_key.get("other", 0),
                "task_b": per_key.get("task", 0) / jobs,
                "used_b": (mem1 - mem0 - lists) / jobs, "results_b": lists / jobs}
    finally:
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


def median_run(reps):
    """One run's figures: the median of each over the repeated runs (counts from the
    first; every run did all the work, run_system checks it)."""
    out = dict(reps[0])
    for k in ("wall_s", "cpu_s", "hwm_kib", "redis_cpu_s", "redis_cmds", "record_info",
              "s3_requests", "redis_enqueue_cpu_s"):
        out[k] = statistics.median(o[k] for o in reps)
    for k in ("commandstats", "commandusec"):
        names = {c for o in reps for c in o[k]}
        out[k] = {c: statistics.median(o[k].get(c, 0) for o in reps) for c in names}
    out["runs"] = len(reps)
    return out


def row(o):
    n = o["jobs"]
    return (f"| {o['system']} | {n} | {o['wall_s']:.2f} | {n / o['wall_s']:.0f} | "
            f"{o['cpu_s'] * 1e3 / n:.2f} | {o['redis_cpu_s'] * 1e3 / n:.2f} | "
            f"{(o['redis_cpu_s'] + o['redis_enqueue_cpu_s']) * 1e3 / n:.2f} | "
            f"{o['hwm_kib'] / 1024:.1f} | {o['redis_cmds'] / n:.1f} | "
            f"{o['record_info'] / n:.2f} | {o['s3_requests'] / n:.2f} |")


# --- issue 19: the pick's Redis cost by the number of groups ---

def lua_src(name):
    """A script as the worker embeds it (its --#include lines expanded)."""
    from conftest import lua_expanded
    for sub in ("pool",):
        path = os.path.join(ROOT, "common", sub, "lua", name + ".lua")
        if os.path.exists(path):
            return lua_expanded(path).decode()
    raise BenchError(f"no script {name}.lua")


def groups_run(groups, jobs_per_group_min, picks, tmp):
    """The scheduling scripts alone against a real redis-server: route.lua queues jobs over
    G groups (at least jobs_per_group_min each, and at least 2 * picks in all) in the
    router's batches of 16, then pick.lua (which starts the job it picks and reserves its
    budget) runs `picks` times as a runner would (the processing list emptied between
    picks, as the runner's hand-off does). Returns Redis's own µs per job of each script
    (INFO commandstats: the script and the commands it ran) and the ready set's size. The
    worker's calls, without the worker: the script's cost is what grows with G, if
    anything does."""
    d = tempfile.mkdtemp(dir=tmp, prefix="groups-")
    srv = RedisServer(d)
    try:
        r = srv.client()
        P, S = "kie", "kie:sched:default"
        route, pick = (r.register_script(lua_src(n)) for n in ("route", "pick"))
        n = max(2 * picks, groups * jobs_per_group_min)
        proc = "kie:processing:bench#router"
        rkeys = [f"{P}:job:", f"{P}:recoveries", proc, f"{S}:ready", f"{S}:delayed",
                 f"{S}:items", f"{S}:state", f"{S}:gtag", f"{S}:gcount", f"{S}:inflight",
                 f"{S}:picked", f"{P}:group:weight", f"{S}:wake", f"{P}:cancel:",
                 f"{P}:stats", f"{P}:results", f"{P}:queue", f"{P}:hist:m:1",
                 f"{P}:hist:d:19700101"]
        for first in range(0, n, 16):
            args = ["bench#router", 5000, 3, f"{P}:events", 1000, 1000, 3600, 600,
                    min(16, n - first), 0, 100000, ""]
            for i in range(first, min(n, first + 16)):
                jid, g = f"b{i}", f"user{i % groups}"
                raw = json.dumps({"v": 1, "id": jid, "group": g})
                r.lpush(proc, raw)
                args += [raw, jid, "raw", 0, "", "0", 5, g, 0, "0", "google/nano-banana",
                         "4"]
            route(keys=rkeys, args=args)
        route_stats = r.info("commandstats")
        r.config_resetstat()
        runner = "kie:processing:bench#0"
        day = time.strftime("%Y%m%d", time.gmtime())
        pk = [f"{S}:ready", f"{S}:delayed", f"{S}:items", f"{S}:state", f"{S}:gtag",
              f"{S}:gcount", f"{S}:inflight", f"{S}:picked", f"{S}:parked",
              f"{S}:parkedGroups", f"{P}:group:weight", f"{P}:group:limit", f"{P}:pause",
              runner, f"{S}:wake", f"{P}:job:", f"{P}:budget:{day}", f"{P}:budget:group",
              f"{P}:budget:models", f"{P}:budget:open"]
        for k in range(picks):
            r.delete(runner)
            pick(keys=pk, args=[10, "bench#0", 5000, k + 1, day, 0, "default"])
        cs = r.info("commandstats")
        ev = cs.get("cmdstat_evalsha", {})
        rev = route_stats.get("cmdstat_evalsha", {})
        return {"groups": groups, "queued": n, "route_us": rev.get("usec", 0) / max(1, n),
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
    print("\nThe pick's Redis cost by the number of groups (route.lua in batches of 16, "
          f"then pick.lua, which starts the job, {picks} times; Redis's µs inside the "
          "scripts, INFO commandstats):\n")
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
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each throughput configuration; the median is printed")
    ap.add_argument("--latency-jobs", type=int, default=120,
                    help="jobs of each latency run, at KIE's real limits (0: none)")
    ap.add_argument("--latency-task-ms", type=int, default=300)
    ap.add_argument("--latency-rate", type=float, default=2.0,
                    help="jobs per second the latency run's producer pushes (KIE's 20 per "
                         "10 s; 0: all at once)")
    ap.add_argument("--memory-jobs", type=int, default=1000,
                    help="jobs of the memory run (0: none)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--scripts", type=int, default=0,
                    help="jobs of a pass that times every command Redis ran, by script "
                         "(SLOWLOG at threshold 0), for each system (0: no such pass)")
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
            results, trips, lats, mem = [], [], [], None
            if a.latency_jobs and "kie-worker" in systems:
                for cb in (True, False)[:1 if os.environ.get("BENCH_CB_ONLY") else 2]:
                    print(f"latency run ({'callbacks pushed by the app route' if cb else 'polling only'}): "
                          f"{a.latency_jobs} jobs at KIE's limits ...", file=sys.stderr, flush=True)
                    lats.append(run_latency(a, a.latency_jobs, tmp, callbacks=cb))
            if a.memory_jobs and "kie-worker" in systems:
                a.runners, a.pollers = configs[0]
                print(f"memory run: {a.memory_jobs} jobs ...", file=sys.stderr, flush=True)
                mem = run_memory(a, a.memory_jobs, tmp)
            for s, a.runners, a.pollers in ([] if a.skip_throughput else runs):
                what = (f"{a.runners}x{a.pollers}" if s == "kie-worker"
                        else f"concurrency {a.runners + a.pollers}")
                reps = []
                for k in range(max(1, a.repeat)):
                    print(f"running {s} {what}: {a.jobs} jobs ({k + 1} of {a.repeat}) ...",
                          file=sys.stderr, flush=True)
                    reps.append(run_system(s, a, a.jobs, tmp))
                results.append(median_run(reps))
            if a.round_trips and not a.skip_throughput:
                a.runners, a.pollers = configs[0]
                for s in systems:
                    print(f"counting the commands of {s} with MONITOR: {a.round_trips} "
                          "jobs ...", file=sys.stderr, flush=True)
                    trips.append(run_system(s, a, a.round_trips, tmp, monitor=True))
            scripts = []
            if a.scripts:
                a.runners, a.pollers = configs[0]
                for s in systems:
                    print(f"timing every command of {s}: {a.scripts} jobs ...",
                          file=sys.stderr, flush=True)
                    scripts.append(run_system(s, a, a.scripts, tmp, slowlog=True))
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr)
        return 1
    print(f"\n{machine_facts()}.")
    for o in scripts:
        rows = sorted(o["by_script"].items(), key=lambda kv: -kv[1][1])
        total = sum(v[1] for _, v in rows)
        print(f"\nWhere Redis's time goes, {o['system']}, {o['jobs']} jobs (every top-level "
              f"command timed by SLOWLOG; a script's time includes its commands): "
              f"{total / o['jobs']:.0f} µs per job in commands, "
              f"{o['redis_cpu_s'] * 1e6 / o['jobs']:.0f} µs of Redis CPU per job in all\n")
        print("| script or command | calls/job | µs/call | µs/job |")
        print("|---|---|---|---|")
        for name, (calls, us) in rows:
            if us / o["jobs"] >= 0.5:
                print(f"| {name} | {calls / o['jobs']:.2f} | {us / calls:.1f} | "
                      f"{us / o['jobs']:.1f} |")
    if lats:
        print(f"\nLatency: {a.latency_jobs} generate_image jobs "
              + (f"pushed at {a.latency_rate:g}/s" if a.latency_rate > 0 else "pushed at once")
              + " through kie-worker (release "
              "build, defaults: 4 runners, 2 pollers) at KIE's real limits (the KIE fake: 20 "
              f"createTask per 10 s, 10 recordInfo/s), tasks of {a.latency_task_ms} ms, result "
              "copies on (S3 fake), every server on loopback. From the task's completeTime "
              "(read back from the KIE fake) to its completion event on kie:events:\n")
        print("| run | jobs | p50 ms | p90 ms | p99 ms | max ms | recordInfo/job |")
        print("|---|---|---|---|---|---|---|")
        for o in lats:
            x = o["lat_ms"]
            what = ("callbacks pushed by the app's route (unverified)" if o["callbacks"]
                    else "polling only (KIE_POLL_INITIAL_MS 2500)")
            print(f"| {what} | {o['jobs']} | {pct(x, 50):.0f} | {pct(x, 90):.0f} | "
                  f"{pct(x, 99):.0f} | {max(x):.0f} | {o['record_info'] / o['jobs']:.2f} |")
    if mem:
        per = mem["job_b"] + mem["task_b"]
        week = per * FULL_RATE_PER_DAY * 7
        print(f"\nMemory: {mem['jobs']} generate_image jobs finished (copies on). Left in Redis "
              "per finished job (kept KIE_RECORD_TTL_S, 7 days):\n")
        print("| MEMORY USAGE job hash B | task hash B | per finished job B | per account-week "
              "at 172,800 jobs/day | used_memory delta per job B (capped lists apart) | "
              "kie:results per job B (capped) | other keys, all jobs B |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {mem['job_b']:.0f} | {mem['task_b']:.0f} | {per:.0f} | {week / 2**20:.0f} MiB | "
              f"{mem['used_b']:.0f} | {mem['results_b']:.0f} | {mem['other_b']:.0f} |")
        print("\n(used_memory's delta also holds what is not kept per job: the limiter's "
              "logs and the stats (\"other keys\", bounded), Redis's dictionaries grown for "
              "the keys, and the allocator's rounding; the per-job figure is MEMORY USAGE.)")
    if not results:
        return 0
    print(f"\nThroughput (median of {a.repeat} runs each):")
    print(f"Each run: {a.jobs} jobs enqueued first; the KIE fake's tasks take {a.task_ms} ms, "
          f"its limits off; first poll {a.poll_initial_ms} ms after the create; kie-worker "
          "R runners x P pollers, BullMQ concurrency R + P. Redis CPU: while the worker "
          "ran, and with the enqueue too (the job's whole cost to Redis: BullMQ's Queue.add "
          "runs its addJob script when the job is enqueued, kie-worker's producer LPUSHes "
          "and the worker routes it).\n")
    print("| system | jobs | wall s | jobs/s | worker CPU ms/job | Redis CPU ms/job (worker "
          "run) | Redis CPU ms/job (with the enqueue) | worker peak RSS MiB | Redis cmds/job | "
          "recordInfo/job | S3 requests/job |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
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
