"""test_spend_wiring.py — issue 20's budgets and spend wired into the running pipeline
(docs/protocol.md, "Credits, spend and budgets"): every task's cost settled and counted
by type, group and account as the fake charged it; a group budget parks its jobs
over_budget and a raise lets them go; a pool budget across 3 workers x 16 runners holds
within the stated bound; a descriptor naming an unknown account is dead-lettered before
any KIE call; a kill -9 between reservation and settlement leaks no reservation.
Paid tasks are counted at the fake (creates_by_job, charged_*), not in log lines."""
import json
import re

from conftest import base_env, run_kie, wait_for

PREFIX = "kie"
EDIT, BANANA = "google/nano-banana-edit", "google/nano-banana"


def utc_day():
    import datetime
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")


def desc(jid, model=EDIT, group=None, account=None, type_="raw"):
    d = {"v": 1, "id": jid}
    if type_ == "raw":
        d["type"] = "raw"
        d["input"] = {"prompt": "a coat", "model": model}
        if model == EDIT:
            d["input"]["imageUrls"] = ["https://img.example.com/c.png"]
    else:
        d["type"] = "generate_image"
        d["input"] = {"description": "a red coat",
                      "imageUrls": ["https://img.example.com/c.png"]}
    if group:
        d["group"] = group
    if account:
        d["account"] = account
    return json.dumps(d)


def push(r, *descs):
    r.lpush(f"{PREFIX}:queue", *descs)


def states(r, ids):
    return [r.hget(f"{PREFIX}:job:{j}", "state") for j in ids]


def created(fake, ids):
    by = fake.stats().get("creates_by_job", {})
    return sum(by.get(j, 0) for j in ids)


def budget_day(r):
    d = r.hgetall(f"{PREFIX}:budget:{utc_day()}")
    return {k: float(v) for k, v in d.items()}


def test_spend_by_type_group_and_account_equals_what_the_fake_charged(
        redis_server, r, fake_kie, workers):
    fake_kie.config(task_ms=50)
    w = workers(redis_server.url, fake_kie.url)
    ids = []
    for i in range(4):
        ids.append(f"sp-e{i}")
        push(r, desc(ids[-1], EDIT, group="acme"))
    for i in range(3):
        ids.append(f"sp-b{i}")
        push(r, desc(ids[-1], BANANA, group="beta"))
    ids.append("sp-g0")
    push(r, desc("sp-g0", group="acme", type_="generate_image"))
    wait_for(lambda: all(s == "completed" for s in states(r, ids)), 30,
             what="every job to complete")
    st = fake_kie.stats()["accounts"]["default"]
    c = run_kie(["spend", "--json", "--days", "1"], base_env(redis_server.url))
    assert c.returncode == 0, c.stderr
    day = json.loads(c.stdout)["days"][0]
    assert day["total"] == st["charged_total"] == 4 * 6 + 3 * 4 + 6, (day, st)
    assert day["tasks"] == 8
    assert day["types"] == {"raw": 4 * 6 + 3 * 4, "generate_image": 6}, day
    assert day["groups"] == {"acme": 5 * 6, "beta": 3 * 4}, day
    assert day["accounts"] == {"default": st["charged_total"]}, day
    # nothing stays reserved; the metric says the same for this worker
    assert budget_day(r).get("reserved", 0) == 0
    assert r.zcard(f"{PREFIX}:budget:open") == 0
    w.stop()


def test_group_budget_parks_its_jobs_over_budget_and_a_raise_releases_them(
        redis_server, r, fake_kie, workers):
    """10 tasks' worth for group g, 50 of its jobs queued: 10 created (the estimate is
    exact here: the bound is 0), 40 wait over_budget with no attempt spent; group h is not
    held; kie budget set g to 15 tasks' worth lets 5 more go."""
    fake_kie.config(task_ms=50)
    env = base_env(redis_server.url)
    assert run_kie(["budget", "set", "g", "60"], env).returncode == 0
    w = workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=16,
                KIE_MODEL_CREDITS=f"{EDIT}=6")
    g = [f"gb-{i}" for i in range(50)]
    h = [f"hb-{i}" for i in range(5)]
    push(r, *[desc(j, EDIT, group="g") for j in g])
    push(r, *[desc(j, EDIT, group="h") for j in h])
    wait_for(lambda: all(s == "completed" for s in states(r, h)), 30, what="group h's jobs")

    def settled():
        s = states(r, g)
        return s.count("completed") == 10 and s.count("over_budget") == 40
    wait_for(settled, 30, what="10 of g completed, 40 over_budget")
    assert created(fake_kie, g) == 10
    parked = [j for j in g if r.hget(f"{PREFIX}:job:{j}", "state") == "over_budget"]
    assert all(r.hget(f"{PREFIX}:job:{j}", "attempts") in (None, "0") for j in parked)
    assert "group g budget" in (r.hget(f"{PREFIX}:job:{parked[0]}", "budgetWait") or "")
    assert r.llen(f"{PREFIX}:dead") == 0
    c = run_kie(["job", "show", parked[0]], env)
    assert ": over_budget — " in c.stdout and "group g budget" in c.stdout, c.stdout
    # the operator's view: today's spend, each account, the groups against their budgets
    c = run_kie(["stats"], env)
    assert "spend today" in c.stdout and "40 jobs over_budget" in c.stdout, c.stdout
    assert re.search(r"account default\s+spent 9\d\.00", c.stdout), c.stdout
    assert re.search(r"group\s+g\s+spent 60\.00\s+budget 60\.00", c.stdout), c.stdout
    js = json.loads(run_kie(["stats", "--json"], env).stdout)["spend"]
    assert js["overBudget"] == 40 and js["accounts"]["default"]["spent"] == 90
    # a raise to 15 tasks' worth: 5 more go, the rest still wait
    assert run_kie(["budget", "set", "g", "90"], env).returncode == 0
    wait_for(lambda: states(r, g).count("completed") == 15, 30, what="5 more of g")
    assert created(fake_kie, g) == 15
    assert states(r, g).count("over_budget") == 35
    w.stop()


def test_pool_budget_across_3_workers_x_16_runners_holds_within_the_bound(
        redis_server, r, fake_kie, workers):
    """KIE_DAILY_CREDIT_BUDGET=60 and an estimate of 5 for tasks that cost 6: the spend
    passes the budget by at most (6 - 5) x the createTask calls in flight (48 runners),
    and the observed average (after 3 tasks) makes the error 0 from then on."""
    fake_kie.config(task_ms=100)
    env = dict(KIE_WORKER_CONCURRENCY=16, KIE_DAILY_CREDIT_BUDGET=60,
               KIE_MODEL_CREDITS=f"{EDIT}=5")
    ws = [workers(redis_server.url, fake_kie.url, **env) for _ in range(3)]
    ids = [f"pb-{i}" for i in range(30)]
    push(r, *[desc(j) for j in ids])

    def quiet():
        s = states(r, ids)
        return all(x in ("completed", "over_budget") for x in s) and s
    s = wait_for(quiet, 40, what="every job completed or over_budget")
    charged = fake_kie.stats()["accounts"]["default"]["charged_total"]
    print(f"pool budget 60, estimate 5, cost 6: charged {charged}, created {created(fake_kie, ids)}")
    assert charged <= 60 + (6 - 5) * 48, charged
    assert s.count("over_budget") >= 30 - (60 + 48) // 6
    assert created(fake_kie, ids) == s.count("completed")
    day = budget_day(r)
    assert day.get("reserved", 0) == 0 and day["spent"] == charged
    for w in ws:
        w.stop()


def test_unknown_account_is_dead_lettered_without_a_kie_call(redis_server, r, fake_kie,
                                                               workers):
    w = workers(redis_server.url, fake_kie.url)
    push(r, desc("ua-1", account="nosuch"))
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == 1, 20, what="the dead letter")
    entry = json.loads(r.lindex(f"{PREFIX}:dead", 0))
    assert 'unknown account "nosuch"' in entry["reason"], entry
    assert entry.get("source") == "account", entry
    assert r.hget(f"{PREFIX}:job:ua-1", "state") == "dead"
    # the default account's alias is accepted as such
    push(r, desc("ua-2", account="default"))
    wait_for(lambda: r.hget(f"{PREFIX}:job:ua-2", "state") == "completed", 20,
             what="the job on the named default account")
    assert fake_kie.stats()["creates_by_job"].get("ua-1", 0) == 0
    w.stop()


def test_kill9_between_reservation_and_settlement_leaks_nothing(redis_server, r, fake_kie,
                                                                workers):
    """A worker killed while its job's task runs (reserved, not settled): the next
    worker's pollers finalize the task, and the reservation becomes its spend."""
    fake_kie.config(task_ms=2500)
    env = dict(KIE_DAILY_CREDIT_BUDGET=1000, KIE_MODEL_CREDITS=f"{EDIT}=6")
    w = workers(redis_server.url, fake_kie.url, **env)
    push(r, desc("k9-1", group="acme"))
    wait_for(lambda: r.hget(f"{PREFIX}:job:k9-1", "taskId"), 20, what="the task")
    assert budget_day(r)["reserved"] == 6
    assert r.zcard(f"{PREFIX}:budget:open") == 1
    w.kill9()
    w2 = workers(redis_server.url, fake_kie.url, **env)
    wait_for(lambda: r.hget(f"{PREFIX}:job:k9-1", "state") == "completed", 30,
             what="the job completed by the next worker")
    day = budget_day(r)
    assert day.get("reserved", 0) == 0 and day["spent"] == 6, day
    assert r.zcard(f"{PREFIX}:budget:open") == 0
    assert fake_kie.stats()["creates_by_job"]["k9-1"] == 1
    w2.stop()
