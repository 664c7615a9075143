"""test_accounts_counts.py — with several KIE accounts, the operator's counts and the
budget releases cover every account's scheduling structure, not only
<p>:sched:default (issue 20, points 3 and 4; docs/protocol.md, "Accounts at run time"):
the workers list their structures in <p>:accounts; `kie stats`, the page's queued view and
/metrics count the jobs held in the second account's structure; `kie budget set` and the
page's raise release that account's over_budget jobs. Paid tasks are counted at the fake."""
import json
import os
import time
import urllib.request

from conftest import TOKEN, base_env, free_port, run_kie, wait_for
from test_web import ADMIN_TOKEN, browser, http  # noqa: F401

PREFIX = "kie"
EDIT = "google/nano-banana-edit"


def desc(jid, account=None, **extra):
    d = {"v": 1, "id": jid, "type": "raw",
         "input": {"prompt": "a coat", "model": EDIT,
                   "imageUrls": ["https://img.example.com/c.png"]}, **extra}
    if account:
        d["account"] = account
    return json.dumps(d)


def accounts_file(tmpdir_path, text):
    path = os.path.join(tmpdir_path, "accounts")
    with open(path, "w") as f:
        f.write(text)
    return path


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def queued_gauge(port):
    """The sum of kie_queued_jobs over its priorities, or None before the first scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    vals = [float(ln.rsplit(" ", 1)[1]) for ln in text.splitlines()
            if ln.startswith("kie_queued_jobs{")]
    return sum(vals) if vals else None


def test_jobs_held_in_a_second_accounts_structure_are_counted_everywhere(
        redis_server, r, fake_kie, workers, tmpdir_path):
    """Account byok paused (`kie pause --account byok`): its 3 ready jobs and 1 delayed
    job wait in <p>:sched:byok:*. kie stats --json (depths, per account, schedule), the
    page's queued API (counts, entries with their account) and the queued and delayed
    gauges count them; main's jobs still run; nothing of byok's reaches KIE."""
    fake_kie._req("POST", "/_fake/account", {"name": "b", "token": "tok-b", "credits": 1000})
    path = accounts_file(tmpdir_path, f"main {TOKEN}\nbyok tok-b\n")
    env = base_env(redis_server.url)
    assert run_kie(["pause", "--account", "byok", "--reason", "t"], env).returncode == 0
    port = free_port()
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
            KIE_WORKER_CONCURRENCY=2, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
            KIE_ADMIN_PAGE="on")
    held = [f"hb-{i}" for i in range(3)]
    later = "hb-later"
    main = [f"hm-{i}" for i in range(2)]
    due = int(time.time() * 1000) + 3600 * 1000
    r.lpush(f"{PREFIX}:queue", *[desc(j, "byok", group="gb") for j in held],
            desc(later, "byok", group="gb", notBefore=due), *[desc(j) for j in main])
    wait_for(lambda: r.zcard(f"{PREFIX}:sched:byok:ready") == 3 and
             r.zcard(f"{PREFIX}:sched:byok:delayed") == 1, 20,
             what="byok's jobs routed into its structure")
    wait_for(lambda: all(r.hget(f"{PREFIX}:job:{j}", "state") == "completed" for j in main),
             30, what="main's jobs")
    # the workers name their structures
    wait_for(lambda: r.smembers(f"{PREFIX}:accounts") == {"main", "byok"}, 10,
             what=lambda: f"<p>:accounts: {r.smembers(f'{PREFIX}:accounts')}")

    c = run_kie(["stats", "--json"], env)
    assert c.returncode == 0, c.stderr
    s = json.loads(c.stdout)
    assert s["depths"]["queue"] == 3 and s["depths"]["delayed"] == 1, s["depths"]
    assert s["accounts"]["byok"] == {"queued": 3, "delayed": 1, "overBudget": 0}, s["accounts"]
    assert s["accounts"]["main"] == {"queued": 0, "delayed": 0, "overBudget": 0}, s["accounts"]
    sched = s["schedule"]
    assert (sched["ready"], sched["delayed"]) == (3, 1), sched
    assert sum(sched["queuedByPriority"].values()) == 3, sched
    assert (sched["topGroups"][0]["group"], sched["topGroups"][0]["queued"]) == ("gb", 4), \
        sched["topGroups"]
    assert isinstance(sched["oldestWaitMs"], (int, float)), sched
    c = run_kie(["stats"], env)
    assert c.returncode == 0 and "by account: byok 3 queued (0 over budget), 1 delayed" in \
        c.stdout, c.stdout

    base = f"http://127.0.0.1:{port}/admin/api/"
    q = get_json(base + "queued?from=ready")
    assert q["counts"]["ready"] == 3 and q["matched"] == 3, q
    assert sorted(e["jobId"] for e in q["entries"]) == sorted(held), q["entries"]
    assert {e["account"] for e in q["entries"]} == {"byok"}, q["entries"]
    assert sorted(e["position"] for e in q["entries"]) == [0, 1, 2], q["entries"]
    assert q["summary"]["accounts"]["byok"]["ready"] == 3, q["summary"]
    d = get_json(base + "queued?from=delayed")
    assert [e["jobId"] for e in d["entries"]] == [later] and d["entries"][0]["dueAt"] == due, d
    # paging runs across the accounts' lists; one account alone by ?account=
    p2 = get_json(base + "queued?from=ready&offset=2&limit=5")
    assert len(p2["entries"]) == 1 and p2["matched"] == 3, p2
    assert get_json(base + "queued?from=ready&account=main")["entries"] == []
    f = get_json(base + "queued?from=ready&group=gb&offset=1")
    assert (f["matched"], len(f["entries"])) == (3, 2), f
    nr = get_json(base + "queued?from=queue")
    assert (nr["counts"]["ready"], nr["counts"]["notRouted"], nr["entries"]) == (3, 0, []), nr
    assert http("GET", base + "queued?account=.bad")[0] == 400
    st = get_json(base + "stats")
    assert st["depths"]["queue"] == 3, st["depths"]
    # each account's limiter, not only the first one's: main's log holds its creates,
    # paused byok's holds none
    lim = {x["alias"]: x for x in st["limiters"]}
    assert sorted(lim) == ["byok", "main"], st["limiters"]
    assert lim["main"]["create"]["logEntries"] >= 2 and \
        lim["byok"]["create"]["logEntries"] == 0, lim
    assert lim["main"]["account"] != lim["byok"]["account"]
    # the charts draw the pool's creates against both accounts' limits (the tests' workers
    # run at 100000 per 1000 ms each, conftest) and count both accounts' logs: main's 2
    cs = get_json(base + "rates")["createSlots"]
    assert (cs["limit"], cs["accounts"]) == (2 * 100000, 2) and cs["used"] >= 0, cs
    assert get_json(base + "history?minutes=60")["createLimitPerMinute"] == \
        2 * 100000 * 60
    env_a = dict(env, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path)
    c = run_kie(["stats", "--json"], env_a)
    assert c.returncode == 0, c.stderr
    assert [x["alias"] for x in json.loads(c.stdout)["limiters"]] == ["main", "byok"]
    c = run_kie(["stats"], env_a)
    assert c.returncode == 0 and "limiter (account main, " in c.stdout and \
        "limiter (account byok, " in c.stdout, c.stdout
    # the search box finds the group of byok's jobs
    assert get_json(base + "search?q=gb")["by"] == "group"

    wait_for(lambda: queued_gauge(port) == 3, 10,
             what=lambda: f"kie_queued_jobs summing to 3: {queued_gauge(port)}")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    assert "kie_delayed_jobs 1\n" in text, [ln for ln in text.splitlines() if "delayed" in ln]
    assert not any(j.startswith("hb-") for j in fake_kie.stats()["creates_by_job"])


def test_over_budget_jobs_of_a_second_account_are_released_by_a_raise(
        redis_server, r, fake_kie, workers, tmpdir_path):
    """Two jobs of account byok wait over_budget (groups g1, g2: budget 1 credit, an
    estimate of 4). With no worker running (a worker's own second-by-second look would
    release them too), `kie budget set g1 100` puts g1's job back into byok's ready set.
    Then a worker whose file names main alone starts with the page: byok's structure,
    still holding jobs, stays in <p>:accounts (main's, empty, is dropped), the page's
    Spend view counts the job over budget in byok, and its raise of g2 releases it."""
    fake_kie._req("POST", "/_fake/account", {"name": "b", "token": "tok-b", "credits": 1000})
    path = accounts_file(tmpdir_path, f"main {TOKEN}\nbyok tok-b\n")
    env = base_env(redis_server.url)
    for g in ("g1", "g2"):
        assert run_kie(["budget", "set", g, "1"], env).returncode == 0
    w = workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
                KIE_WORKER_CONCURRENCY=2)
    r.lpush(f"{PREFIX}:queue", desc("ob-1", "byok", group="g1"),
            desc("ob-2", "byok", group="g2"))
    wait_for(lambda: r.zcard(f"{PREFIX}:sched:byok:overBudget") == 2, 20,
             what=lambda: f"2 jobs over budget in byok: "
                          f"{[r.hget(f'{PREFIX}:job:{j}', 'state') for j in ('ob-1', 'ob-2')]}")
    assert w.stop() == 0
    c = run_kie(["stats", "--json"], env)
    assert json.loads(c.stdout)["accounts"]["byok"]["overBudget"] == 2, c.stdout
    c = run_kie(["budget", "set", "g1", "100"], env)
    assert c.returncode == 0, c.stderr
    assert r.zscore(f"{PREFIX}:sched:byok:ready", "ob-1") is not None
    assert r.zrange(f"{PREFIX}:sched:byok:overBudget", 0, -1) == ["ob-2"]

    one = accounts_file(tmpdir_path, f"main {TOKEN}\n")
    port = free_port()
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=one,
            KIE_WORKER_CONCURRENCY=1, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
            KIE_ADMIN_PAGE="on", KIE_ADMIN_TOKEN=ADMIN_TOKEN)
    base = f"http://127.0.0.1:{port}/admin/api/"
    wait_for(lambda: r.smembers(f"{PREFIX}:accounts") == {"default", "byok"}, 20,
             what=lambda: f"<p>:accounts: {r.smembers(f'{PREFIX}:accounts')}")

    def spend():
        try:
            return get_json(base + "spend")
        except OSError:
            return None
    wait_for(spend, 20, what="the page")
    sp = spend()
    assert sp["overBudget"] == 1, sp
    assert [(x["jobId"], x["account"]) for x in sp["waiting"]] == [("ob-2", "byok")], sp
    st, _, body = http("POST", base + "group/budget",
                       json.dumps({"group": "g2", "credits": 100}).encode(),
                       {"Content-Type": "application/json",
                        "Authorization": "Bearer " + ADMIN_TOKEN})
    assert st == 200, body
    assert json.loads(body)["woken"] == 1, body
    assert r.zcard(f"{PREFIX}:sched:byok:overBudget") == 0
    assert r.zscore(f"{PREFIX}:sched:byok:ready", "ob-2") is not None
    # nothing of byok's was created: the budgets held them, and no runner serves byok now
    assert not any(j.startswith("ob-") for j in fake_kie.stats()["creates_by_job"])


def test_the_queued_view_shows_each_jobs_account(redis_server, r, fake_kie, workers,
                                                  tmpdir_path, browser):
    """The page's Queued view, in a browser: byok's held jobs are listed with an account
    column saying byok, and a card per account counts them."""
    from selenium.webdriver.common.by import By
    fake_kie._req("POST", "/_fake/account", {"name": "b", "token": "tok-b", "credits": 1000})
    path = accounts_file(tmpdir_path, f"main {TOKEN}\nbyok tok-b\n")
    assert run_kie(["pause", "--account", "byok"], base_env(redis_server.url)).returncode == 0
    port = free_port()
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
            KIE_WORKER_CONCURRENCY=1, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
            KIE_ADMIN_PAGE="on")
    held = ["vb-0", "vb-1"]
    r.lpush(f"{PREFIX}:queue", *[desc(j, "byok") for j in held])
    wait_for(lambda: r.zcard(f"{PREFIX}:sched:byok:ready") == 2, 20, what="routed")
    browser.get(f"http://127.0.0.1:{port}/admin/#/queued")

    def table():
        out = []
        for tr in browser.find_elements(By.CSS_SELECTOR, "#queued tbody tr"):
            out.append((tr.get_attribute("data-job"),
                        [c.text for c in tr.find_elements(By.TAG_NAME, "td")][2]))
        return sorted(out)
    wait_for(lambda: table() == [("vb-0", "byok"), ("vb-1", "byok")], 15, interval=0.2,
             what=lambda: f"the held jobs with their account: {table()}")
    assert browser.find_element(By.CSS_SELECTOR, "#queued th.q-acct").is_displayed()
    cards = browser.find_element(By.ID, "queued-prios").text
    assert "account byok" in cards and "account main" in cards, cards
    assert browser.get_log("browser") == []


def test_a_one_account_pools_job_put_back_is_cancelled_with_the_default_keys(
        redis_server, r, fake_kie, workers, tmpdir_path):
    """One account named in KIE_ACCOUNTS_FILE (alias main; its structure stays
    <p>:sched:default, protocol.md section 10). A job started and put back — the account
    has no credits, its createTask answers 402, the pool pauses and the job waits queued
    with its attempt given back — is cancelled by FCALL kie_cancel with the default
    structure's keys, as documented, and by `kie job cancel`: it never reaches KIE."""
    fake_kie._req("POST", "/_fake/account", {"name": "default", "credits": 0})
    path = accounts_file(tmpdir_path, f"main {TOKEN}\n")
    workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
            KIE_WORKER_CONCURRENCY=1)
    r.lpush(f"{PREFIX}:queue", desc("one-a"), desc("one-b"))
    wait_for(lambda: r.exists(f"{PREFIX}:pause") and
             r.hget(f"{PREFIX}:job:one-a", "state") == "queued" and
             r.hget(f"{PREFIX}:job:one-b", "state") == "queued", 20,
             what="the 402's pause, both jobs queued")
    assert fake_kie.stats()["creates_total"] == 0
    S = f"{PREFIX}:sched:default"
    keys = [f"{PREFIX}:job:one-a", f"{PREFIX}:cancel:one-a", f"{S}:ready", f"{S}:delayed",
            f"{S}:items", f"{S}:state", f"{S}:gcount", f"{PREFIX}:stats",
            f"{PREFIX}:results", f"{S}:parked", f"{PREFIX}:job:one-a"]
    out = json.loads(r.execute_command("FCALL", "kie_cancel", len(keys), *keys, "one-a"))
    assert out["result"] == "cancelled", out
    c = run_kie(["job", "cancel", "one-b", "--json"], base_env(redis_server.url))
    assert c.returncode == 0 and json.loads(c.stdout)["result"] == "cancelled", \
        (c.stdout, c.stderr)
    # both out of the default structure: nothing left to pick
    assert r.zcard(f"{S}:ready") == 0 and r.hlen(f"{S}:items") == 0
    assert fake_kie.stats()["creates_total"] == 0
