"""Never pay twice, never leave a paid task behind: one owner per job id, fencing,
error replies on the recording step, a worker cut off from Redis, Redis gone for longer
than any TTL. Paid tasks are counted at the fake KIE, never from log lines."""
import json
import os
import random
import socket
import threading
import time

from conftest import RedisServer, base_env, run_kie, task_finalized, wait_for
from test_worker import PREFIX, dead, events, job, wait_events


def assert_one_task_per_job(fake_kie, ids):
    by_job = fake_kie.stats()["creates_by_job"]
    assert sorted(by_job) == sorted(ids), set(by_job) ^ set(ids)
    dups = {j: n for j, n in by_job.items() if n != 1}
    assert not dups, f"paid twice: {dups}"


def assert_every_task_collected(fake_kie, r):
    """Every task KIE created was finalized by the worker (its task hash, or for a job's own
    task its job hash, says so: conftest.task_finalized)."""
    tasks = fake_kie.stats(brief=False)["tasks"]
    uncollected = [t for t, v in tasks.items()
                   if not task_finalized(r, PREFIX, t, v.get("jobId"))]
    assert not uncollected, f"paid but never collected: {uncollected}"


def test_same_id_pushed_twice_at_random_gaps_pays_once(redis_server, r, fake_kie, workers):
    fake_kie.config(task_ms=200, latency_ms=30)
    for _ in range(3):
        workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=6, KIE_LOG_LEVEL="warn")
    rnd = random.Random(7)
    ids = [f"twice-{i}" for i in range(100)]

    def producer(seq):
        for i in seq:
            r.lpush(f"{PREFIX}:queue", job(ids[i]))
            time.sleep(rnd.uniform(0, 0.03))
    # every id twice: the copies race each other at every gap from 0 to ~0.5 s
    order = list(range(100)) * 2
    rnd.shuffle(order)
    threads = [threading.Thread(target=producer, args=(order[k::2],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    evs = wait_events(r, 100, timeout=120)
    # every second copy is done with: a duplicate dead letter, or absorbed by the job
    # whose task it finds recorded (handed to the pollers again, a no-op)
    wait_for(lambda: r.llen(f"{PREFIX}:queue") == 0 and
             all(r.llen(k) == 0 for k in r.keys(f"{PREFIX}:processing:*")), 30,
             what="every copy handled")
    time.sleep(0.5)  # no late event: a poll would bring one within KIE_POLL_MAX_MS
    assert sorted(e["jobId"] for e in events(r)) == sorted(ids)
    assert all(e["status"] == "completed" for e in evs)
    assert_one_task_per_job(fake_kie, ids)
    assert {d["source"] for d in dead(r)} <= {"duplicate"}
    assert len(events(r)) == 100
    assert_every_task_collected(fake_kie, r)


def test_oom_on_the_recording_step_loses_no_task(redis_server, r, fake_kie, workers):
    """Redis refuses writes (OOM) while KIE creates the task: the worker keeps the task
    id and records it when Redis accepts writes again."""
    fake_kie.config(latency_ms=1500)
    w = workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=1)
    r.lpush(f"{PREFIX}:queue", job("oom-1"))
    wait_for(lambda: r.hget(f"{PREFIX}:job:oom-1", "state") == "creating", 20,
             what="createTask in flight")
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", "1")
    try:
        wait_for(lambda: fake_kie.stats()["creates_total"] == 1, 10, what="the task created")
        time.sleep(2.0)  # the recording step meets OOM, again and again
        assert r.hget(f"{PREFIX}:job:oom-1", "taskId") is None
    finally:
        r.config_set("maxmemory", "0")
    ev = wait_events(r, 1, timeout=30)[0]
    assert ev["jobId"] == "oom-1" and ev["status"] == "completed"
    assert_one_task_per_job(fake_kie, ["oom-1"])
    assert_every_task_collected(fake_kie, r)
    assert "OOM" in w.log()


class CutProxy:
    """TCP proxy on loopback; cut() drops every connection and refuses new ones until
    restore(): a worker cut off from Redis, alive."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.cut_off = False
        self.pairs = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def cut(self):
        with self.lock:
            self.cut_off = True
            for a, b in self.pairs:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    s.close()
            self.pairs = []

    def restore(self):
        with self.lock:
            self.cut_off = False

    def _accept(self):
        while True:
            c, _ = self.sock.accept()
            with self.lock:
                if self.cut_off:
                    c.close()
                    continue
                u = socket.create_connection(("127.0.0.1", self.upstream))
                self.pairs.append((c, u))
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass


def test_worker_cut_off_longer_than_the_ttl_pays_once(redis_server, r, fake_kie, workers):
    """Worker A is cut off from Redis while its createTask calls are in flight, for
    longer than the heartbeat TTL: B recovers A's jobs, which are uncertain (a task may
    exist), and A records its tasks when it is back. No job is created twice, every task
    is collected."""
    fake_kie.config(latency_ms=2500, task_ms=200)
    proxy = CutProxy(redis_server.port)
    a = workers(proxy.url, fake_kie.url, KIE_WORKER_ID="cut-a", KIE_WORKER_CONCURRENCY=4,
                KIE_UNCERTAIN_WINDOW_MS=60000)
    wait_for(lambda: r.exists(f"{PREFIX}:worker:cut-a#0"), 10, what="A's heartbeat")
    ids = [f"cut-{i}" for i in range(4)]
    for i in ids:
        r.lpush(f"{PREFIX}:queue", job(i))
    wait_for(lambda: all(r.hget(f"{PREFIX}:job:{i}", "state") == "creating" for i in ids), 20,
             what="A inside createTask for every job")
    b = workers(redis_server.url, fake_kie.url, KIE_WORKER_ID="live-b",
                KIE_WORKER_CONCURRENCY=4, KIE_UNCERTAIN_WINDOW_MS=60000,
                KIE_HEARTBEAT_TTL_MS=1500)
    proxy.cut()
    # B takes A's jobs back (A's heartbeat expired) and finds them mid-createTask
    wait_for(lambda: all(r.hget(f"{PREFIX}:job:{i}", "owner") != f"cut-a#{k}"
                         for k, i in enumerate(ids)) and r.zcard(f"{PREFIX}:uncertain") > 0,
             30, what="B's takeover")
    assert "is dead (heartbeat expired)" in b.log()
    proxy.restore()
    evs = wait_events(r, 4, timeout=60)
    assert sorted(e["jobId"] for e in evs) == ids
    assert all(e["status"] == "completed" for e in evs)
    assert_one_task_per_job(fake_kie, ids)
    assert_every_task_collected(fake_kie, r)
    assert r.zcard(f"{PREFIX}:uncertain") == 0
    assert a.proc.poll() is None


def test_redis_gone_longer_than_any_ttl_then_back_with_its_data(tmpdir_path, fake_kie,
                                                               workers):
    """Redis stops for 4 s (the heartbeat TTL is 1.5 s) and comes back with its data: no
    worker takes another's jobs (a returning connection gets a TTL of grace), nothing is
    lost, nothing is paid twice."""
    d = os.path.join(tmpdir_path, "redis-aof")
    os.makedirs(d)
    srv = RedisServer(d, aof=True)
    try:
        r = srv.client()
        fake_kie.config(latency_ms=800, task_ms=500)
        # a poll whose reply was lost with Redis is taken again when its lease ends (HTTP +
        # copy timeouts + HTTP + 5 s: 20 s at the fixtures' settings, 12 s here; 3 s is
        # still four times the fake's latency)
        ws = [workers(srv.url, fake_kie.url, KIE_WORKER_CONCURRENCY=4,
                      KIE_HTTP_TIMEOUT_MS=3000, KIE_COPY_TIMEOUT_MS=1000) for _ in range(3)]
        ids = [f"gone-{i}" for i in range(40)]
        for i in ids:
            r.lpush(f"{PREFIX}:queue", job(i))
        wait_for(lambda: fake_kie.stats()["creates_total"] >= 8, 30, what="work in flight")
        srv.stop()
        time.sleep(4.0)  # Redis gone longer than the heartbeat TTL (1.5 s): the subject
        srv.start()
        r = srv.client()
        evs = wait_events(r, len(ids), timeout=120)
        assert sorted(e["jobId"] for e in evs) == sorted(ids)
        assert_one_task_per_job(fake_kie, ids)
        assert_every_task_collected(fake_kie, r)
        logs = "".join(w.log() for w in ws)
        assert "is dead (heartbeat expired)" not in logs, "a live worker was judged dead"
        assert all(w.proc.poll() is None for w in ws)
    finally:
        srv.stop()


def test_any_task_id_kie_returns_is_finalized(redis_server, r, fake_kie, workers,
                                              tmpdir_path):
    """Task ids with '/' (unsafe as a file name or key) and over 200 bytes: polled,
    finalized, stored under an encoded name, within the poll timeout."""
    workers(redis_server.url, fake_kie.url)
    for style in ("slash", "long"):
        fake_kie.config(task_id_style=style)
        r.lpush(f"{PREFIX}:queue", job(f"tid-{style}"))
        ev = wait_for(lambda: [e for e in events(r) if e["jobId"] == f"tid-{style}"], 30,
                      what=f"the {style} task's event")[0]
        assert ev["status"] == "completed", ev
        tid = ev["taskId"]
        assert ("/" in tid) if style == "slash" else (len(tid) > 200)
        names = os.listdir(os.path.join(tmpdir_path, "meta", "kie-tasks"))
        stored = [n for n in names if n.startswith("~")]
        assert stored, names
        for n in stored:
            with open(os.path.join(tmpdir_path, "meta", "kie-tasks", n)) as f:
                rec = json.load(f)
            if rec["taskId"] == tid:
                assert rec["status"] == "completed" and rec["jobId"] == f"tid-{style}"
                break
        else:
            raise AssertionError(f"no record for {tid!r} in {stored}")


def test_kill_inside_create_past_the_recovery_limit_cannot_be_retried(redis_server, r, fake_kie,
                                                                     workers, tmpdir_path):
    """A worker killed inside createTask on a job that has used up KIE_MAX_RECOVERIES: the
    job goes uncertain (a task may exist) before any limit ends it, never to the dead
    letters as a plain 'recovery'. Dead-lettered by KIE_UNCERTAIN_POLICY=dead, its entry
    says mayHaveTask, and `kie dead retry` refuses it: one task at KIE."""
    fake_kie.config(hang_next_ms=5000)  # KIE holds the createTask 5 s, then creates the task
    opts = dict(KIE_MAX_RECOVERIES=0, KIE_UNCERTAIN_POLICY="dead", KIE_UNCERTAIN_WINDOW_MS=1000,
                KIE_WORKER_CONCURRENCY=1)
    a = workers(redis_server.url, fake_kie.url, KIE_WORKER_ID="dies-in-create", **opts)
    r.lpush(f"{PREFIX}:queue", job("rec-1"))
    wait_for(lambda: r.hget(f"{PREFIX}:job:rec-1", "state") == "creating", 20,
             what="createTask in flight")
    a.kill9()
    workers(redis_server.url, fake_kie.url, KIE_WORKER_ID="survivor", **opts)
    wait_for(lambda: dead(r), 30, what="the job's dead letter")
    d = dead(r)[0]
    assert d["jobId"] == "rec-1" and d["source"] == "uncertain", d
    assert d.get("mayHaveTask") is True, d
    env = base_env(redis_server.url)
    out = run_kie(["dead", "retry", "rec-1", "--json"], env)
    res = json.loads(out.stdout)["results"]
    assert out.returncode == 10 and res[0]["outcome"] == "refused", (out.stdout, out.stderr)
    assert "--allow-uncertain" in res[0]["why"]
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 1, 20, what="the held task created")
    time.sleep(1.0)  # a retry let through would create a second task within this
    assert fake_kie.stats()["creates_by_job"] == {"rec-1": 1}
    assert r.llen(f"{PREFIX}:queue") == 0 and len(dead(r)) == 1


def test_fixed_worker_id_restarted_with_fewer_runners_loses_no_job(redis_server, r, fake_kie,
                                                                   workers):
    """A fixed KIE_WORKER_ID killed with a job in each of its 4 runner slots (#0..#3, as a
    pick leaves them: picked, not yet started) and restarted with 1 runner: #0's job is its
    own leftover, and #1..#3, which no process runs any more, are recovered once their
    heartbeats expire (the callback consumer has its own name, #cb, and the router its own,
    #router, so none of them is kept alive by them). Every job completes once, with one
    task."""
    ids = [f"slot-{i}" for i in range(5)]
    a = workers(redis_server.url, fake_kie.url, KIE_WORKER_ID="fixed", KIE_WORKER_CONCURRENCY=4)
    wait_for(lambda: r.scard(f"{PREFIX}:workers") == 6, 10,
             what="4 runners, #cb and #router beating")
    a.kill9()
    # what the four runners held when killed (a runner holds a job only between its pick
    # and its task's recording, so the slots are filled here by hand)
    for n in range(4):
        r.lpush(f"{PREFIX}:processing:fixed#{n}", job(ids[n]))
    r.lpush(f"{PREFIX}:queue", job(ids[4]))
    workers(redis_server.url, fake_kie.url, KIE_WORKER_ID="fixed", KIE_WORKER_CONCURRENCY=1)
    evs = wait_events(r, 5, timeout=45)
    time.sleep(0.5)  # no sixth event: a poll would bring one within KIE_POLL_MAX_MS
    assert sorted(e["jobId"] for e in events(r)) == ids
    assert all(e["status"] == "completed" for e in evs)
    assert_one_task_per_job(fake_kie, ids)
    assert all(r.llen(f"{PREFIX}:processing:fixed#{n}") == 0 for n in range(4))
    assert r.smembers(f"{PREFIX}:workers") == {"fixed#0", "fixed#cb", "fixed#router"}
