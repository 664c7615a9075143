"""Redis Sentinel and demoted nodes: a worker finds the primary through the sentinels,
follows a forced failover mid-run without losing or repeating a job, and a node turned
into a replica under a worker (READONLY) makes every thread reconnect instead of
spinning, and work resumes once the node is a primary again."""
import datetime
import os
import re
import time

import pytest

from conftest import RedisServer, wait_for
from test_worker import PREFIX, dead, events, job, wait_events

NOWHERE = "redis://127.0.0.1:1/0"  # REDIS_URL's host and port are ignored with sentinels


def log_lines(ws):
    return sum(len(w.log().splitlines()) for w in ws)


def non_job_lines(text):
    """Lines about the worker itself (" job=- "), not one job's progress."""
    return [l for l in text.splitlines() if " job=- " in l]


def test_worker_finds_the_primary_through_sentinels(sentinels, fake_kie, workers):
    primary = sentinels.primary()
    r = primary.client()
    # a sentinel that does not answer comes first in the list: the next ones are asked
    dead_sentinel = "127.0.0.1:1"
    w = workers(NOWHERE, fake_kie.url,
                REDIS_SENTINELS=f"{dead_sentinel},{sentinels.env}",
                KIE_REDIS_MASTER_NAME=sentinels.MASTER)
    n = 20
    for i in range(n):
        r.lpush(f"{PREFIX}:queue", job(f"sent-{i}"))
    evs = wait_events(r, n)
    assert sorted(e["jobId"] for e in evs) == sorted(f"sent-{i}" for i in range(n))
    assert all(e["status"] == "completed" for e in evs)
    assert all(v == 1 for v in fake_kie.stats()["creates_by_job"].values())
    log = w.log()
    assert f"Redis primary for mymaster is 127.0.0.1:{primary.port} (via sentinel" in log, log
    # said once per change, not once per thread
    assert log.count("Redis primary for mymaster is") == 1, log
    # nothing went to REDIS_URL's address
    assert "127.0.0.1:1 " not in log and "127.0.0.1:1)" not in log, log


def test_bad_sentinel_settings_stop_start_up(fake_kie, workers):
    w = workers(NOWHERE, fake_kie.url, REDIS_SENTINELS="::1:26379")
    assert w.wait(30) == 2
    assert "REDIS_SENTINELS: entry 1" in w.log() and "in brackets" in w.log()
    w = workers(NOWHERE, fake_kie.url, REDIS_SENTINELS="127.0.0.1:26379",
                KIE_REDIS_MASTER_NAME="")
    assert w.wait(30) == 2
    assert "KIE_REDIS_MASTER_NAME is empty" in w.log()


def during_failover(read):
    """read() on a node the sentinels are reconfiguring, or None: they close its clients'
    connections (ours too: redis-py reconnects on the next call)."""
    import redis
    try:
        return read()
    except redis.ConnectionError:
        return None


def log_time(line):
    """The wall-clock time (epoch s) of a text log line."""
    return datetime.datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_forced_failover_mid_run(sentinels, fake_kie, workers):
    """SENTINEL FAILOVER while 200 jobs flow through 2 workers. createTask is held to 25/s
    pool-wide so the failover lands mid-run. The bound measured: from the failover command
    to the first task recorded on the new primary."""
    n = 200
    old = sentinels.primary()
    new = next(x for x in sentinels.nodes if x is not old)
    r_old, r_new = old.client(), new.client()
    pipe = r_old.pipeline()
    for i in range(n):
        pipe.lpush(f"{PREFIX}:queue", job(f"fo-{i}"))
    pipe.execute()
    assert r_old.execute_command("WAIT", 1, 5000) == 1  # the queue is on the replica too
    env = dict(REDIS_SENTINELS=sentinels.env, KIE_CREATE_LIMIT=25, KIE_CREATE_WINDOW_MS=1000,
               KIE_LIMIT_MARGIN_MS=0)
    ws = [workers(NOWHERE, fake_kie.url, **env) for _ in range(2)]
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 50, 60, what="50 jobs created")

    lines_before = [len(w.log().splitlines()) for w in ws]
    t0, t0_wall = time.monotonic(), time.time()
    assert sentinels.failover() in ("OK", True)
    # the new primary: promoted first, then the first task recorded through it
    wait_for(lambda: during_failover(lambda: r_new.execute_command("ROLE")[0]) == "master",
             30, interval=0.005, what="the replica to be promoted")
    t_promoted = time.monotonic() - t0
    base = wait_for(lambda: during_failover(
        lambda: [int(r_new.hget(f"{PREFIX}:stats", "tasks_created") or 0)]), 10)[0]
    wait_for(lambda: (during_failover(
        lambda: int(r_new.hget(f"{PREFIX}:stats", "tasks_created") or 0)) or 0) > base, 60,
             interval=0.005, what="a task recorded on the new primary")
    bound = time.monotonic() - t0
    # the failover ends when the sentinels have made the old primary a replica
    wait_for(lambda: during_failover(lambda: r_old.execute_command("ROLE")[0]) == "slave", 60,
             interval=0.05, what="the sentinels to demote the old primary")
    t_demoted = time.monotonic() - t0
    during = [w.log().splitlines()[k:] for w, k in zip(ws, lines_before)]
    print(f"\nfailover: replica promoted {t_promoted:.2f} s after SENTINEL FAILOVER; first "
          f"task recorded on the new primary after {bound:.2f} s; old primary demoted "
          f"after {t_demoted:.2f} s")
    print(f"worker log lines from SENTINEL FAILOVER to the old primary's demotion: "
          f"{sum(map(len, during))} ({sum(len(non_job_lines(chr(10).join(d))) for d in during)}"
          f" not about one job)")

    evs = wait_events(r_new, n, timeout=120)
    logs = [w.log() for w in ws]

    # the pool moved to the new primary, each worker said so, and none spun on the old one
    for text in logs:
        assert f"Redis primary for mymaster is 127.0.0.1:{new.port} (via sentinel" in text
    # (each job logs two lines; idle runners log their BLMOVE timeouts, see the commit)
    for d in during:
        assert len(non_job_lines("\n".join(d))) < 300, "\n".join(d)[-6000:]
        assert len(d) < 2 * n + 300, "\n".join(d)[-6000:]
    assert bound < 5, bound
    print("failover events seen:", [l[24:] for l in logs[0].splitlines()
                                    if "a failover of mymaster starts" in l or
                                    "mymaster switched" in l])
    print("leftovers handled again after the failover:",
          sum(t.count("was left in its processing list") for t in logs))

    # nothing lost: one completion event per job, completed, nothing dead
    for e in evs:
        if not e.get("jobId"):  # its task has no record on the new primary: say what we know
            tid = e.get("taskId")
            print("event without a jobId:", e, "task record:",
                  r_new.hgetall(f"{PREFIX}:task:{tid}"), "log:",
                  [l for t in logs for l in t.splitlines() if tid and tid in l])
    assert [e for e in evs if not e.get("jobId")] == []
    by_job = {}
    for e in evs:
        by_job.setdefault(e["jobId"], []).append(e)
    assert sorted(by_job) == sorted(f"fo-{i}" for i in range(n))
    assert {k: len(v) for k, v in by_job.items() if len(v) > 1} == {}
    assert all(v[0]["status"] == "completed" for v in by_job.values())
    assert dead(r_new) == []

    # one KIE task per job, except where a createTask's recording was lost with the old
    # primary: created through it after SENTINEL FAILOVER (its replica promoted, its writes
    # no longer replicated) and before that worker left it; the new primary never saw
    # that task. Each such duplicate is shown to be one of those before the assertion is
    # let fail (the team's job fencing is the fix; see the commit message).
    creates = fake_kie.stats()["creates_by_job"]
    assert sorted(creates) == sorted(f"fo-{i}" for i in range(n))
    twice = sorted((k for k, v in creates.items() if v != 1), key=lambda k: int(k[3:]))
    if not twice:
        return
    unexplained = []
    for k in twice:
        created = []  # (time, task id, worker index)
        for wi, text in enumerate(logs):
            for line in text.splitlines():
                m = re.search(rf" job={re.escape(k)} task=(\S+) created task", line)
                if m:
                    created.append((log_time(line), m.group(1), wi))
        created.sort()
        first_t, first_task, wi = created[0]
        # the worker was on the old primary until it first connected to the new one
        left = [log_time(l) for l in logs[wi].splitlines()
                if f"Redis primary for mymaster is 127.0.0.1:{new.port} " in l]
        # the new primary's record of the job does not name the first task
        record = r_new.hgetall(f"{PREFIX}:job:{k}")
        lost = record.get("taskId") != first_task
        ok = (len(created) == creates[k] == 2 and first_t >= t0_wall and left and
              first_t <= left[0] and lost)
        print(f"duplicate {k}: tasks {[(round(t - t0_wall, 3), tid) for t, tid, _ in created]}"
              f" (s after SENTINEL FAILOVER); worker {wi} on the new primary from "
              f"{round(left[0] - t0_wall, 3) if left else None} s; the new primary's job "
              f"record names {record.get('taskId')}")
        if not ok:
            unexplained.append(k)
            print("  job record", record, "first task's record",
                  r_new.hgetall(f"{PREFIX}:task:{first_task}"))
            for line in "\n".join(logs).splitlines():
                if f" job={k} " in line or first_task in line:
                    print("  ", line)
    assert unexplained == [], unexplained
    pytest.xfail(f"{len(twice)} duplicate task(s) ({twice[0]}..{twice[-1]}): created through "
                 f"the old primary after SENTINEL FAILOVER and before the worker left it; "
                 f"their recording was lost with it (asynchronous replication). Job fencing "
                 f"is the fix")


def test_readonly_node_every_thread_reconnects_without_spinning(redis_server, r, fake_kie,
                                                               workers, tmpdir_path):
    """No sentinels: the worker's node is made a replica of another server (READONLY to
    every write; its data replaced by the other's), then a primary again."""
    d = os.path.join(tmpdir_path, "other")
    os.makedirs(d)
    other = RedisServer(d)
    try:
        w = workers(redis_server.url, fake_kie.url)
        for i in range(10):
            r.lpush(f"{PREFIX}:queue", job(f"ro-before-{i}"))
        wait_events(r, 10)
        me = r.client_id()

        def worker_conns():
            return {c["id"] for c in r.client_list()
                    if c["id"] != str(me) and c["id"] != me and not set(c["flags"]) & set("MS")}
        before = worker_conns()
        # 4 runners, 2 pollers, the callback consumer, the router and the supervisor hold
        # one each
        assert len(before) == 9, r.client_list()
        conns_before = r.info("stats")["total_connections_received"]
        lines_before = len(w.log().splitlines())

        t0 = time.monotonic()
        r.execute_command("REPLICAOF", "127.0.0.1", str(other.port))
        # every thread drops the connection it had and makes a new one
        wait_for(lambda: not (worker_conns() & before), 30,
                 interval=0.05, what=lambda: f"every worker connection replaced "
                 f"(old still open: {worker_conns() & before})")
        t_all = time.monotonic() - t0
        # stay read-only a while: the worker must wait, not spin
        time.sleep(6)
        ro_s = time.monotonic() - t0
        ro_log = w.log().splitlines()[lines_before:]
        conns = r.info("stats")["total_connections_received"] - conns_before
        print(f"\nread-only for {ro_s:.1f} s: every connection replaced after {t_all:.2f} s; "
              f"{conns} connections made, {len(ro_log)} log lines")
        text = "\n".join(ro_log)
        assert "READONLY" in text, text
        assert "reconnected to Redis" in text, text
        for who in ("runner", "poller", "supervisor"):
            assert re.search(rf"{who}: (reconnected to Redis|leaving Redis|Redis 127)", text), \
                (who, text)
        assert len(ro_log) < 150, text
        assert conns < 300, conns

        r.execute_command("REPLICAOF", "NO", "ONE")
        t1 = time.monotonic()
        m = 10
        for i in range(m):
            r.lpush(f"{PREFIX}:queue", job(f"ro-after-{i}"))
        evs = wait_events(r, m, timeout=60)  # the node's data is the other's: a fresh list
        print(f"working again {time.monotonic() - t1:.2f} s after REPLICAOF NO ONE")
        assert sorted(e["jobId"] for e in evs) == sorted(f"ro-after-{i}" for i in range(m))
        assert all(v == 1 for v in fake_kie.stats()["creates_by_job"].values())
        assert w.proc.poll() is None
    finally:
        other.stop()
