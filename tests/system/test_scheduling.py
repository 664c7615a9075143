"""test_scheduling.py — who goes first under the account's createTask limit (issue 19,
docs/protocol.md "Who goes first"): fairness between groups, priorities, the starvation
bound, notBefore, cancel, kill -9 during routing and picking, position and ETA from Python
and Node, per-group caps. The rate tests run at KIE's 20 createTask per 10 s scaled to
20 per 2 s (every bound scaled with it: the pacing and the rule are the same) in make
test, and at the real rate with -m long (make check-long). Create times are the fake's
(create_ms_by_job), on the machine's clock."""
import json
import os
import random
import subprocess
import threading
import time

import pytest

from conftest import ROOT, base_env, run_kie, wait_for
from test_worker import PREFIX, dead, events, job, wait_events

S = f"{PREFIX}:sched:default"


def now_ms():
    return int(time.time() * 1000)


def fkeys(jid, reply=None):
    """The 11 keys of kie_cancel and kie_position (docs/protocol.md)."""
    return [f"{PREFIX}:job:{jid}", f"{PREFIX}:cancel:{jid}", f"{S}:ready", f"{S}:delayed",
            f"{S}:items", f"{S}:state", f"{S}:gcount", f"{PREFIX}:stats", f"{PREFIX}:results",
            f"{S}:parked", reply or f"{PREFIX}:job:{jid}"]


def position(r, jid):
    k = fkeys(jid)
    return json.loads(r.execute_command("FCALL_RO", "kie_position", len(k), *k, jid))


def cancel(r, jid, reply=None):
    k = fkeys(jid, reply)
    return json.loads(r.execute_command("FCALL", "kie_cancel", len(k), *k, jid))


def functions_loaded(r):
    """The worker loads the kie library at start (FUNCTION LOAD REPLACE)."""
    wait_for(lambda: r.execute_command("FUNCTION", "LIST", "LIBRARYNAME", "kie"), 10,
             what="the kie Functions library")


def push(r, descs):
    pipe = r.pipeline()
    for d in descs:
        pipe.lpush(f"{PREFIX}:queue", d)
    pipe.execute()


def rate(window_s, **extra):
    """The worker at 20 createTask per window_s (the fake enforces the same)."""
    return dict(KIE_CREATE_LIMIT=20, KIE_CREATE_WINDOW_MS=int(window_s * 1000),
                KIE_LIMIT_MARGIN_MS=int(window_s * 50), KIE_WORKER_CONCURRENCY=6,
                KIE_LOG_LEVEL="warn", **extra)


def created(fake_kie):
    return fake_kie.stats()["create_ms_by_job"]


WINDOWS = [2, pytest.param(10, marks=pytest.mark.long)]


@pytest.mark.parametrize("window_s", WINDOWS)
def test_small_groups_are_not_stuck_behind_a_big_one(redis_server, r, fake_kie, workers,
                                                     window_s):
    """One group enqueues 300 jobs; 3 s later ten other groups enqueue 2 each. Every one of
    the 20 small-group jobs gets its createTask within 15 s of being enqueued (at 20 per
    10 s; scaled: 3 s at 20 per 2 s), and the big group keeps getting slots."""
    f = window_s / 10
    fake_kie.config(create_limit=20, create_window_s=window_s, task_ms=50)
    workers(redis_server.url, fake_kie.url, **rate(window_s))
    push(r, [job(f"big-{i}", group="big") for i in range(300)])
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 1, 20, what="the first create")
    time.sleep(3 * f)  # the scenario: the small groups come 3 s later
    t0 = now_ms()
    small = [f"u{g}-{k}" for g in range(10) for k in range(2)]
    push(r, [job(j, group=j.split("-")[0]) for j in small])
    wait_for(lambda: all(j in created(fake_kie) for j in small), 40 * f + 20,
             what="the small groups' creates")
    c = created(fake_kie)
    waits = sorted(c[j] - t0 for j in small)
    last = max(c[j] for j in small)
    big_during = [j for j, t in c.items() if j.startswith("big-") and t0 <= t <= last]
    print(f"\nfairness at 20 per {window_s} s: small-group waits {waits[0]}..{waits[-1]} ms, "
          f"the big group got {len(big_during)} slot(s) meanwhile")
    assert waits[-1] <= 15000 * f, waits
    assert len(big_during) >= 1
    stats = fake_kie.stats()
    assert stats["creates_refused_429"] == 0 and stats["max_creates_in_any_window"] <= 20
    # and the big group goes on afterwards
    n = sum(1 for j in created(fake_kie) if j.startswith("big-"))
    wait_for(lambda: sum(1 for j in created(fake_kie) if j.startswith("big-")) >= n + 3,
             10 * f + 10, what="the big group to go on")


@pytest.mark.parametrize("window_s", WINDOWS)
def test_priority_jumps_the_backlog(redis_server, r, fake_kie, workers, window_s):
    """300 jobs at priority 2, then 10 at priority 9: the 10 go before the backlog, within
    the 2 slots already picked for, plus the reserved share (KIE_SCHED_RESERVE = 10: one
    pick in ten goes to the waiting lower level)."""
    fake_kie.config(create_limit=20, create_window_s=window_s, task_ms=50)
    workers(redis_server.url, fake_kie.url, **rate(window_s))
    push(r, [job(f"low-{i}", priority=2) for i in range(300)])
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 25, 10 * window_s,
             what="a steady pace")
    t0 = now_ms()
    high = [f"high-{i}" for i in range(10)]
    push(r, [job(j, priority=9) for j in high])
    wait_for(lambda: all(j in created(fake_kie) for j in high), 5 * window_s,
             what="the high-priority creates")
    c = created(fake_kie)
    last = max(c[j] for j in high)
    low_between = sorted(t for j, t in c.items() if j.startswith("low-") and t0 < t <= last)
    print(f"\npriority at 20 per {window_s} s: {len(low_between)} low-priority create(s) "
          f"among the 10 high ones")
    # 2 slots already picked for when they came, and 1 reserved pick in 10
    assert len(low_between) <= 3, low_between


@pytest.mark.parametrize("window_s", WINDOWS)
def test_a_flood_at_priority_9_lets_priority_0_through(redis_server, r, fake_kie, workers,
                                                       window_s):
    """A steady flood at priority 9 (the level never empties) and one job at priority 0:
    it starts within the stated bound, KIE_SCHED_RESERVE x (jobs ahead at its level + 1) x
    (lower levels waiting) = 10 picks, plus the 2 slots already picked for."""
    fake_kie.config(create_limit=20, create_window_s=window_s, task_ms=50)
    workers(redis_server.url, fake_kie.url, **rate(window_s))
    push(r, [job(f"flood-{i}", priority=9) for i in range(200)])
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 25, 10 * window_s,
             what="a steady pace")
    t0 = now_ms()
    push(r, [job("starved", priority=0)])
    wait_for(lambda: "starved" in created(fake_kie), 3 * window_s + 5, what="the job at 0")
    c = created(fake_kie)
    before = [t for j, t in c.items() if j.startswith("flood-") and t0 < t < c["starved"]]
    print(f"\nstarvation at 20 per {window_s} s: {len(before)} flood create(s) before the "
          f"priority-0 job")
    assert len(before) <= 10 + 2, len(before)
    assert r.zcard(f"{S}:ready") > 100  # the flood was still there


@pytest.mark.parametrize("window_s", WINDOWS)
def test_not_before(redis_server, r, fake_kie, workers, window_s):
    """notBefore: not created before its time, created within one slot after it (Redis
    ends a blocked wait on its timer, 1/hz = 100 ms: allowed on top)."""
    fake_kie.config(create_limit=20, create_window_s=window_s, task_ms=50)
    workers(redis_server.url, fake_kie.url, **rate(window_s))
    slot = window_s * 1050 / 20
    due = {"nb-1": now_ms() + 1500, "nb-2": now_ms() + 3000}
    push(r, [job(j, notBefore=t) for j, t in due.items()] + [job("now")])
    # the router takes them one by one: wait until both are routed
    wait_for(lambda: all(r.hget(f"{PREFIX}:job:{j}", "state") == "delayed" for j in due),
             10, what="nb-1 and nb-2 delayed")
    p = position(r, "nb-2")
    assert p["state"] == "delayed" and p["eta"] >= due["nb-2"]
    wait_for(lambda: all(j in created(fake_kie) for j in due), 15, what="both created")
    c = created(fake_kie)
    for j, t in due.items():
        late = c[j] - t
        print(f"\n{j}: created {late} ms after its notBefore (a slot is {slot:.0f} ms)")
        assert 0 <= late <= slot + 100 + 150, (j, late)


def test_cancel_queued_jobs_at_random_moments(redis_server, r, fake_kie, workers):
    """100 queued jobs, 50 cancelled at random moments (by FCALL kie_cancel, and by
    `kie job cancel`): none of the 50 reaches KIE, each gets one job.cancelled, the other
    50 complete. A cancel that comes before its job is remembered; one after the task was
    created is refused ("started")."""
    fake_kie.config(create_limit=20, create_window_s=1, task_ms=50)
    workers(redis_server.url, fake_kie.url, **rate(1))
    functions_loaded(r)
    early = cancel(r, "late-comer")
    assert early["result"] == "remembered"
    ids = [f"c-{i:03d}" for i in range(100)]
    push(r, [job(j, replyTo=f"{PREFIX}:replies:c") for j in ids] + [job("late-comer")])
    rnd = random.Random(19)
    # from the back 80 (at 20 per s, 16 at most are created in the first 0.8 s)
    victims = rnd.sample(ids[20:], 50)
    answers = {}
    env = base_env(redis_server.url)
    for n, j in enumerate(victims):
        time.sleep(rnd.uniform(0, 0.015))
        if n % 10 == 0:
            p = run_kie(["job", "cancel", j, "--json"], env)
            assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
            answers[j] = json.loads(p.stdout)["result"]
        else:
            answers[j] = cancel(r, j, f"{PREFIX}:replies:c")["result"]
    # "remembered": its descriptor was still on its way through <p>:queue (not routed yet)
    assert set(answers.values()) <= {"cancelled", "remembered"}, answers
    assert "cancelled" in answers.values()
    evs = wait_events(r, 101, timeout=60)
    by = {}
    for e in evs:
        by.setdefault(e["jobId"], []).append(e)
    assert all(len(v) == 1 for v in by.values())
    for j in victims:
        assert by[j][0]["event"] == "job.cancelled" and by[j][0]["taskId"] is None
        assert r.hget(f"{PREFIX}:job:{j}", "state") == "cancelled"
    assert by["late-comer"][0]["event"] == "job.cancelled"
    rest = set(ids) - set(victims)
    assert all(by[j][0]["status"] == "completed" for j in rest)
    stats = fake_kie.stats()
    assert set(stats["creates_by_job"]) == rest
    assert set(stats["creates_by_job"].values()) == {1}
    replies = [json.loads(e) for e in r.lrange(f"{PREFIX}:replies:c", 0, -1)]
    assert sorted(e["jobId"] for e in replies if e["event"] == "job.cancelled") == \
        sorted(victims)
    done = sorted(rest)[0]
    assert cancel(r, done)["result"] == "finished"
    p = run_kie(["job", "cancel", done], env)
    assert p.returncode == 10 and "completed already" in p.stdout, p.stdout
    r.hset(f"{PREFIX}:job:busy", mapping={"state": "polling", "taskId": "t"})
    assert cancel(r, "busy")["result"] == "started"
    assert int(r.hget(f"{PREFIX}:stats", "cancelled")) == 51
    assert dead(r) == []


def test_kill9_twenty_times_during_routing_and_picking(redis_server, r, tmpdir_path, workers):
    """Jobs of every priority and group (some with notBefore) pushed while workers are
    killed 20 times: the routers and pickers die between any two steps. Callbacks reach a
    worker that stays, so a createTask whose creator died is adopted, not made again:
    0 lost, 0 duplicates, counted at the fake."""
    from test_callbacks import endpoint_worker, signed_fake, HMAC_KEY
    from conftest import free_port
    fake = signed_fake(tmpdir_path)
    try:
        fake.config(task_ms=100, latency_ms=20)
        port = free_port()
        cb = f"http://127.0.0.1:{port}/api/kie/callback"
        fast = dict(KIE_UNCERTAIN_WINDOW_MS=8000, KIE_LOG_LEVEL="warn", KIE_WORKER_POLLERS=2,
                    KIE_HTTP_TIMEOUT_MS=2000, KIE_COPY_TIMEOUT_MS=2000)
        opts = dict(KIE_WORKER_CONCURRENCY=3, KIE_MAX_RECOVERIES=50, KIE_CALLBACK_URL=cb,
                    KIE_WEBHOOK_HMAC_KEY=HMAC_KEY, KIE_CREATE_LIMIT=100, **fast)
        stable = endpoint_worker(workers, redis_server.url, fake.url, port,
                                 KIE_WORKER_CONCURRENCY=1, KIE_CREATE_LIMIT=100, **fast)
        rnd = random.Random(1919)
        ids = [f"k-{i}" for i in range(400)]

        def desc(j):
            extra = {"priority": rnd.randrange(10), "group": f"g{rnd.randrange(7)}"}
            if rnd.random() < 0.05:
                extra["notBefore"] = now_ms() + rnd.randrange(2000)
            return job(j, **extra)
        stop = threading.Event()

        def producer():  # routing goes on while the kills land
            for k in range(0, len(ids), 10):
                push(r, [desc(j) for j in ids[k:k + 10]])
                if stop.wait(0.04):
                    return
        th = threading.Thread(target=producer)
        th.start()
        live = [workers(redis_server.url, fake.url, **opts) for _ in range(2)]
        for _ in range(20):
            time.sleep(rnd.uniform(0.05, 0.3))
            live.pop(rnd.randrange(len(live))).kill9()
            live.append(workers(redis_server.url, fake.url, **opts))
        th.join()
        evs = wait_events(r, len(ids), timeout=120)
        got = [e["jobId"] for e in evs]
        assert sorted(set(got)) == sorted(ids), "a job was lost"
        assert len(got) == len(ids), "a job was finalized twice"
        assert all(e["status"] == "completed" for e in evs)
        assert dead(r) == []
        st = fake.stats()
        assert set(st["creates_by_job"]) == set(ids) and set(st["creates_by_job"].values()) == {1}
        # nothing left in the structure, and every group's in-flight count back to 0
        assert r.zcard(f"{S}:ready") == 0 and r.hlen(f"{S}:items") == 0
        wait_for(lambda: not any(int(v) for v in r.hvals(f"{S}:inflight")), 10,
                 what="the in-flight counts back to 0")
        assert stable.proc.poll() is None
    finally:
        fake.stop()


def test_position_and_eta_from_python_and_node(redis_server, r, fake_kie, workers):
    """kie_position from Python (redis-py) and Node (the redis npm client, the documented
    command): in a steady queue, the ETA of a job more than 10 slots away is within 20% of
    its real start, and `kie job show` prints the same place."""
    window_s = 2
    fake_kie.config(create_limit=20, create_window_s=window_s, task_ms=50)
    workers(redis_server.url, fake_kie.url, **rate(window_s))
    ids = [f"p-{i:03d}" for i in range(70)]
    push(r, [job(j, group="shop") for j in ids])
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 15, 20, what="a steady pace")
    functions_loaded(r)
    asked = now_ms()
    pos = {j: position(r, j) for j in ids}
    far = {j: p for j, p in pos.items() if p["state"] == "queued" and p["position"] > 10}
    assert len(far) >= 20, pos
    sample = sorted(far, key=lambda j: far[j]["position"])[::5]
    assert all(far[j]["group"] == "shop" and far[j]["priority"] == 5 for j in sample)
    # Node, the same command
    env = dict(os.environ, REDIS_URL=redis_server.url, KIE_REDIS_PREFIX=PREFIX)
    node = subprocess.run(["node", os.path.join(ROOT, "scripts", "node", "where.mjs"),
                           "position", sample[-1]], env=env, capture_output=True, text=True,
                          timeout=30)
    assert node.returncode == 0, node.stderr
    by_node = json.loads(node.stdout)
    # asked a moment later: the same job, as far or nearer
    assert by_node["state"] == "queued" and by_node["group"] == "shop" and \
        0 <= by_node["position"] <= far[sample[-1]]["position"], (by_node, far[sample[-1]])
    p = run_kie(["job", "show", sample[-1]], base_env(redis_server.url))
    assert p.returncode == 0 and "position" in p.stdout and "ETA" in p.stdout, p.stdout
    wait_for(lambda: all(j in created(fake_kie) for j in sample), 30, what="the sample")
    c = created(fake_kie)
    errs = []
    for j in sample:
        real, eta = c[j] - asked, far[j]["eta"] - asked
        errs.append(round(abs(eta - real) / real, 3))
    print(f"\nETA error at 20 per {window_s} s (positions {[far[j]['position'] for j in sample]}): "
          f"{errs}")
    assert max(errs) <= 0.2, errs


def test_group_cap_is_never_exceeded(redis_server, r, fake_kie, workers):
    """kie group limit: at most N jobs of a group between start and final state, checked
    by a sampler reading every job's state while three groups run; the caps are reached,
    and every job completes."""
    fake_kie.config(task_ms=400)
    env = base_env(redis_server.url)
    for g, n in (("capped2", 2), ("capped3", 3)):
        p = run_kie(["group", "limit", g, str(n)], env)
        assert p.returncode == 0, p.stderr
    p = run_kie(["group", "weight", "free", "4"], env)
    assert p.returncode == 0 and "weight 4" in p.stdout, p.stdout
    groups = {"capped2": 12, "capped3": 12, "free": 12}
    ids = {g: [f"{g}-{i}" for i in range(n)] for g, n in groups.items()}
    workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=8)
    push(r, [job(j, group=g) for g in ids for j in ids[g]])
    peak = {g: 0 for g in groups}
    stop = threading.Event()

    def sampler():
        flight = ("creating", "polling", "uncertain")
        while not stop.is_set():
            pipe = r.pipeline()
            for g in ids:
                for j in ids[g]:
                    pipe.hget(f"{PREFIX}:job:{j}", "state")
            states = iter(pipe.execute())
            for g in ids:
                n = sum(1 for _ in ids[g] if next(states) in flight)
                peak[g] = max(peak[g], n)
            time.sleep(0.005)
    th = threading.Thread(target=sampler)
    th.start()
    try:
        wait_events(r, sum(groups.values()), timeout=60)
    finally:
        stop.set()
        th.join()
    print(f"\nin flight at most: {peak}")
    assert peak["capped2"] == 2 and peak["capped3"] == 3, peak
    assert peak["free"] > 3, peak
    assert all(e["status"] == "completed" for e in events(r))
    p = run_kie(["stats", "--json"], env)
    sched = json.loads(p.stdout)["schedule"]
    assert sched["limits"] == {"capped2": 2, "capped3": 3} and sched["weights"] == {"free": 4}


def test_job_started_event_and_the_wait_in_the_job_hash(redis_server, r, fake_kie, workers):
    """job.started (task id, queuedAt, startedAt) is published on <p>:events when the task
    is recorded, before the job's completion event; the job hash keeps queuedAt and
    startedAt; <p>:results and replyTo keep one completion event per job."""
    fake_kie.config(task_ms=300)
    ps = r.pubsub()
    ps.subscribe(f"{PREFIX}:events")
    wait_for(lambda: ps.get_message(timeout=0.1), 5, what="the subscription")
    workers(redis_server.url, fake_kie.url)
    t0 = now_ms()
    push(r, [job("st-1", replyTo=f"{PREFIX}:replies:st", meta={"u": 1})])
    seen = []

    def got_completion():
        m = ps.get_message(timeout=0.1)
        if m and m["type"] == "message":
            seen.append(json.loads(m["data"]))
        return any(e["event"] == "job.completed" for e in seen)
    wait_for(got_completion, 30, what="the events")
    assert [e["event"] for e in seen] == ["job.started", "job.completed"], seen
    st = seen[0]
    h = r.hgetall(f"{PREFIX}:job:st-1")
    assert st["taskId"] == h["taskId"] and st["meta"] == {"u": 1}
    assert t0 <= st["queuedAt"] <= st["startedAt"] <= now_ms()
    assert int(h["queuedAt"]) == st["queuedAt"] and int(h["startedAt"]) == st["startedAt"]
    assert r.llen(f"{PREFIX}:replies:st") == 1 and r.llen(f"{PREFIX}:results") == 1
    ps.close()
