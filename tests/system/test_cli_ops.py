"""kie's operator commands (stats, job show, dead list|show|retry|purge, pause, resume)
against a live pool: real redis-server, real kie-worker processes, the KIE fake."""
import json
import threading
import time

from conftest import base_env, free_port, run_kie, wait_for


def desc(job_id, type_="raw", max_attempts=1, prompt="a red coat"):
    d = {"v": 1, "id": job_id, "type": type_, "maxAttempts": max_attempts}
    if type_ == "raw":
        d["input"] = {"prompt": prompt, "imageUrl": "https://example.com/a.png"}
    else:
        d["input"] = {"imageUrl": "https://example.com/a.png"}
    return json.dumps(d)


def kie_json(args, env, code=0):
    p = run_kie(args + ["--json"], env)
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert p.stdout.count("\n") <= 1, p.stdout  # one compact object
    return json.loads(p.stdout) if p.stdout.strip() else None


def kie_jsonl(args, env):
    """A list command's --json: JSON Lines, one entry a line; its counts on stderr."""
    p = run_kie(args + ["--json"], env)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    return [json.loads(ln) for ln in p.stdout.splitlines()], p.stderr


def dead_jobs(r):
    out = []
    for e in r.lrange("kie:dead", 0, -1):
        e = json.loads(e)
        jid = e.get("jobId")
        if not jid and "raw" in e:
            try:
                jid = json.loads(e["raw"]).get("id")
            except ValueError:
                jid = None
        out.append(jid)
    return out


def completed_events(r):
    evs = [json.loads(e) for e in r.lrange("kie:results", 0, -1)]
    return [e for e in evs if e["event"] == "job.completed"]


def make_dead_by_refused_connections(workers, redis_server, tmpdir_path, r, ids, type_="raw"):
    """Jobs that died because KIE could not be reached (attempts_exhausted): a worker
    pointed at a closed port, maxAttempts 1."""
    w = workers(redis_server.url, f"http://127.0.0.1:{free_port()}")
    before = r.llen("kie:dead")
    for j in ids:
        r.lpush("kie:queue", desc(j, type_))
    wait_for(lambda: r.llen("kie:dead") == before + len(ids), 30, what="jobs dead")
    assert w.stop() == 0


def test_dead_retry_of_a_filtered_set_under_concurrent_workers(
        workers, redis_server, r, fake_kie, tmpdir_path):
    raw_ids = [f"raw-{i}" for i in range(30)]
    pose_ids = [f"pose-{i}" for i in range(8)]
    make_dead_by_refused_connections(workers, redis_server, tmpdir_path, r, raw_ids)
    make_dead_by_refused_connections(workers, redis_server, tmpdir_path, r, pose_ids,
                                     "model_pose")
    r.lpush("kie:queue", '{"v":1,"id":"bad-1","type":"nope","input":{}}')
    env = base_env(redis_server.url)

    # three workers, busy with fresh jobs while the retry runs
    pool = [workers(redis_server.url, fake_kie.url) for _ in range(3)]
    wait_for(lambda: "bad-1" in dead_jobs(r), 20, what="the invalid job dead")
    fresh = [f"fresh-{i}" for i in range(20)]
    for j in fresh:
        r.lpush("kie:queue", desc(j, prompt="fresh"))

    # list with filters
    lst, counts = kie_jsonl(["dead", "list", "--reason", "attempts_exhausted", "--type", "raw",
                             "--limit", "100"], env)
    assert counts.startswith("30 shown of 30 matching"), counts
    assert {e["jobId"] for e in lst} == set(raw_ids)
    assert all(e["reasonClass"] == "attempts_exhausted" and e["retryable"] for e in lst)
    inv, _ = kie_jsonl(["dead", "list", "--reason", "invalid"], env)
    assert [e["jobId"] for e in inv] == ["bad-1"]

    # --dry-run changes nothing
    snap = (r.lrange("kie:dead", 0, -1), {j: r.hgetall(f"kie:job:{j}") for j in raw_ids})
    dry = kie_json(["dead", "retry", "--type", "raw", "--reason", "attempts_exhausted",
                    "--dry-run"], env)
    assert dry["dryRun"] is True and dry["selected"] == 30 and dry["done"] == 30
    assert {x["outcome"] for x in dry["results"]} == {"would_retry"}
    assert (r.lrange("kie:dead", 0, -1),
            {j: r.hgetall(f"kie:job:{j}") for j in raw_ids}) == snap

    # sample queue and dead letters atomically (MULTI) while the retry runs
    overlaps, stop = [], threading.Event()

    def sampler():
        while not stop.is_set():
            p = r.pipeline(transaction=True)
            p.lrange("kie:queue", 0, -1)
            p.lrange("kie:dead", 0, -1)
            q, d = p.execute()
            qids = {json.loads(x).get("id") for x in q}
            dids = set()
            for e in d:
                e = json.loads(e)
                if e.get("jobId"):
                    dids.add(e["jobId"])
            overlaps.extend(qids & dids)
    t = threading.Thread(target=sampler)
    t.start()
    res = kie_json(["dead", "retry", "--type", "raw", "--reason", "attempts_exhausted"], env)
    stop.set()
    t.join()
    assert res["selected"] == 30 and res["done"] == 30 and res["refused"] == 0, res
    assert overlaps == []

    done = lambda: {e["jobId"] for e in completed_events(r)} >= set(raw_ids) | set(fresh)
    wait_for(done, 60, what="retried and fresh jobs completed")
    # every retried job completed exactly once, with one task at KIE
    evs = completed_events(r)
    for j in raw_ids:
        assert sum(1 for e in evs if e["jobId"] == j) == 1, j
        assert r.hget(f"kie:job:{j}", "state") == "completed"
    creates = fake_kie.stats()["creates_by_job"]
    assert all(creates.get(j) == 1 for j in raw_ids), {j: creates.get(j) for j in raw_ids}
    # what was not selected stays dead; nothing retried is left there
    left = dead_jobs(r)
    assert sorted(j for j in left if j and j.startswith("pose-")) == sorted(pose_ids)
    assert "bad-1" in left and not set(raw_ids) & set(left)
    assert int(r.hget("kie:stats", "dead_retried")) == 30
    for w in pool:
        assert w.stop() == 0


def test_retry_never_pays_twice_duplicates_tasks_uncertain(
        workers, redis_server, r, fake_kie, tmpdir_path):
    env = base_env(redis_server.url)
    w = workers(redis_server.url, fake_kie.url)
    r.lpush("kie:queue", desc("done-1"))
    wait_for(lambda: r.hget("kie:job:done-1", "state") == "completed", 20, what="done-1")
    # the same descriptor again: a duplicate dead letter
    r.lpush("kie:queue", desc("done-1"))
    wait_for(lambda: "done-1" in dead_jobs(r), 20, what="duplicate dead")
    assert w.stop() == 0

    p = run_kie(["dead", "retry", "done-1"], env)
    assert p.returncode == 10, (p.stdout, p.stderr)
    assert "refused" in p.stdout and "pay twice" in p.stdout

    # an entry that names a job which has a task (e.g. written by hand): refused by the
    # script, which reads the job hash
    task = r.hget("kie:job:done-1", "taskId")
    entry = json.dumps({"v": 1, "jobId": "done-1", "reason": "KIE refused the job: x",
                        "source": "kie", "raw": desc("done-1"), "attempts": 1,
                        "workerId": "t#0", "failedAt": "2026-01-01T00:00:00.000Z"})
    r.lpush("kie:dead", entry)
    out = kie_json(["dead", "retry", "done-1"], env, code=10)
    assert out["results"][0]["outcome"] == "refused"
    assert task in out["results"][0]["why"]

    # uncertain: a task may exist; refused unless --allow-uncertain
    r.hset("kie:job:unc-1", mapping={"state": "dead", "attempts": "1", "error": "may"})
    r.lpush("kie:dead", json.dumps({
        "v": 1, "jobId": "unc-1", "reason": "may have been created", "source": "uncertain",
        "raw": desc("unc-1"), "attempts": 1, "workerId": "t#0",
        "failedAt": "2026-01-01T00:00:00.000Z"}))
    out = kie_json(["dead", "retry", "unc-1"], env, code=10)
    assert "--allow-uncertain" in out["results"][0]["why"]
    assert r.llen("kie:queue") == 0
    out = kie_json(["dead", "retry", "unc-1", "--allow-uncertain"], env)
    assert out["results"][0]["outcome"] == "retried"
    assert r.lrange("kie:queue", 0, -1) == [desc("unc-1")]
    h = r.hgetall("kie:job:unc-1")
    assert h["state"] == "queued" and h["attempts"] == "0" and "error" not in h
    assert r.ttl("kie:job:unc-1") == -1
    assert "unc-1" not in dead_jobs(r)
    # retried again: gone (nothing in the dead letters), exit 9
    p = run_kie(["dead", "retry", "unc-1"], env)
    assert p.returncode == 9, (p.stdout, p.stderr)

    # the job completed once and only once at the fake; its retried copy runs too
    w2 = workers(redis_server.url, fake_kie.url)
    wait_for(lambda: r.hget("kie:job:unc-1", "state") == "completed", 20, what="unc-1")
    creates = fake_kie.stats()["creates_by_job"]
    assert creates.get("done-1") == 1 and creates.get("unc-1") == 1
    assert w2.stop() == 0

    # oversized: only a head is kept, not retryable
    r.lpush("kie:dead", json.dumps({
        "v": 1, "jobId": None, "reason": "descriptor is 99999 bytes", "source": "parse",
        "size": 99999, "sha256": "ab" * 32, "rawHead": "{\"v\":1", "attempts": 0,
        "workerId": "t#0", "failedAt": "2026-01-01T00:00:00.000Z"}))
    out = kie_json(["dead", "retry", "--reason", "oversized"], env, code=10)
    assert out["refused"] == 1 and "first 4 KiB" in out["results"][0]["why"]


def test_stats_job_show_dead_show_purge_pause(workers, redis_server, r, fake_kie,
                                              tmpdir_path):
    env = base_env(redis_server.url, fake_kie.url)
    w = workers(redis_server.url, fake_kie.url)
    r.lpush("kie:queue", desc("s-1"))
    wait_for(lambda: r.hget("kie:job:s-1", "state") == "completed", 20, what="s-1")

    # pause: jobs stay queued, stats says why
    p = run_kie(["pause", "--reason", "KIE incident #42"], env)
    assert p.returncode == 0, p.stderr
    for i in range(3):
        r.lpush("kie:queue", desc(f"q-{i}"))
    time.sleep(0.5)  # runners look at the pause before each claim
    s = kie_json(["stats"], env)
    # routed into the scheduling structure: waiting all the same
    assert s["depths"]["queue"] == 3 and s["schedule"]["queuedByPriority"] == {"5": 3}
    assert s["pause"]["paused"] is True and s["pause"]["kind"] == "operator"
    assert s["pause"]["reason"] == "KIE incident #42" and s["pause"]["remainingMs"] == -1
    # 4 runners, the callback consumer and the router
    assert len(s["workers"]) == 6 and all(x["alive"] for x in s["workers"])
    assert s["counters"]["completed"] >= 1 and s["rates"]["completedPerMin"] > 0
    assert s["limiter"]["account"] and "create" in s["limiter"]
    human = run_kie(["stats"], env)
    assert human.returncode == 0 and "PAUSED (operator)" in human.stdout
    assert "queue 3" in human.stdout

    # job show
    j = kie_json(["job", "show", "s-1"], env)
    assert j["state"] == "completed"
    # a finished job's task hash went with its finalization (the record is in the store,
    # docs/protocol.md section 2): the job hash names the task and when it finished
    assert j["job"]["taskId"] and j["job"]["finishedAt"] and j["task"] is None
    assert [e["event"] for e in j["events"]] == ["job.completed"]
    q = kie_json(["job", "show", "q-0"], env)  # routed: queued in the structure
    assert q["state"] == "queued" and q["status"] == "queued"
    assert q["schedule"]["position"] in (0, 1, 2) and q["schedule"]["eta"] > 0
    p = run_kie(["job", "show", "no-such"], env)
    assert p.returncode == 9 and "unknown job no-such" in p.stderr

    p = run_kie(["resume"], env)
    assert p.returncode == 0
    wait_for(lambda: all(r.hget(f"kie:job:q-{i}", "state") == "completed" for i in range(3)),
             20, what="queued jobs after resume")

    # dead show / purge with --dry-run, by job id and by @ref; a control byte in the
    # reason never reaches the terminal
    for i in range(3):
        r.lpush("kie:dead", json.dumps({
            "v": 1, "jobId": f"d-{i}", "reason": f"KIE refused the job: bad\x1b[31m {i}",
            "source": "kie", "raw": desc(f"d-{i}"), "attempts": 1, "workerId": "t#0",
            "failedAt": "2026-01-01T00:00:00.000Z"}))
    show = kie_json(["dead", "show", "d-1"], env)
    assert show["jobId"] == "d-1" and show["raw"] == desc("d-1")
    assert show["reasonClass"] == "kie_rejected"
    human = run_kie(["dead", "show", "d-1"], env)
    assert human.returncode == 0 and "\x1b" not in human.stdout and "bad?[31m" in human.stdout
    p = run_kie(["dead", "show", "nope"], env)
    assert p.returncode == 9
    before = r.lrange("kie:dead", 0, -1)
    out = kie_json(["dead", "purge", "--all", "--dry-run"], env)
    assert out["selected"] == 3 and out["done"] == 3
    assert r.lrange("kie:dead", 0, -1) == before
    recent, counts = kie_jsonl(["dead", "list", "--older-than", "3650d"], env)
    assert recent == [] and counts.startswith("0 shown of 0 matching (of 3 dead letters)")
    ref = show["ref"]
    out = kie_json(["dead", "purge", "@" + ref[:10]], env)
    assert out["done"] == 1 and out["results"][0]["jobId"] == "d-1"
    assert "d-1" not in dead_jobs(r) and r.llen("kie:dead") == 2
    out = kie_json(["dead", "purge", "--older-than", "1h"], env)
    assert out["done"] == 2 and r.llen("kie:dead") == 0
    assert int(r.hget("kie:stats", "dead_purged")) == 3

    # usage errors: a purge needs a selection; bad filters name themselves
    p = run_kie(["dead", "purge"], env)
    assert p.returncode == 2 and "needs a job id" in p.stderr
    p = run_kie(["dead", "list", "--reason", "sad"], env)
    assert p.returncode == 2 and "--reason must be one of" in p.stderr
    p = run_kie(["dead", "list", "--older-than", "soon"], env)
    assert p.returncode == 2
    assert w.stop() == 0


def test_redis_unreachable_is_exit_8_and_help_lists_everything():
    env = base_env(f"redis://127.0.0.1:{free_port()}")
    for args in (["stats"], ["job", "show", "x"], ["dead", "list"]):
        p = run_kie(args, env, timeout=30)
        assert p.returncode == 8, (args, p.returncode, p.stderr)
    top = run_kie(["--help"], env).stdout
    for cmd in ("stats", "job show", "dead list|show|retry|purge", "pause", "resume"):
        assert cmd in top
    assert "9 not found" in top and "10 refused" in top
    dead = run_kie(["dead", "--help"], env)
    assert dead.returncode == 0
    for opt in ("--type", "--reason", "--older-than", "--dry-run", "--limit", "--offset",
                "--all", "--allow-uncertain", "--json", "attempts_exhausted"):
        assert opt in dead.stdout, opt
    assert "--json" in run_kie(["stats", "--help"], env).stdout
    assert "kie job show" in run_kie(["job", "--help"], env).stdout
