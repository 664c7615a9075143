"""System tests of GET /metrics, /healthz and /readyz on the worker's HTTP server
(KIE_HTTP_ADDR; docs/operations.md, "Metrics and alerts"): the exposition parsed by Debian's
python3-prometheus-client, its counters against what the fakes counted, the pool's gauges
against a queue filled while paused, readiness when Redis or the store goes away."""
import http.client
import json
import socket
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import base_env, free_port, run_kie, wait_for

PREFIX = "kie"


def job(i, **kw):
    d = {"v": 1, "id": f"m-{i}", "type": "raw",
         "input": {"prompt": f"metrics test {i}", "imageUrl": "https://cdn.example.com/a.png"}}
    d.update(kw)
    return json.dumps(d)


def get(port, path, method="GET", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": "kie-tests"})
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def scrape(port):
    """{sample name: {frozenset(labels.items()): value}} and the families by name."""
    status, hdrs, data = get(port, "/metrics")
    assert status == 200, (status, data)
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4"), hdrs
    samples, families = {}, {}
    for fam in text_string_to_metric_families(data.decode("utf-8")):
        families[fam.name] = fam
        for s in fam.samples:
            samples.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return samples, families


def val(samples, name, **labels):
    return samples[name][frozenset(labels.items())]


def total(samples, name, **labels):
    """Sum over the series of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for k, v in samples.get(name, {}).items() if want <= set(k))


def start(workers, redis_server, fake_kie, **extra):
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}", **extra)

    def up():
        if w.proc.poll() is not None:
            raise AssertionError(f"worker exited with {w.proc.returncode}:\n{w.log()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    wait_for(up, 15, what=f"the worker's HTTP server on port {port}")
    return w, port


def check_histograms(samples, families):
    """Every histogram: buckets cumulative (non-decreasing in le), +Inf == _count."""
    hists = [f for f in families.values() if f.type == "histogram"]
    assert {f.name for f in hists} >= {"kie_api_request_duration_seconds",
                                       "kie_claim_to_task_seconds",
                                       "kie_task_to_completion_seconds"}
    for f in hists:
        series = {}
        for s in f.samples:
            if s.name.endswith("_bucket"):
                key = frozenset((k, v) for k, v in s.labels.items() if k != "le")
                series.setdefault(key, []).append((float(s.labels["le"]), s.value))
        assert series, f.name
        for key, buckets in series.items():
            buckets.sort()
            values = [v for _, v in buckets]
            assert values == sorted(values), (f.name, key, buckets)
            assert buckets[-1][0] == float("inf")
            assert val(samples, f.name + "_count", **dict(key)) == values[-1], (f.name, key)
            assert val(samples, f.name + "_sum", **dict(key)) >= 0


def test_counters_move_as_jobs_run(redis_server, r, fake_kie, workers):
    w, port = start(workers, redis_server, fake_kie)
    before, _ = scrape(port)
    assert total(before, "kie_jobs_total", outcome="completed") == 0
    n = 6
    for i in range(n - 1):
        r.lpush(f"{PREFIX}:queue", job(i))
    r.lpush(f"{PREFIX}:queue", job(99, input={"prompt": "fails [fake:fail]",
                                              "imageUrl": "https://cdn.example.com/a.png"}))
    r.lpush(f"{PREFIX}:queue", '{"v": 1, "type": "no_such_type"}')
    wait_for(lambda: r.llen(f"{PREFIX}:results") == n, 60, what=f"{n} completion events")
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == 1, 20, what="the dead letter")
    events = [json.loads(e) for e in r.lrange(f"{PREFIX}:results", 0, -1)]
    completed = sum(1 for e in events if e["status"] == "completed")
    failed = sum(1 for e in events if e["status"] == "failed")
    assert (completed, failed) == (n - 1, 1)

    s, families = scrape(port)
    assert val(s, "kie_jobs_total", type="raw", outcome="completed") == completed
    assert total(s, "kie_jobs_total", outcome="completed") == completed
    assert val(s, "kie_jobs_total", type="raw", outcome="failed") == failed
    assert val(s, "kie_dead_letters_total", reason="parse") == 1
    assert val(s, "kie_jobs_total", type="unknown", outcome="dead") == 1
    stats = fake_kie.stats()
    assert stats["creates_total"] == n
    assert val(s, "kie_api_requests_total", endpoint="createTask", code="200") == \
        stats["creates_total"]
    assert total(s, "kie_api_requests_total", endpoint="recordInfo") == \
        stats["record_info_total"]
    # one latency observation per call, one claim-to-task per task, one completion per task
    assert val(s, "kie_api_request_duration_seconds_count", endpoint="createTask") == \
        total(s, "kie_api_requests_total", endpoint="createTask")
    assert val(s, "kie_claim_to_task_seconds_count") == n
    assert val(s, "kie_task_to_completion_seconds_count") == n
    check_histograms(s, families)
    # the pool's gauges are read at most once a second (a scrape may see the last read)
    wait_for(lambda: val(scrape(port)[0], "kie_queue_jobs", queue="dead") == 1, 10,
             what="kie_queue_jobs{queue=dead} == 1")
    s, _ = scrape(port)
    assert val(s, "kie_redis_up") == 1
    assert val(s, "kie_workers_alive") == 1
    assert val(s, "kie_queue_jobs", queue="queue") == 0

    # the callback endpoint counts what it refused
    status, _, _ = get(port, "/api/kie/callback", "POST", b'{"not": "a callback"}')
    assert status == 400
    s, _ = scrape(port)
    assert val(s, "kie_callbacks_total", result="bad_body") == 1
    assert val(s, "kie_callbacks_total", result="unverified") == 0


def test_pool_gauges_while_paused(redis_server, r, fake_kie, workers):
    w, port = start(workers, redis_server, fake_kie)
    env = base_env(redis_server.url)
    p = run_kie(["pause", "--reason", "metrics test"], env)
    assert p.returncode == 0, p.stderr
    n = 7
    for i in range(n):
        r.lpush(f"{PREFIX}:queue", job(i))
    r.lpush(f"{PREFIX}:queue", job(n, priority=9))

    def gauges():
        s, _ = scrape(port)
        return s
    # routed while paused: the jobs wait in the scheduling structure, by priority (the
    # router moves a batch into its own list and routes it, the p9 job last; the queue,
    # the consumers' lists and the structures are read a round trip apart: wait for one
    # scrape that shows all of it)
    def routed():
        s = gauges()
        return (val(s, "kie_queued_jobs", priority="5") == n and
                val(s, "kie_queued_jobs", priority="9") == 1 and
                val(s, "kie_queue_jobs", queue="queue") == 0 and
                val(s, "kie_queue_jobs", queue="processing") == 0) and s
    s = wait_for(routed, 10, what=f"kie_queued_jobs{{priority=5}} == {n}, {{priority=9}} "
                 "== 1, the queue and the consumers' lists empty")
    assert val(s, "kie_paused", kind="operator") == 1
    assert val(s, "kie_paused", kind="credits") == 0
    assert val(s, "kie_paused", kind="account") == 0
    assert val(s, "kie_workers_alive") == 1
    assert val(s, "kie_queue_jobs", queue="processing") == 0
    assert val(s, "kie_jobs_cancelled_total") == 0
    assert fake_kie.stats()["creates_total"] == 0
    p = run_kie(["job", "cancel", json.loads(job(0))["id"]], env)
    assert p.returncode == 0, (p.stdout, p.stderr)
    wait_for(lambda: val(gauges(), "kie_jobs_cancelled_total") == 1, 10, what="the cancel")
    assert val(gauges(), "kie_queued_jobs", priority="5") == n - 1

    p = run_kie(["resume"], env)
    assert p.returncode == 0, p.stderr
    wait_for(lambda: r.llen(f"{PREFIX}:results") == n + 1, 60, what=f"{n + 1} events")
    wait_for(lambda: val(gauges(), "kie_queued_jobs", priority="5") == 0, 10,
             what="the queued gauge back to 0")
    s = gauges()
    assert all(val(s, "kie_paused", kind=k) == 0 for k in ("operator", "credits", "account"))
    assert val(s, "kie_queue_head_wait_seconds") == 0
    assert val(s, "kie_jobs_total", type="raw", outcome="completed") == n
    # the wait from queuedAt to the pick, by priority: the paused time is in it
    assert val(s, "kie_queue_wait_seconds_count", priority="5") == n - 1
    assert val(s, "kie_queue_wait_seconds_count", priority="9") == 1
    assert val(s, "kie_queue_wait_seconds_bucket", priority="9", le="0.1") == 0


def test_readyz_follows_redis_and_healthz_does_not(redis_server, r, fake_kie, workers):
    w, port = start(workers, redis_server, fake_kie)
    status, hdrs, body = get(port, "/readyz")
    assert status == 200 and json.loads(body)["status"] == "ok", body
    assert get(port, "/healthz")[0] == 200

    redis_server.stop()

    def not_ready():
        st, _, b = get(port, "/readyz")
        return st == 503 and "redis" in json.loads(b)["error"]
    wait_for(not_ready, 10, what="/readyz 503 naming redis")
    # alive all the while: waiting for Redis is not a reason to restart the worker
    for _ in range(5):
        assert get(port, "/healthz")[0] == 200
        s, _ = scrape(port)  # the process's counters still answer, 200
        assert val(s, "kie_redis_up") == 0
        assert "kie_queue_jobs" not in s
        time.sleep(0.3)  # alive over 1.5 s of Redis gone, not at one instant (the subject)

    redis_server.start()
    wait_for(lambda: get(port, "/readyz")[0] == 200, 20, what="/readyz 200 again")
    wait_for(lambda: val(scrape(port)[0], "kie_redis_up") == 1, 10, what="kie_redis_up 1")


def test_readyz_names_an_unreachable_store(redis_server, r, fake_kie, fake_s3, workers):
    w, port = start(workers, redis_server, fake_kie, **fake_s3.env())
    assert get(port, "/readyz")[0] == 200
    fake_s3.stop()

    def store_down():
        st, _, b = get(port, "/readyz")
        return st == 503 and json.loads(b)["error"].startswith("store (r2)")
    wait_for(store_down, 15, what="/readyz 503 naming the store")
    assert get(port, "/healthz")[0] == 200


def test_methods_and_paths(redis_server, r, fake_kie, workers):
    w, port = start(workers, redis_server, fake_kie)
    for path in ("/metrics", "/healthz", "/readyz"):
        status, hdrs, _ = get(port, path, "POST", b"x")
        assert status == 405 and hdrs["allow"] == "GET, HEAD", (path, status, hdrs)
        status, hdrs, body = get(port, path, "HEAD")
        assert status == 200 and body == b"", (path, status)
    assert get(port, "/metrics/")[0] == 404
    assert get(port, "/nothing")[0] == 404
