"""The operator page's Spend view (issue 21, part 3): today's spend against the pool
budget, each account's spend, balance and pause (the pool's <p>:pause and the per-account
<p>:pause:acct:<alias>), the groups that spent most and the group budgets, the jobs
waiting over_budget, and a group budget set from the page (token + Origin + Host, in the
audit list, seen by `kie budget list`). Real jobs against the fake, which charges per
model; paid tasks counted at the fake. Headless Chromium through selenium, as
test_web_views.py. KIE_SCREENSHOT_DIR=dir saves the view (scripts/screenshot.sh)."""
import json

from conftest import base_env, run_kie, wait_for
from test_web import ADMIN_TOKEN, browser, start_page_worker  # noqa: F401
from test_web_views import XSS, go, iso, no_horizontal_scroll, now_ms, shot, \
    unlabelled_controls
from test_spend_wiring import BANANA, EDIT, desc, states, utc_day


def cells(browser, table):
    """The rows' cell texts, read in one step (each refresh rebuilds the rows)."""
    return browser.execute_script(
        "return [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')].map("
        "tr => [...tr.cells].map(c => c.innerText))", table)


def text(browser, id_):
    """The text of element id_ ("" until the view has drawn it)."""
    from selenium.webdriver.common.by import By
    e = browser.find_elements(By.ID, id_)
    return e[0].text if e else ""


def test_spend_view_matches_the_charges_and_shows_balance_and_account_pause(
        workers, redis_server, r, fake_kie, browser):
    fake_kie.config(task_ms=50)
    w, base = start_page_worker(workers, redis_server, fake_kie, KIE_DAILY_CREDIT_BUDGET="1000",
                                KIE_RECOVERY_INTERVAL_MS="1000")
    ids = [f"ps-e{i}" for i in range(4)] + [f"ps-b{i}" for i in range(3)]
    r.lpush("kie:queue", *[desc(j, EDIT, group="acme") for j in ids[:4]])
    r.lpush("kie:queue", *[desc(j, BANANA, group="beta") for j in ids[4:]])
    wait_for(lambda: all(s == "completed" for s in states(r, ids)), 30, what="every job")
    charged = fake_kie.stats()["accounts"]["default"]["charged_total"]
    assert charged == 4 * 6 + 3 * 4
    # the balance the credits thread read (from 5 s after start)
    wait_for(lambda: r.hget("kie:balance", "default|credits") is not None, 20,
             what="the balance read")
    go(browser, base, "#/spend")
    wait_for(lambda: text(browser, "spend-total") == str(charged), 15, interval=0.2,
             what=lambda: "the spend card: " + text(browser, "view-spend")[:600] +
             text(browser, "conn"))
    assert text(browser, "spend-budget") == "1000"
    assert text(browser, "spend-spent") == str(charged)
    assert text(browser, "spend-reserved") == "0"
    assert text(browser, "spend-used") == "%d%%" % round(100 * charged / 1000)
    assert text(browser, "spend-over") == "0"
    bal = float(r.hget("kie:balance", "default|credits"))
    wait_for(lambda: cells(browser, "accounts")[:1] and
             cells(browser, "accounts")[0][:3] == ["default", str(charged), "%g" % bal] and
             cells(browser, "accounts")[0][4] == "no", 10, interval=0.2,
             what=lambda: f"the account row {cells(browser, 'accounts')} balance {bal}")
    assert cells(browser, "accounts")[0][3] != "-"  # when it was read
    assert cells(browser, "spend-groups") == [["acme", "24", "none", "-", "-"],
                                              ["beta", "12", "none", "-", "-"]]
    # a per-account pause, set by hand in the format of <p>:pause
    r.set("kie:pause:acct:default", json.dumps({
        "kind": "account", "reason": "KIE answered 402: credits exhausted",
        "since": iso(now_ms()), "by": "w-1"}), px=600000)
    wait_for(lambda: cells(browser, "accounts")[0][4].startswith(
        "yes (account): KIE answered 402: credits exhausted"), 10, interval=0.2,
        what=lambda: f"the account's pause: {cells(browser, 'accounts')}")
    assert "left" in cells(browser, "accounts")[0][4]
    r.delete("kie:pause:acct:default")
    # the pool's pause shows on every account without one of its own
    r.set("kie:pause", json.dumps({"kind": "operator", "reason": "deploy",
                                   "since": iso(now_ms()), "by": "test"}))
    wait_for(lambda: cells(browser, "accounts")[0][4].startswith("pool: yes (operator): deploy"),
             10, interval=0.2, what=lambda: f"the pool's pause: {cells(browser, 'accounts')}")
    # the API says the same as kie stats
    c = run_kie(["stats", "--json"], base_env(redis_server.url))
    assert c.returncode == 0, c.stderr
    sp = json.loads(c.stdout)["spend"]
    assert (sp["total"], sp["accounts"]["default"]["spent"]) == (charged, charged)
    assert browser.get_log("browser") == []
    assert w.stop() == 0


def test_group_budget_set_from_the_page_parks_and_releases(
        workers, redis_server, r, fake_kie, browser):
    """A budget of one task for group tight, set from the page: of 3 jobs 1 is created
    and 2 wait over_budget (listed, linked); raised from the page to 3 tasks, they run.
    Both sets are in kie budget list and the audit list."""
    from selenium.webdriver.common.by import By
    fake_kie.config(task_ms=50)
    w, base = start_page_worker(workers, redis_server, fake_kie, KIE_MODEL_CREDITS=f"{EDIT}=6")
    go(browser, base, "#/spend")
    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    browser.find_element(By.ID, "operator-name").send_keys("ana")
    wait_for(lambda: browser.find_element(By.ID, "budget-form").is_displayed(), 15,
             interval=0.2, what="the budget form")

    def set_budget(group, credits):
        g, c = browser.find_element(By.ID, "b-group"), browser.find_element(By.ID, "b-credits")
        g.clear()
        g.send_keys(group)
        c.clear()
        c.send_keys(str(credits))
        browser.find_element(By.ID, "btn-budget").click()
        wait_for(lambda: f"group {group}: budget {credits} credits a day" in
                 text(browser, "message"), 10, interval=0.2,
                 what=lambda: "the message: " + text(browser, "message"))

    set_budget("tight", 6)
    env = base_env(redis_server.url)
    c = run_kie(["budget", "list", "--json"], env)
    assert c.returncode == 0, c.stderr
    assert [(g["group"], g["budget"]) for g in json.loads(c.stdout)["groups"]] == [("tight", 6)]
    a = json.loads(r.lindex("kie:audit", 0))
    assert (a["action"], a["group"], a["budget"]) == ("group/budget", "tight", 6)
    assert a["who"].startswith("ana (token ") and a["from"] == "127.0.0.1"
    ids = [f"tb-{i}" for i in range(3)]
    r.lpush("kie:queue", *[desc(j, EDIT, group="tight") for j in ids])

    def split():
        s = states(r, ids)
        return s.count("completed") == 1 and s.count("over_budget") == 2
    wait_for(split, 30, what=lambda: f"1 completed, 2 over_budget: {states(r, ids)}")
    waiting = sorted(j for j in ids if r.hget(f"kie:job:{j}", "state") == "over_budget")
    wait_for(lambda: sorted(x[0] for x in cells(browser, "waiting")) == waiting, 15,
             interval=0.2, what=lambda: f"the waiting jobs: {cells(browser, 'waiting')}")
    assert all(x[1:] == ["tight", "6"] for x in cells(browser, "waiting"))
    assert text(browser, "spend-over") == "2"
    assert browser.find_elements(By.CSS_SELECTOR, f"#waiting a[href='#/job/{waiting[0]}']")
    wait_for(lambda: cells(browser, "budgets") == [["tight", "6", "6", "0", "100%"]], 10,
             interval=0.2, what=lambda: f"the budgets: {cells(browser, 'budgets')}")
    shot(browser, "spend")
    # raised from the page: the two run, each created once
    set_budget("tight", 18)
    wait_for(lambda: all(s == "completed" for s in states(r, ids)), 30,
             what=lambda: f"all completed: {states(r, ids)}")
    assert {j: n for j, n in fake_kie.stats()["creates_by_job"].items() if j in ids} == \
        {j: 1 for j in ids}
    c = run_kie(["budget", "list", "--json"], env)
    assert [(g["group"], g["budget"], g["spent"]) for g in json.loads(c.stdout)["groups"]] == \
        [("tight", 18, 18)]
    assert [json.loads(x)["budget"] for x in r.lrange("kie:audit", 0, 1)] == [18, 6]
    # the audit view shows it
    go(browser, base, "#/audit")
    wait_for(lambda: "group tight · budget 18 credits a day" in text(browser, "view-audit"), 10,
             interval=0.2, what=lambda: text(browser, "view-audit")[:600])
    # refused without the token, from another origin, and for a bad group
    from test_web import http
    hdr = {"Content-Type": "application/json"}
    body = json.dumps({"group": "tight", "credits": 1}).encode()
    assert http("POST", base + "api/group/budget", body, hdr)[0] == 401
    assert http("POST", base + "api/group/budget", body, {
        **hdr, "Authorization": "Bearer " + ADMIN_TOKEN, "Origin": "http://evil.example"})[0] == 403
    for bad in ({"group": "a b", "credits": 1}, {"group": "t", "credits": -1},
                {"group": "t", "credits": "5"}, {"group": "t", "credits": 1, "x": 1}):
        assert http("POST", base + "api/group/budget", json.dumps(bad).encode(), {
            **hdr, "Authorization": "Bearer " + ADMIN_TOKEN})[0] == 400, bad
    assert r.hget("kie:budget:group", "tight") == "18"
    assert browser.get_log("browser") == []
    assert w.stop() == 0


def test_spend_view_shows_markup_as_text_and_fits_a_phone(workers, redis_server, r, fake_kie,
                                                          browser):
    """Group names, account aliases and pause reasons as a writer to Redis could leave
    them render as text; at 375 px there is no horizontal scroll."""
    from selenium.webdriver.common.by import By
    day = utc_day()
    short = '<img src=x onerror="window.__xss=3">'  # aliases and groups: 64 bytes at most
    r.set("kie:pause", json.dumps({"kind": "operator", "reason": "x", "since": iso(now_ms()),
                                   "by": "test"}))
    w, base = start_page_worker(workers, redis_server, fake_kie, KIE_DAILY_CREDIT_BUDGET="100")
    r.hset(f"kie:spend:{day}", mapping={"total": 30, "tasks": 5, f"account:{short}": 30})
    r.zadd(f"kie:spend:{day}:groups", {XSS: 30, "shop-1": 12})
    # short's budget is used up: the credits thread's unpark leaves ob-1 waiting
    r.hset("kie:budget:group", mapping={XSS: 50, "shop-1": 20, short: 1})
    r.hset(f"kie:budget:{day}", mapping={"spent": 30, "reserved": 12, f"spent|{XSS}": 30})
    r.hset("kie:balance", mapping={f"{short}|credits": 77, f"{short}|at": now_ms()})
    r.set(f"kie:pause:acct:{short}", json.dumps({"kind": "account", "reason": XSS,
                                                "since": iso(now_ms()), "by": XSS}))
    r.zadd("kie:sched:default:overBudget", {"ob-1": 1})
    r.hset("kie:sched:default:items", "ob-1", f"5\t{short}\t{now_ms()}\t1\t" + json.dumps(
        {"v": 1, "id": "ob-1", "type": "raw", "input": {"prompt": "a coat"}}))
    r.hset("kie:sched:default:overBudgetEst", "ob-1", f"{short}\t6")
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 375, "height": 900, "deviceScaleFactor": 1, "mobile": True})
    go(browser, base, "#/spend")
    wait_for(lambda: text(browser, "spend-used") == "42%", 15, interval=0.2,
             what=lambda: text(browser, "view-spend")[:600])
    v = text(browser, "view-spend")
    for table in ("accounts", "spend-groups", "budgets", "waiting"):
        want = short if table in ("accounts", "waiting") else XSS
        assert any(want in c for row in cells(browser, table) for c in row), (table, v)
    assert any(XSS in row[4] for row in cells(browser, "accounts"))  # its pause's reason
    assert browser.execute_script("return window.__xss") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img[src='x']") == []
    assert no_horizontal_scroll(browser), browser.execute_script(
        "return [document.scrollingElement.scrollWidth, window.innerWidth]")
    assert unlabelled_controls(browser) == []
    shot(browser, "spend-phone")
    assert w.stop() == 0


def test_history_counts_oversized_uncertain_dead_and_a_cancel_at_routing(
        workers, redis_server, r, fake_kie):
    """The three history counts part 2 left out: a descriptor too large to read
    (dead_oversized.lua), an uncertain job dead by policy at its window's end
    (uncertain_resolve.lua), and a cancel that came before the job was routed
    (route.lua). Each counted once in the minute and the day hashes."""
    from test_web_views import hist_totals
    env = base_env(redis_server.url)
    c = run_kie(["job", "cancel", "early-1"], env)  # not seen yet: remembered
    assert c.returncode == 0, c.stderr
    fake_kie.config(drop_next_create=1)  # KIE made the task; its answer was lost
    w = workers(redis_server.url, fake_kie.url, KIE_JOB_MAX_BYTES="1024",
                KIE_UNCERTAIN_WINDOW_MS="1000", KIE_UNCERTAIN_POLICY="dead",
                KIE_RECOVERY_INTERVAL_MS="500")
    r.lpush("kie:queue", desc("unsure-1", BANANA))
    wait_for(lambda: r.hget("kie:job:unsure-1", "state") == "dead", 30,
             what=lambda: f"unsure-1 dead by policy: {r.hgetall('kie:job:unsure-1')}")
    r.lpush("kie:queue", json.dumps({"v": 1, "id": "big-1", "type": "raw",
                                     "input": {"prompt": "x" * 2000}}))
    r.lpush("kie:queue", desc("early-1", BANANA))
    wait_for(lambda: r.hget("kie:job:early-1", "state") == "cancelled" and
             r.llen("kie:dead") == 2, 30,
             what=lambda: f"early-1 cancelled, 2 dead: {r.hgetall('kie:job:early-1')} "
             f"{r.lrange('kie:dead', 0, -1)}")
    assert fake_kie.stats()["creates_by_job"] == {"unsure-1": 1}
    tot = hist_totals(r)
    assert (tot.get("dead"), tot.get("cancelled")) == (2, 1), tot
    day = {}
    for k in r.keys("kie:hist:d:*"):
        for f, v in r.hgetall(k).items():
            day[f] = day.get(f, 0) + int(v)
    assert (day.get("dead"), day.get("cancelled")) == (2, 1), day
    assert w.stop() == 0
