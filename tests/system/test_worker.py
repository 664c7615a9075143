"""System tests of kie-worker: real redis-server, the KIE fake, real worker processes,
producers in Python, Node and redis-cli."""
import hashlib
import json
import os
import random
import re
import subprocess
import time

import pytest

from conftest import ROOT, TOKEN, PY, wait_for, base_env

PREFIX = "kie"

EXAMPLES = {
    "generate_image": {"description": "淡紫色丝绒短外套 + 高腰直筒牛仔裤",
                       "imageUrl": "https://img.example.com/model.png", "wearMask": True,
                       "extractTopOnly": True},
    "model_pose": {"imageUrl": "https://img.example.com/model.png", "pose": "arms crossed"},
    "extract_clothing": {"imageUrls": ["https://img.example.com/look.png"],
                         "recommendMatches": True, "topOnly": False},
    "outfit_change_v2": {"clothingImageUrl": "https://img.example.com/jacket.png",
                         "modelImageUrl": "https://img.example.com/model.png",
                         "poseTweak": True, "seed": 3},
    "raw": {"prompt": "a red coat on a mannequin", "imageUrls": ["https://img.example.com/c.png"]},
}


def job(job_id, job_type="raw", **extra):
    d = {"v": 1, "id": job_id, "type": job_type, "input": dict(EXAMPLES[job_type])}
    d.update(extra)
    return json.dumps(d, ensure_ascii=False)


def events(r):
    return [json.loads(e) for e in r.lrange(f"{PREFIX}:results", 0, -1)]


def dead(r):
    return [json.loads(e) for e in r.lrange(f"{PREFIX}:dead", 0, -1)]


def wait_events(r, n, timeout=60):
    def state():
        held = {k: r.lrange(k, 0, -1) for k in r.keys(f"{PREFIX}:processing:*") if r.llen(k)}
        unc = {j: r.hgetall(f"{PREFIX}:job:{j}") for j in r.zrange(PREFIX + ':uncertain', 0, 4)}
        done = {e["jobId"] for e in events(r)}
        missing = [k.split(":", 2)[2] for k in r.keys(f"{PREFIX}:job:*")
                   if k.split(":", 2)[2] not in done][:3]
        miss = {m: r.hgetall(f"{PREFIX}:job:{m}") for m in missing}
        return (f"{n} completion events (uncertain {r.zcard(PREFIX + ':uncertain')} {unc}; "
                f"missing {miss}; have {len(events(r))}; queue {r.llen(PREFIX + ':queue')}"
                f", polling {r.llen(PREFIX + ':polling')}, poll:due {r.zcard(PREFIX + ':poll:due')}"
                f", dead {r.llen(PREFIX + ':dead')}, held {held})")
    return wait_for(lambda: len(events(r)) >= n and events(r), timeout, what=state)


def meta_record(tmp, task_id):
    with open(os.path.join(tmp, "meta", "kie-tasks", f"{task_id}.json")) as f:
        return json.load(f)


def test_every_type_end_to_end_from_python(redis_server, r, fake_kie, workers, tmpdir_path):
    w = workers(redis_server.url, fake_kie.url)
    for t in EXAMPLES:
        r.lpush(f"{PREFIX}:queue", job(f"e2e-{t}", t, replyTo=f"{PREFIX}:replies:e2e",
                                       meta={"t": t}, character="ava"))
    evs = wait_events(r, len(EXAMPLES))
    by_job = {e["jobId"]: e for e in evs}
    assert sorted(by_job) == sorted(f"e2e-{t}" for t in EXAMPLES)
    stats = fake_kie.stats()
    for t in EXAMPLES:
        e = by_job[f"e2e-{t}"]
        assert e["status"] == "completed", e
        assert e["event"] == "job.completed"
        assert e["type"] == t
        assert e["meta"] == {"t": t}
        assert e["resultUrls"] and e["resultUrls"][0].endswith(".png"), e
        assert stats["creates_by_job"][f"e2e-{t}"] == 1
        rec = meta_record(tmpdir_path, e["taskId"])
        assert rec["status"] == "completed"
        assert rec["resultUrls"] == e["resultUrls"]
        assert rec["jobId"] == f"e2e-{t}" and rec["type"] == t and rec["character"] == "ava"
        assert rec["prompt"] and rec["createdAt"].endswith("Z")
        assert r.hget(f"{PREFIX}:job:e2e-{t}", "state") == "completed"
    # extract_clothing is always 1:1; the others default to the seed's 9:16
    assert meta_record(tmpdir_path, by_job["e2e-extract_clothing"]["taskId"])["ratio"] == "1:1"
    assert meta_record(tmpdir_path, by_job["e2e-raw"]["taskId"])["ratio"] == "9:16"
    assert r.llen(f"{PREFIX}:replies:e2e") == len(EXAMPLES)
    assert r.llen(f"{PREFIX}:dead") == 0


def test_producer_scripts_python_node_and_redis_cli(redis_server, r, fake_kie, workers):
    workers(redis_server.url, fake_kie.url)
    env = base_env(redis_server.url, WAIT_S="60")
    py = subprocess.run([PY, os.path.join(ROOT, "scripts", "produce.py"), "--count", "3",
                         "--type", "outfit_change_v2", "--wait-s", "60"],
                        env=env, capture_output=True, text=True, timeout=90)
    assert py.returncode == 0, py.stderr
    py_events = [json.loads(l) for l in py.stdout.splitlines()]
    assert len(py_events) == 3 and all(e["status"] == "completed" for e in py_events)
    assert all(e["meta"] == {"producer": "python"} for e in py_events)

    node = subprocess.run(["node", os.path.join(ROOT, "scripts", "node", "produce.mjs"), "2"],
                          env=env, capture_output=True, text=True, timeout=90)
    assert node.returncode == 0, node.stderr
    node_events = [json.loads(l) for l in node.stdout.splitlines()]
    assert len(node_events) == 2 and all(e["status"] == "completed" for e in node_events)
    assert all(e["type"] == "model_pose" for e in node_events)

    cli = subprocess.run(["sh", os.path.join(ROOT, "scripts", "produce.sh"), "cli-job-1"],
                         env=env, capture_output=True, text=True, timeout=90)
    assert cli.returncode == 0, cli.stderr
    ev = json.loads(cli.stdout.strip().splitlines()[-1])
    assert ev["jobId"] == "cli-job-1" and ev["status"] == "completed"
    assert fake_kie.stats()["creates_total"] == 6


def test_three_workers_1000_jobs_one_task_each(redis_server, r, fake_kie, workers):
    fake_kie.config(task_ms=150)
    n = 1000
    pipe = r.pipeline()
    for i in range(n):
        pipe.lpush(f"{PREFIX}:queue", job(f"bulk-{i}"))
    pipe.execute()
    for _ in range(3):
        workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=8,
                KIE_WORKER_POLLERS=4, KIE_LOG_LEVEL="warn")
    evs = wait_events(r, n, timeout=180)
    ids = [e["jobId"] for e in evs]
    assert len(ids) == n and len(set(ids)) == n
    assert all(e["status"] == "completed" for e in evs)
    stats = fake_kie.stats()
    assert stats["creates_total"] == n
    assert set(stats["creates_by_job"].values()) == {1}
    assert r.llen(f"{PREFIX}:dead") == 0


def test_kill9_twenty_times_every_job_completes(redis_server, r, fake_kie, workers, tmpdir_path):
    """kill -9 a random worker at random moments, 20 times, replacing it each time."""
    fake_kie.config(task_ms=200, latency_ms=20)
    n = 400
    for i in range(n):
        r.lpush(f"{PREFIX}:queue", job(f"k-{i}"))
    # a killed poller's task waits out its lease (HTTP + copy timeouts, + 5 s; 75 s at the
    # fixtures' settings): 2 s timeouts, still 100 times the fake's latency, make it 11 s
    opts = dict(KIE_WORKER_CONCURRENCY=4, KIE_WORKER_POLLERS=2, KIE_MAX_RECOVERIES=50,
                KIE_LOG_LEVEL="info", KIE_HTTP_TIMEOUT_MS=2000, KIE_COPY_TIMEOUT_MS=2000)
    live = [workers(redis_server.url, fake_kie.url, **opts) for _ in range(3)]
    all_workers = list(live)
    rnd = random.Random(1234)
    for _ in range(20):
        time.sleep(rnd.uniform(0.05, 0.4))
        victim = live.pop(rnd.randrange(len(live)))
        victim.kill9()
        nw = workers(redis_server.url, fake_kie.url, **opts)
        live.append(nw)
        all_workers.append(nw)
    evs = wait_events(r, n, timeout=240)
    ids = [e["jobId"] for e in evs]
    assert sorted(set(ids)) == sorted(f"k-{i}" for i in range(n)), "a job was lost"
    assert len(ids) == n, "a job was finalized twice"
    assert all(e["status"] == "completed" for e in evs)
    assert r.llen(f"{PREFIX}:dead") == 0
    stats = fake_kie.stats()
    dups = {j: c for j, c in stats["creates_by_job"].items() if c > 1}
    extra = sum(c - 1 for c in dups.values())
    # A duplicate can only come from a kill between KIE's answer and the recording of
    # the task id: the replacement finds the job in state "creating" without a task id
    # and logs it. Every duplicated job must have that warning.
    logs = "".join(w.log() for w in all_workers)
    mid_create = set(re.findall(r"job=(\S+) task=- the job's last worker stopped during "
                                r"createTask", logs))
    assert set(dups) <= mid_create, (dups, mid_create)
    print(f"\nkill -9 x20: {n} jobs, {stats['creates_total']} tasks created, "
          f"{extra} duplicate task(s) in {len(dups)} job(s); "
          f"{len(mid_create)} job(s) were mid-createTask at a kill")
    assert extra <= 20 * 4


def test_sigterm_mid_work_loses_nothing(redis_server, r, fake_kie, workers):
    fake_kie.config(task_ms=800, latency_ms=50)
    n = 60
    for i in range(n):
        r.lpush(f"{PREFIX}:queue", job(f"t-{i}"))
    w = workers(redis_server.url, fake_kie.url)
    wait_for(lambda: fake_kie.stats()["creates_total"] >= 10, 30, what="some tasks created")
    assert w.stop() == 0
    assert "stopping: finishing in-flight work" in w.log()
    # nothing is left claimed by the stopped worker
    assert r.keys(f"{PREFIX}:processing:*") == [] or \
        all(r.llen(k) == 0 for k in r.keys(f"{PREFIX}:processing:*"))
    w2 = workers(redis_server.url, fake_kie.url, args=["--drain"])
    assert w2.wait(120) == 0
    evs = events(r)
    assert sorted(e["jobId"] for e in evs) == sorted(f"t-{i}" for i in range(n))
    assert set(fake_kie.stats()["creates_by_job"].values()) == {1}


def test_redis_restart_mid_run(tmpdir_path, fake_kie, workers):
    from conftest import RedisServer
    d = os.path.join(tmpdir_path, "redis-aof")
    os.makedirs(d)
    srv = RedisServer(d, aof=True)  # durable Redis: the operator's part of the bargain
    try:
        r = srv.client()
        fake_kie.config(task_ms=300)
        n = 80
        for i in range(n):
            r.lpush(f"{PREFIX}:queue", job(f"rr-{i}"))
        # a poll whose reply the restart lost is taken again when its lease ends (HTTP +
        # copy timeouts, + 5 s; 75 s at the fixtures' settings): 2 s timeouts make it 11 s
        w = workers(srv.url, fake_kie.url, KIE_HTTP_TIMEOUT_MS=2000, KIE_COPY_TIMEOUT_MS=2000)
        wait_for(lambda: fake_kie.stats()["creates_total"] >= 15, 30, what="progress")
        srv.restart()
        r = srv.client()
        evs = wait_events(r, n, timeout=120)
        assert sorted(e["jobId"] for e in evs) == sorted(f"rr-{i}" for i in range(n))
        assert "reconnected to Redis" in w.log()
        assert set(fake_kie.stats()["creates_by_job"].values()) == {1}
    finally:
        srv.stop()


BAD = [
    (b"not json at all", "not strict JSON"),
    (b"[1,2,3]", "must be a JSON object"),
    (b'{"v":1,"type":"teleport","input":{}}', 'type "teleport" is unknown'),
    (b'{"type":"raw","input":{"prompt":"x","imageUrl":"https://a.b/c.png"}}', "v is missing"),
    (b'{"v":2,"type":"raw","input":{}}', "v=2 is not supported"),
    (b'{"v":1,"type":"raw","input":{"imageUrl":"https://a.b/c.png"}}', "input.prompt is missing"),
    (b'{"v":1,"type":"generate_image","input":{"description":5,"imageUrl":"https://a.b/c.png"}}',
     "input.description must be a string"),
    (b'{"v":1,"type":"model_pose","input":{}}', "input.imageUrl (or imageUrls) is missing"),
    (json.dumps({"v": 1, "type": "raw", "input": {"prompt": "x" * 5001,
                 "imageUrl": "https://a.b/c.png"}}).encode(), "5000"),
    (json.dumps({"v": 1, "type": "raw", "input": {
        "prompt": "x", "imageUrls": [f"https://a.b/{i}.png" for i in range(11)]}}).encode(),
     "at most 10"),
    (b'{"v":1,"type":"raw","colour":"red","input":{"prompt":"x"}}', 'unknown field "colour"'),
    (b'{"v":1,"type":"raw","maxAttempts":"3","input":{"prompt":"x"}}', "maxAttempts must be"),
    (b'{"v":1,"type":"raw","ratio":"7:5","input":{"prompt":"x","imageUrl":"https://a.b/c.png"}}',
     "ratio"),
    (b'{"v":1,"type":"raw","input":{"prompt":"x","imageUrl":"ftp://a.b/c.png"}}', "http(s)"),
    (b'{"v":1,"type":"raw","input":{"prompt":"\xff\xfe"}}', "invalid UTF-8"),
    (b'{"v":1,"type":"raw","input":{"prompt":"' + b"y" * 70000 + b'"}}', "KIE_JOB_MAX_BYTES"),
]


def test_bad_descriptors_go_to_dead_letters_with_reasons(redis_server, r, fake_kie, workers):
    for raw, _ in BAD:
        r.lpush(f"{PREFIX}:queue", raw)
    r.lpush(f"{PREFIX}:queue", job("good-after-bad"))
    w = workers(redis_server.url, fake_kie.url)
    wait_events(r, 1)
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == len(BAD), 20, what="dead letters")
    assert w.proc.poll() is None, "the worker died"
    import redis as redislib
    rb = redislib.Redis(port=redis_server.port)
    import base64
    by_raw = {}
    by_hash = {}
    for e in (json.loads(x) for x in rb.lrange(f"{PREFIX}:dead", 0, -1)):
        if "sha256" in e:  # over KIE_JOB_MAX_BYTES: size, hash and head, never all of it
            by_hash[e["sha256"]] = e
            continue
        original = e["raw"].encode() if "raw" in e else base64.b64decode(e["rawBase64"])
        by_raw[original] = e
    for raw, reason in BAD:
        if len(raw) > 65536 + 36:
            e = by_hash[hashlib.sha256(raw).hexdigest()]
            assert e["size"] == len(raw) and raw.startswith(e["rawHead"].encode())
            assert reason in e["reason"], (reason, e["reason"])
            continue
        assert raw in by_raw, f"original bytes not kept for {raw[:40]!r}"
        e = by_raw[raw]
        assert reason in e["reason"], (reason, e["reason"])
        assert e["source"] == "parse"
    assert events(r)[0]["jobId"] == "good-after-bad"
    assert fake_kie.stats()["creates_total"] == 1


def test_bad_descriptor_that_names_its_id_gets_an_event_and_its_id(redis_server, r,
                                                                    fake_kie, workers):
    raw = b'{"v":1,"id":"typo-1","type":"teleport","replyTo":"kie:replies:t","input":{}}'
    r.lpush(f"{PREFIX}:queue", raw)
    workers(redis_server.url, fake_kie.url)
    ev = wait_events(r, 1)[0]
    assert ev["status"] == "dead" and ev["jobId"] == "typo-1"
    assert 'type "teleport" is unknown' in ev["error"]
    d = dead(r)[0]
    assert d["jobId"] == "typo-1" and d["source"] == "parse" and d["raw"] == raw.decode()
    assert json.loads(r.rpop("kie:replies:t"))["jobId"] == "typo-1"
    assert fake_kie.stats()["creates_total"] == 0


def test_permanent_kie_error_dead_letter_and_event(redis_server, r, fake_kie, workers):
    r.lpush(f"{PREFIX}:queue", json.dumps({"v": 1, "id": "refused", "type": "raw",
            "replyTo": "kie:replies:x",
            "input": {"prompt": "[fake:400] nope", "imageUrl": "https://a.b/c.png"}}))
    workers(redis_server.url, fake_kie.url)
    ev = wait_events(r, 1)[0]
    assert ev["status"] == "dead" and ev["jobId"] == "refused" and ev["taskId"] is None
    assert "400" in ev["error"]
    d = dead(r)[0]
    assert d["source"] == "kie" and d["jobId"] == "refused" and "400" in d["reason"]
    assert r.hget(f"{PREFIX}:job:refused", "state") == "dead"
    assert r.llen("kie:replies:x") == 1


def test_failed_task_emits_failed_event_and_metadata(redis_server, r, fake_kie, workers,
                                                     tmpdir_path):
    r.lpush(f"{PREFIX}:queue", json.dumps({"v": 1, "id": "will-fail", "type": "raw",
            "input": {"prompt": "[fake:fail] x", "imageUrl": "https://a.b/c.png"}}))
    workers(redis_server.url, fake_kie.url)
    ev = wait_events(r, 1)[0]
    assert ev["status"] == "failed" and ev["taskId"] and ev["error"]
    rec = meta_record(tmpdir_path, ev["taskId"])
    assert rec["status"] == "failed" and rec["error"] == ev["error"]
    assert r.hget(f"{PREFIX}:job:will-fail", "state") == "failed"


def test_rate_limited_creates_wait_and_spend_no_attempt(redis_server, r, fake_kie, workers):
    # KIE's real limit is lower than the pool's setting: its 429s slow the pool down,
    # and a job with a single attempt still completes
    fake_kie.config(create_limit=3, create_window_s=1)
    for i in range(8):
        r.lpush(f"{PREFIX}:queue", job(f"rl-{i}", maxAttempts=1))
    workers(redis_server.url, fake_kie.url)
    evs = wait_events(r, 8, timeout=60)
    assert all(e["status"] == "completed" and e["attempts"] == 1 for e in evs)
    stats = fake_kie.stats()
    assert stats["creates_refused_429"] > 0
    assert stats["creates_total"] == 8 and set(stats["creates_by_job"].values()) == {1}
    assert r.llen(f"{PREFIX}:dead") == 0
    assert not r.hget(f"{PREFIX}:stats", "retries")  # a refusal is not the job's retry


def test_out_of_credits_pauses_the_pool_and_burns_nothing(redis_server, r, fake_kie, workers):
    fake_kie.config(credits=0)
    w = workers(redis_server.url, fake_kie.url, KIE_ACCOUNT_PAUSE_MS=400)
    for i in range(3):
        r.lpush(f"{PREFIX}:queue", job(f"broke-{i}"))
    wait_for(lambda: fake_kie.stats().get("creates_refused_402", 0) >= 1, 20,
             what="402 answers")
    wait_for(lambda: r.get(f"{PREFIX}:pause"), 10, what="the pause")
    pause = json.loads(r.get(f"{PREFIX}:pause"))
    assert pause["kind"] == "credits" and "insufficient credits" in pause["reason"]
    assert r.pttl(f"{PREFIX}:pause") == -1  # until credits are back, not for a while
    # the pause holds while the balance is 0: probes, no more createTask calls
    wait_for(lambda: "the balance is 0" in w.log(), 10, what="a credit probe")
    refused = fake_kie.stats()["creates_refused_402"]
    probes = w.log().count("the balance is 0")
    wait_for(lambda: w.log().count("the balance is 0") >= probes + 2, 10,
             what="two more credit probes")
    assert fake_kie.stats()["creates_refused_402"] == refused <= 4
    assert r.llen(f"{PREFIX}:dead") == 0  # account errors never burn the queue
    fake_kie.config(credits=100)  # the next probe lifts the pause by itself
    evs = wait_events(r, 3)
    assert sorted(e["jobId"] for e in evs) == ["broke-0", "broke-1", "broke-2"]
    assert {e["status"] for e in evs} == {"completed"}
    assert fake_kie.stats()["creates_by_job"] == {f"broke-{i}": 1 for i in range(3)}
    assert {r.hget(f"{PREFIX}:job:broke-{i}", "attempts") for i in range(3)} == {"1"}
    assert "credits are back" in w.log() and not r.exists(f"{PREFIX}:pause")


def test_uncertain_create_without_callbacks_is_not_retried_blindly(redis_server, r, fake_kie,
                                                                   workers):
    # HTTP 500 after KIE created the task, and no callback can reach the worker: the job
    # waits uncertain for KIE_UNCERTAIN_WINDOW_MS, then (policy dead) is dead-lettered as
    # "may have been created" — never created a second time
    fake_kie.config(fail_next_create_http500=1)  # the first one creates the task, then 500s
    r.lpush(f"{PREFIX}:queue", job("amb-1"))
    workers(redis_server.url, fake_kie.url, KIE_UNCERTAIN_POLICY="dead")
    wait_for(lambda: r.hget(f"{PREFIX}:job:amb-1", "state") == "uncertain", 20,
             what="the uncertain state")
    assert r.zscore(f"{PREFIX}:uncertain", "amb-1") is not None
    ev = wait_events(r, 1)[0]
    assert ev["status"] == "dead"
    d = dead(r)[0]
    assert d["reason"].startswith("uncertain") and d["source"] == "uncertain", d
    assert d["raw"] == job("amb-1")
    assert fake_kie.stats()["creates_by_job"].get("amb-1", 0) == 1
    assert r.zcard(f"{PREFIX}:uncertain") == 0


def test_duplicate_job_id_is_not_paid_twice(redis_server, r, fake_kie, workers):
    r.lpush(f"{PREFIX}:queue", job("same-id"))
    workers(redis_server.url, fake_kie.url)
    wait_events(r, 1)
    r.lpush(f"{PREFIX}:queue", job("same-id"))
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == 1, 20, what="duplicate dead letter")
    assert dead(r)[0]["source"] == "duplicate"
    assert fake_kie.stats()["creates_by_job"]["same-id"] == 1
    assert len(events(r)) == 1


def test_generated_id_survives_in_the_descriptor(redis_server, r, fake_kie, workers):
    r.lpush(f"{PREFIX}:queue", json.dumps({"v": 1, "type": "raw", "input": EXAMPLES["raw"]}))
    workers(redis_server.url, fake_kie.url)
    ev = wait_events(r, 1)[0]
    assert re.fullmatch(r"job_[0-9a-f]{24}", ev["jobId"]), ev
    assert fake_kie.stats()["creates_by_job"][ev["jobId"]] == 1


def test_dead_worker_jobs_are_recovered_and_counted(redis_server, r, fake_kie, workers):
    ghost_ok = job("ghost-ok")
    ghost_bad = job("ghost-killer")
    r.lpush(f"{PREFIX}:processing:ghost-1", ghost_ok)
    r.lpush(f"{PREFIX}:processing:ghost-1", ghost_bad)
    r.sadd(f"{PREFIX}:workers", "ghost-1")
    # ghost-killer already took down 2 workers; the limit is 2: the next recovery kills it
    r.hset(f"{PREFIX}:recoveries", hashlib.sha1(ghost_bad.encode()).hexdigest(), 2)
    w = workers(redis_server.url, fake_kie.url, KIE_MAX_RECOVERIES=2)
    by = {e["jobId"]: e for e in wait_events(r, 2)}
    assert by["ghost-ok"]["status"] == "completed"
    # dead-lettered through the one dead path: its event, its state, its record's TTL
    assert by["ghost-killer"]["status"] == "dead"
    assert "recovered from 3 dead workers" in by["ghost-killer"]["error"]
    assert r.hget(f"{PREFIX}:job:ghost-killer", "state") == "dead"
    assert r.ttl(f"{PREFIX}:job:ghost-killer") > 0
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == 1, 10, what="dead letter")
    d = dead(r)[0]
    assert d["jobId"] == "ghost-killer" and d["source"] == "recovery"
    assert "recovered from 3 dead workers" in d["reason"]
    assert fake_kie.stats()["creates_by_job"] == {"ghost-ok": 1}
    assert r.sismember(f"{PREFIX}:workers", "ghost-1") is False
    assert "worker consumer ghost-1 is dead" in w.log()


def test_leftover_in_a_live_consumers_list_is_redone(redis_server, r, fake_kie, workers):
    # What a Redis restart can do: BLMOVE ran, its reply was lost with the connection, and
    # the descriptor sits in a live consumer's list. Its heartbeat is fresh, so dead-worker
    # recovery will never touch it: only the consumer itself can.
    w = workers(redis_server.url, fake_kie.url, KIE_WORKER_ID="live",
                KIE_WORKER_CONCURRENCY=1)
    wait_for(lambda: r.exists(f"{PREFIX}:worker:live#0"), 10, what="consumer heartbeat")
    r.lpush(f"{PREFIX}:processing:live#0", job("stranded"))
    ev = wait_events(r, 1)[0]
    assert ev["jobId"] == "stranded" and ev["status"] == "completed"
    assert r.llen(f"{PREFIX}:processing:live#0") == 0
    assert fake_kie.stats()["creates_by_job"] == {"stranded": 1}
    assert "left in its processing list" in w.log()
    assert int(r.hget(f"{PREFIX}:stats", "recovered") or 0) == 0


def test_poll_timeout_fails_the_job(redis_server, r, fake_kie, workers):
    r.lpush(f"{PREFIX}:queue", json.dumps({"v": 1, "id": "slow", "type": "raw",
            "input": {"prompt": "[fake:slow=60000] x", "imageUrl": "https://a.b/c.png"}}))
    workers(redis_server.url, fake_kie.url, KIE_POLL_TIMEOUT_MS=700)
    ev = wait_events(r, 1)[0]
    assert ev["status"] == "failed" and "timed out" in ev["error"]


def test_callback_url_carries_the_job_id(redis_server, r, fake_kie, workers):
    r.lpush(f"{PREFIX}:queue", job("cb-job"))
    workers(redis_server.url, fake_kie.url,
            KIE_CALLBACK_URL="http://127.0.0.1:9/api/kie/callback?src=test")
    wait_events(r, 1)
    # the fake counts creates by the jobId query parameter of callBackUrl
    assert fake_kie.stats()["creates_by_job"] == {"cb-job": 1}


def test_drain_mode_exits_when_idle_and_json_logs(redis_server, r, fake_kie, workers):
    for i in range(5):
        r.lpush(f"{PREFIX}:queue", job(f"d-{i}"))
    w = workers(redis_server.url, fake_kie.url, args=["--drain", "--log-format", "json"])
    assert w.wait(60) == 0
    assert len(events(r)) == 5
    lines = [json.loads(l) for l in w.log().splitlines() if l.startswith("{")]
    assert lines and all({"ts", "level", "msg"} <= set(l) for l in lines)
    created = [l for l in lines if "created task" in l["msg"]]
    assert len(created) == 5 and all(l.get("job") and l.get("task") for l in created)
    assert TOKEN not in w.log()


def test_drain_exits_right_after_its_last_completion(redis_server, r, fake_kie, workers):
    """--drain wakes on its last completion instead of sleeping through fixed intervals:
    it exits well within a second (bench/bench_drain.py measures the release build: within
    100 ms). The old loop (two idle checks 200 ms apart, 1 s BLMOVE) took 0.4-1.5 s."""
    for i in range(3):
        r.lpush(f"{PREFIX}:queue", job(f"dt-{i}"))
    w = workers(redis_server.url, fake_kie.url, args=["--drain"])
    wait_events(r, 3)
    last = time.monotonic()
    assert w.wait(30) == 0
    took = time.monotonic() - last
    assert took < 1.0, f"drain exited {took:.3f} s after its last completion"
    assert len(events(r)) == 3 and fake_kie.stats()["creates_total"] == 3


def test_bad_configuration_stops_start_up_naming_the_variable(redis_server, fake_kie,
                                                             tmpdir_path):
    from conftest import BIN
    env = base_env(redis_server.url, fake_kie.url, tmpdir_path,
                   KIE_WORKER_CONCURRENCY="lots")
    p = subprocess.run([os.path.join(BIN, "kie-worker")], env=env, capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 2 and "KIE_WORKER_CONCURRENCY" in p.stderr
    env = base_env(redis_server.url, None, tmpdir_path)
    p = subprocess.run([os.path.join(BIN, "kie-worker")], env=env, capture_output=True,
                       text=True, timeout=20)
    assert p.returncode == 2 and "KIE_API_TOKEN" in p.stderr
