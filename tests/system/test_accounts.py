"""test_accounts.py — several KIE accounts at run time (issue 20, part 3; docs/protocol.md,
"Accounts"): each account's jobs go through its own scheduling structure, its own
createTask limit and its own token; a 402 pauses that account only (its jobs wait,
queued, no attempt spent, no dead letter) while the other runs at its full rate, and the
credit probe, asked with that account's token, resumes it when the balance is back.
Paid tasks are counted at the fake (per-account charged_by_job, creates_total)."""
import json
import os
import time

from conftest import TOKEN, wait_for

PREFIX = "kie"
EDIT = "google/nano-banana-edit"


def desc(jid, account=None):
    d = {"v": 1, "id": jid, "type": "raw",
         "input": {"prompt": "a coat", "model": EDIT,
                   "imageUrls": ["https://img.example.com/c.png"]}}
    if account:
        d["account"] = account
    return json.dumps(d)


def states(r, ids):
    return [r.hget(f"{PREFIX}:job:{j}", "state") for j in ids]


def test_two_accounts_one_answering_402_waits_while_the_other_runs_at_full_rate(
        redis_server, r, fake_kie, workers, tmpdir_path):
    # KIE's limit, short: 20 createTask per 2 s per account, at the fake and the worker
    fake_kie.config(task_ms=50, create_limit=20, create_window_s=2)
    # "byok": no credits (below one task's cost, 6): its createTask answers 402 (the probe
    # resumes an account whose balance is positive: docs/protocol.md, "Pauses")
    fake_kie._req("POST", "/_fake/account", {"name": "b", "token": "tok-b", "credits": 0})
    path = os.path.join(tmpdir_path, "accounts")
    with open(path, "w") as f:
        f.write(f"main {TOKEN}\nbyok tok-b\n")
    w = workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
                KIE_CREATE_LIMIT=20, KIE_CREATE_WINDOW_MS=2000, KIE_WORKER_CONCURRENCY=8,
                KIE_WORKER_POLLERS=4, KIE_CREDIT_PROBE_MS=300)
    byok = [f"b-{i}" for i in range(6)]
    main = [f"m-{i}" for i in range(40)]
    r.lpush(f"{PREFIX}:queue", *[desc(j, "byok") for j in byok])
    wait_for(lambda: r.exists(f"{PREFIX}:pause:acct:byok"), 15,
             what="the 402 pausing account byok")
    t0 = time.monotonic()
    r.lpush(f"{PREFIX}:queue", *[desc(j) for j in main])
    wait_for(lambda: all(s == "completed" for s in states(r, main)), 30,
             what="the main account's jobs")
    took = time.monotonic() - t0
    # 40 at 20 per 2 s: ~4 s (the first slots at once); the paused account costs nothing
    assert took < 7.0, took
    acc = fake_kie.stats()["accounts"]
    # every main task was created with main's token, none with byok's
    assert sorted(acc["default"]["charged_by_job"]) == sorted(main)
    assert acc["b"]["tasks_charged"] == 0
    # the paused account's jobs wait: queued, no attempt spent, no dead letter, and it
    # is that account's pause, not the pool's
    assert r.exists(f"{PREFIX}:pause:acct:byok") and not r.exists(f"{PREFIX}:pause")
    assert all(s == "queued" for s in states(r, byok)), states(r, byok)
    assert all(int(r.hget(f"{PREFIX}:job:{j}", "attempts") or 0) == 0 for j in byok)
    assert r.llen(f"{PREFIX}:dead") == 0
    refused = acc["b"]["creates_refused_402"]
    assert 1 <= refused <= 8  # one per runner at most before the pause is seen
    # the fake's balance comes back: the probe (with byok's token) resumes the account
    fake_kie._req("POST", "/_fake/account", {"name": "b", "credits": 1000})
    wait_for(lambda: all(s == "completed" for s in states(r, byok)), 20,
             what="the byok jobs after the refill")
    acc = fake_kie.stats()["accounts"]
    assert sorted(acc["b"]["charged_by_job"]) == sorted(byok)
    assert acc["b"]["credit_requests"] >= 1
    assert sorted(acc["default"]["charged_by_job"]) == sorted(main)
    assert not r.exists(f"{PREFIX}:pause:acct:byok")
    # the spend is counted under each task's own account
    from test_spend_wiring import utc_day
    day = r.hgetall(f"{PREFIX}:spend:{utc_day()}")
    assert float(day.get("account:byok", 0)) == 6 * len(byok), day
    assert float(day.get("account:main", 0)) == 6 * len(main), day
    assert "tok-b" not in w.log()


def test_the_page_reads_the_first_accounts_limiter_with_an_accounts_file(
        redis_server, r, fake_kie, workers, tmpdir_path):
    """With KIE_ACCOUNTS_FILE (no KIE_API_TOKEN), the page's stats name the first account's
    limiter and read its log: the createTask calls of its jobs are there."""
    import hashlib
    import json as _json
    import urllib.request
    from conftest import free_port, wait_for as _wait
    path = os.path.join(tmpdir_path, "accounts")
    with open(path, "w") as f:
        f.write(f"main {TOKEN}\n")
    port = free_port()
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
            KIE_HTTP_ADDR=f"127.0.0.1:{port}", KIE_ADMIN_PAGE="on")
    r.lpush(f"{PREFIX}:queue", *[desc(f"p-{i}") for i in range(3)])
    _wait(lambda: states(r, [f"p-{i}" for i in range(3)]) == ["completed"] * 3, 30,
          what="three jobs")

    def stats():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/api/stats") as resp:
                return _json.loads(resp.read())
        except OSError:
            return None
    _wait(lambda: stats() is not None, 20, what="the page")
    lim = stats()["limiter"]
    assert lim["account"] == hashlib.sha256(TOKEN.encode()).hexdigest()[:16], lim
    assert lim["create"]["logEntries"] == 3, lim


def test_kie_pause_account_pauses_that_account_alone(redis_server, r, fake_kie, workers,
                                                     tmpdir_path):
    """`kie pause --account byok`: byok's jobs wait (queued, no attempt, nothing at the
    fake) while main's complete; the pool's own pause is not set; `kie resume --account
    byok` lets them go, each created once with byok's token; both are in the audit list."""
    from conftest import base_env, run_kie
    fake_kie._req("POST", "/_fake/account", {"name": "b", "token": "tok-b", "credits": 1000})
    path = os.path.join(tmpdir_path, "accounts")
    with open(path, "w") as f:
        f.write(f"main {TOKEN}\nbyok tok-b\n")
    env = base_env(redis_server.url)
    c = run_kie(["pause", "--account", "byok", "--reason", "t", "--json"], env)
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout)["paused"] is True
    assert r.exists(f"{PREFIX}:pause:acct:byok") and not r.exists(f"{PREFIX}:pause")
    assert run_kie(["pause", "--account", ".bad"], env).returncode == 2
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
            KIE_WORKER_CONCURRENCY=4)
    byok = [f"pb-{i}" for i in range(3)]
    main = [f"pm-{i}" for i in range(5)]
    r.lpush(f"{PREFIX}:queue", *[desc(j, "byok") for j in byok])
    r.lpush(f"{PREFIX}:queue", *[desc(j) for j in main])
    wait_for(lambda: states(r, main) == ["completed"] * 5, 30, what="main's jobs")
    assert all(s in ("queued", None) for s in states(r, byok)), states(r, byok)
    assert fake_kie.stats()["accounts"].get("b", {}).get("creates_total", 0) == 0
    c = run_kie(["resume", "--account", "byok"], env)
    assert c.returncode == 0 and "resumed account byok" in c.stdout, (c.stdout, c.stderr)
    wait_for(lambda: states(r, byok) == ["completed"] * 3, 30, what="byok's jobs")
    b = fake_kie.stats()["accounts"]["b"]
    assert b["creates_total"] == 3 and set(b["charged_by_job"]) == set(byok), b
    acts = [json.loads(x) for x in r.lrange(f"{PREFIX}:audit", 0, -1)]
    assert [(a["action"], a.get("account")) for a in acts][:2] == [
        ("resume", "byok"), ("pause", "byok")], acts


def test_a_401_pauses_that_account_alone_and_cancel_and_position_find_its_jobs(
        redis_server, r, fake_kie, workers, tmpdir_path):
    """An account whose token KIE refuses (401): its account alone pauses (kind account),
    its jobs wait queued in its own structure, where `kie job show` finds their place and
    `kie job cancel` ends one (job.cancelled, never at KIE); the other account's jobs run."""
    from conftest import base_env, run_kie
    path = os.path.join(tmpdir_path, "accounts")
    with open(path, "w") as f:
        f.write(f"main {TOKEN}\nrevoked tok-unknown-to-kie\n")
    env = base_env(redis_server.url)
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
            KIE_WORKER_CONCURRENCY=4)
    rv = [f"rv-{i}" for i in range(4)]
    main = [f"mn-{i}" for i in range(5)]
    r.lpush(f"{PREFIX}:queue", *[desc(j, "revoked") for j in rv])
    wait_for(lambda: r.exists(f"{PREFIX}:pause:acct:revoked"), 30, what="the account pause")
    p = json.loads(r.get(f"{PREFIX}:pause:acct:revoked"))
    assert p["kind"] == "account" and not r.exists(f"{PREFIX}:pause"), p
    r.lpush(f"{PREFIX}:queue", *[desc(j) for j in main])
    wait_for(lambda: states(r, main) == ["completed"] * 5, 30, what="main's jobs")
    wait_for(lambda: r.zcard(f"{PREFIX}:sched:revoked:ready") == 4, 20,
             what="revoked's jobs back in its structure")
    assert states(r, rv) == ["queued"] * 4 and r.llen(f"{PREFIX}:dead") == 0
    c = run_kie(["job", "show", "rv-3", "--json"], env)
    assert c.returncode == 0, c.stderr
    show = json.loads(c.stdout)
    assert show["schedule"]["state"] == "queued" and show["schedule"]["position"] is not None, show
    c = run_kie(["job", "cancel", "rv-2"], env)
    assert c.returncode == 0, (c.stdout, c.stderr)
    assert r.hget(f"{PREFIX}:job:rv-2", "state") == "cancelled"
    assert r.zcard(f"{PREFIX}:sched:revoked:ready") == 3
    evs = [json.loads(e) for e in r.lrange(f"{PREFIX}:results", 0, -1)]
    assert [e["event"] for e in evs if e["jobId"] == "rv-2"] == ["job.cancelled"]
    assert not any(j.startswith("rv-") for j in fake_kie.stats()["creates_by_job"])
