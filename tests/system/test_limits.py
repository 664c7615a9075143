"""The pool as one careful client of one KIE account: the shared createTask and recordInfo
limits (limiter.h), KIE's own refusals slowing the whole pool, account pauses, operator
pause/resume. Counted at the fake KIE, which enforces kie-api.md's limits itself."""
import json
import os
import time

from conftest import BIN, TOKEN, wait_for, base_env, run_kie
from test_worker import PREFIX, job, events, wait_events

FIGURES = os.path.join(os.path.dirname(BIN.rstrip("/")), "figures")


def save_figure(name, data):
    os.makedirs(FIGURES, exist_ok=True)
    with open(os.path.join(FIGURES, name + ".json"), "w") as f:
        json.dump(data, f, indent=1)
    print(f"\n{name}: {json.dumps(data)}")


def push(r, jobs):
    pipe = r.pipeline()
    for j in jobs:
        pipe.lpush(f"{PREFIX}:queue", j)
    pipe.execute()


def test_create_limit_shared_by_three_workers_uses_the_allowance(redis_server, r, fake_kie,
                                                                 workers):
    """3 workers x 32 runners, a backlog of 260 jobs, KIE's 20 createTask per 10 s: no 429,
    every job completed once, and at least 95% of the allowance used in every window."""
    limit, window_s, n = 20, 10, 260
    fake_kie.config(create_limit=limit, create_window_s=window_s, task_ms=200)
    push(r, [job(f"lim-{i}", maxAttempts=1) for i in range(n)])
    opts = dict(KIE_WORKER_CONCURRENCY=32, KIE_WORKER_POLLERS=2, KIE_LOG_LEVEL="warn",
                KIE_CREATE_LIMIT=limit, KIE_CREATE_WINDOW_MS=window_s * 1000,
                KIE_POLL_RATE=10, KIE_LIMIT_MARGIN_MS=250)
    for _ in range(3):
        workers(redis_server.url, fake_kie.url, **opts)
    evs = wait_events(r, n, timeout=n / limit * (window_s + 0.25) + 90)
    assert sorted(e["jobId"] for e in evs) == sorted(f"lim-{i}" for i in range(n))
    assert all(e["status"] == "completed" and e["attempts"] == 1 for e in evs)
    stats = fake_kie.stats(brief=False)
    assert stats["creates_refused_429"] == 0
    assert stats["creates_total"] == n and set(stats["creates_by_job"].values()) == {1}
    assert stats["max_creates_in_any_window"] <= limit
    times = sorted(stats["create_times_ms"])
    t0, w = times[0], window_s * 1000
    counts = []
    k = 0
    while t0 + (k + 1) * w <= times[-1]:  # every full window of the run
        lo, hi = t0 + k * w, t0 + (k + 1) * w
        counts.append(sum(1 for t in times if lo <= t < hi))
        k += 1
    assert len(counts) >= 10
    used = min(counts) / limit
    overall = (n - limit) / ((times[-1] - t0) / w * limit)
    save_figure("limiter-create", {"jobs": n, "workers": 3, "runners": 96,
                                   "full_windows": len(counts), "min_per_window": min(counts),
                                   "min_share": used, "overall_share": round(overall, 4),
                                   "refused_429": stats["creates_refused_429"],
                                   "seconds": (times[-1] - t0) / 1000})
    assert used >= 0.95, counts


def test_record_info_rate_is_pool_wide(redis_server, r, fake_kie, workers):
    """300 tasks in flight, 3 workers x 3 pollers, KIE's 10 recordInfo per second."""
    n = 300
    fake_kie.config(query_limit=10, query_window_s=1, task_ms=1500)
    push(r, [job(f"q-{i}") for i in range(n)])
    opts = dict(KIE_WORKER_CONCURRENCY=16, KIE_WORKER_POLLERS=3, KIE_LOG_LEVEL="warn",
                KIE_POLL_RATE=10, KIE_LIMIT_MARGIN_MS=250)
    for _ in range(3):
        workers(redis_server.url, fake_kie.url, **opts)
    wait_for(lambda: fake_kie.stats()["creates_total"] == n, 60, what="every task created")
    evs = wait_events(r, n, timeout=150)
    assert all(e["status"] == "completed" for e in evs)
    stats = fake_kie.stats(brief=False)
    assert stats["record_info_refused_429"] == 0
    assert stats["max_queries_in_any_second"] <= 10
    q = sorted(stats["record_info_times_ms"])
    rate = (len(q) - 10) / ((q[-1] - q[0]) / 1000)
    save_figure("limiter-query", {"tasks": n, "pollers": 9, "queries": len(q),
                                  "max_in_any_second": stats["max_queries_in_any_second"],
                                  "mean_per_second": round(rate, 2)})
    assert rate >= 7, rate  # the limit is used, not just respected


def test_burst_of_429_slows_the_whole_pool_and_spends_no_attempt(redis_server, r, fake_kie,
                                                                workers):
    """Another client of the account (or a lower real limit) makes KIE refuse for 2.5 s:
    the pool backs off as one, and jobs with a single attempt still complete."""
    n, runners = 24, 2 * 8
    fake_kie.config(refuse_creates_until_ms=int(time.time() * 1000) + 2500, refuse_code=429)
    push(r, [job(f"b-{i}", maxAttempts=1) for i in range(n)])
    ws = [workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=8,
                  KIE_RATE_BACKOFF_MS=400) for _ in range(2)]
    evs = wait_events(r, n, timeout=60)
    assert all(e["status"] == "completed" and e["attempts"] == 1 for e in evs)
    assert r.llen(f"{PREFIX}:dead") == 0
    stats = fake_kie.stats(brief=False)
    assert stats["creates_total"] == n and set(stats["creates_by_job"].values()) == {1}
    refused = sorted(stats["create_refused_times_ms"])
    # storms: refusals less than 150 ms apart; between storms the pool was quiet for the
    # backoff (400, 800, 1600 ms), and each storm is at most the pool's runners
    storms = [[refused[0]]]
    for t in refused[1:]:
        if t - storms[-1][-1] < 150:
            storms[-1].append(t)
        else:
            storms.append([t])
    save_figure("limiter-429-burst", {"refused": len(refused), "storms": len(storms),
                                      "largest_storm": max(len(s) for s in storms)})
    assert len(refused) <= 5 * runners, len(refused)
    assert len(storms) <= 6 and max(len(s) for s in storms) <= runners, storms
    for a, b in zip(storms, storms[1:]):
        assert b[0] - a[-1] >= 300, (a, b)
    logs = "".join(w.log() for w in ws)
    assert "the pool waits" in logs
    penalties = r.hget(f"kie:account:{{{account_id()}}}:create:state", "penalties")
    assert penalties and 2 <= int(penalties) <= len(storms)


def account_id():
    import hashlib
    return hashlib.sha256(TOKEN.encode()).hexdigest()[:16]


def test_maintenance_455_waits_and_limiter_keys_hold_no_token(redis_server, r, fake_kie,
                                                             workers):
    fake_kie.config(refuse_creates_until_ms=int(time.time() * 1000) + 1500, refuse_code=455)
    push(r, [job(f"m-{i}", maxAttempts=1) for i in range(6)])
    workers(redis_server.url, fake_kie.url, KIE_RATE_BACKOFF_MS=300)
    evs = wait_events(r, 6, timeout=60)
    assert all(e["status"] == "completed" and e["attempts"] == 1 for e in evs)
    assert fake_kie.stats()["creates_refused_455"] > 0
    keys = r.keys("kie:account:*")
    assert keys and all(TOKEN not in k for k in keys)
    assert f"kie:account:{{{account_id()}}}:create" in keys


def test_operator_pause_stops_new_jobs_and_polling_goes_on(redis_server, r, fake_kie, workers,
                                                           tmpdir_path):
    fake_kie.config(task_ms=1500)
    w = workers(redis_server.url, fake_kie.url)
    env = base_env(redis_server.url)
    r.lpush(f"{PREFIX}:queue", job("before-pause"))
    wait_for(lambda: fake_kie.stats()["creates_total"] == 1, 20, what="the first task")
    p = run_kie(["pause", "--reason", "deploying the new prompt set"], env)
    assert p.returncode == 0, p.stderr
    assert "paused until `kie resume`" in p.stdout
    pause = json.loads(r.get(f"{PREFIX}:pause"))
    assert pause["kind"] == "operator" and pause["reason"] == "deploying the new prompt set"
    r.lpush(f"{PREFIX}:queue", job("during-pause"))
    # the task that exists is still collected ...
    ev = wait_events(r, 1, timeout=30)[0]
    assert ev["jobId"] == "before-pause" and ev["status"] == "completed"
    # ... while the new job waits in the queue
    time.sleep(1.0)
    assert r.llen(f"{PREFIX}:queue") == 1 and fake_kie.stats()["creates_total"] == 1
    p = run_kie(["resume"], env)
    assert p.returncode == 0 and "deploying the new prompt set" in p.stdout, p.stdout
    evs = wait_events(r, 2, timeout=30)
    assert {e["jobId"] for e in evs} == {"before-pause", "during-pause"}
    p = run_kie(["resume"], env)
    assert p.returncode == 0 and "not paused" in p.stdout
    p = run_kie(["pause", "--for", "nope"], env)
    assert p.returncode == 2 and "--for" in p.stderr
    p = run_kie(["pause"], base_env("redis://127.0.0.1:1/0"))
    assert p.returncode == 8, (p.returncode, p.stderr)
    assert w.proc.poll() is None
