"""The finish path of issue 18: what a finished job leaves in Redis, the times every event
carries, and pollers that wait for a due time or a kick instead of napping."""
import json
import socket
import time

from conftest import wait_for
from test_worker import PREFIX, events, job, wait_events


def test_a_finished_job_leaves_a_small_job_hash_and_no_task_hash(redis_server, r, fake_kie,
                                                                workers):
    """docs/protocol.md section 2: the record is in the store; the job hash keeps only what
    the once-only finalization and `kie job show` need, a listpack of short values."""
    workers(redis_server.url, fake_kie.url)
    ids = [f"mem-{i}" for i in range(8)]
    for i in ids:
        r.lpush(f"{PREFIX}:queue", job(i, "generate_image", ratio="9:16"))
    evs = wait_events(r, len(ids))
    assert {e["status"] for e in evs} == {"completed"}
    assert r.keys(f"{PREFIX}:task:*") == []
    for i in ids:
        h = r.hgetall(f"{PREFIX}:job:{i}")
        assert set(h) <= {"state", "taskId", "attempts", "type", "group", "createdAt", "updatedAt",
                          "finishedAt", "queuedAt", "startedAt"}, h
        assert h["state"] == "completed" and int(h["finishedAt"]) > 0, h
        used = r.memory_usage(f"{PREFIX}:job:{i}", samples=0)
        assert used <= 300, (i, used, h)
        assert 0 < r.ttl(f"{PREFIX}:job:{i}") <= 7 * 86400


def test_every_event_carries_the_jobs_queued_and_started_times(redis_server, r, fake_kie,
                                                               workers):
    """queuedAt and startedAt (epoch ms) from the job hash in every event: queuedAt as the
    router first wrote it (kept when the job hash has one: set here before the push),
    startedAt when its task was recorded (none for a job that got no task)."""
    workers(redis_server.url, fake_kie.url)
    t0 = int(time.time() * 1000)
    r.hset(f"{PREFIX}:job:t-ok", mapping={"queuedAt": 1700000000001})
    r.hset(f"{PREFIX}:job:t-dead", mapping={"queuedAt": 1700000000003})
    r.lpush(f"{PREFIX}:queue", job("t-ok"))
    r.lpush(f"{PREFIX}:queue", job("t-dead", input={"prompt": "[fake:400] no"}))
    r.lpush(f"{PREFIX}:queue", job("t-none"))
    wait_events(r, 3)
    t1 = int(time.time() * 1000)
    by = {e["jobId"]: e for e in events(r)}
    assert by["t-ok"]["queuedAt"] == 1700000000001, by["t-ok"]
    assert t0 <= by["t-ok"]["startedAt"] <= t1, by["t-ok"]
    assert by["t-dead"]["status"] == "dead" and by["t-dead"]["queuedAt"] == 1700000000003
    assert "startedAt" not in by["t-dead"]
    assert t0 <= by["t-none"]["queuedAt"] <= by["t-none"]["startedAt"] <= t1, by["t-none"]
    # finishedAt keeps its v1 form and the fields stay before it
    assert list(by["t-ok"]).index("startedAt") == list(by["t-ok"]).index("finishedAt") - 1
    assert by["t-ok"]["finishedAt"].endswith("Z")


def poll_steps(redis_server, seconds):
    """How many poller steps Redis ran in the next seconds: MONITOR's lines of the ZRANGE
    on <p>:poll:due that every version of poll_next.lua runs once per step."""
    mark = f'"ZRANGE" "{PREFIX}:poll:due"'.encode()
    s = socket.create_connection(("127.0.0.1", redis_server.port))
    s.sendall(b"MONITOR\r\n")
    s.settimeout(0.2)
    end, buf = time.monotonic() + seconds, b""
    while time.monotonic() < end:
        try:
            buf += s.recv(65536)
        except socket.timeout:
            pass
    s.close()
    return buf.count(mark)


def test_idle_pollers_wait_for_a_due_time_not_a_fixed_interval(redis_server, r, fake_kie,
                                                               workers):
    """An idle poller looks at <p>:poll:due once a second at most (no 200 ms naps); a task
    made due by this process is taken at once: the callback consumer's kick."""
    w = workers(redis_server.url, fake_kie.url, KIE_WORKER_POLLERS=2,
                KIE_POLL_INITIAL_MS=60000, KIE_POLL_MAX_MS=60000)
    r.lpush(f"{PREFIX}:queue", job("idle-1"))
    # created, first poll a minute away: nothing else to do
    wait_for(lambda: r.zcard(f"{PREFIX}:poll:due") == 1, 30, what="the task handed off")
    time.sleep(0.5)
    steps = poll_steps(redis_server, 3)
    # 2 pollers x 3 s at one look a second (+1 each for the edges); napping 200 ms made
    # it about 30
    assert steps <= 10, steps
    # an unverified callback entry: the consumer makes the task due now and kicks a poller
    task = r.zrange(f"{PREFIX}:poll:due", 0, 0)[0]
    body = json.dumps({"code": 200, "data": {"taskId": task, "state": "success"}})
    t0 = time.monotonic()
    r.lpush(f"{PREFIX}:callbacks", json.dumps({"v": 1, "jobId": "idle-1", "taskId": task,
                                               "verified": False, "receivedAt": 1,
                                               "body": body}))
    ev = wait_events(r, 1, timeout=30)[0]
    assert ev["jobId"] == "idle-1" and ev["status"] == "completed"
    assert time.monotonic() - t0 < 5, "the callback's task waited for its poll time"
    assert "ERROR" not in w.log()
