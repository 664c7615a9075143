"""test_credits.py — issue 20's foundation at the real seams: the KIE fake's credits
(cost per model, per-token accounts with their own balances, limits and 402s), the
worker's accounts file, the pool-wide balance gauge, and `kie spend` / `kie budget`
against the counters the Lua includes write (docs/protocol.md, "Credits, spend and
budgets")."""
import json
import os
import re
import urllib.request

import pytest

from conftest import PY, ROOT, TOKEN, base_env, free_port, run_kie, wait_for
from test_fakes import call, query

EDIT, BANANA = "google/nano-banana-edit", "google/nano-banana"


def account(fake, name, token=None, credits=None):
    body = {"name": name}
    if token is not None:
        body["token"] = token
    if credits is not None:
        body["credits"] = credits
    return fake._req("POST", "/_fake/account", body)


def create_as(fake, token=TOKEN, model=EDIT, prompt="a coat"):
    inp = {"prompt": prompt}
    if model == EDIT:
        inp["image_urls"] = ["https://a.b/c.png"]
    st, raw = call(fake.url + "/api/v1/jobs/createTask", "POST",
                   {"model": model, "input": inp}, token=token)
    return json.loads(raw)


def final_record(fake, tid, token=TOKEN):
    def done():
        st, raw = call(fake.url + f"/api/v1/jobs/recordInfo?taskId={tid}", token=token)
        d = json.loads(raw).get("data") or {}
        return d if d.get("state") in ("success", "fail") else None
    return wait_for(done, 10, what=f"task {tid} to end")


# --- the fake ---

def test_fake_charges_per_model_and_reports_the_cost(fake_kie):
    fake_kie.config(task_ms=50)
    a = create_as(fake_kie, model=EDIT)["data"]["taskId"]
    b = create_as(fake_kie, model=BANANA)["data"]["taskId"]
    c = create_as(fake_kie, model=EDIT, prompt="[fake:fail] x")["data"]["taskId"]
    assert final_record(fake_kie, a)["creditsConsumed"] == 6
    assert final_record(fake_kie, b)["creditsConsumed"] == 4
    rc = final_record(fake_kie, c)
    assert rc["state"] == "fail" and rc["creditsConsumed"] == 0
    st = fake_kie.stats()
    d = st["accounts"]["default"]
    assert d["charged_total"] == 10 and d["charged_by_model"] == {EDIT: 6, BANANA: 4}
    assert st["credits"] == 1000000 - 10 == d["credits"]
    # the old names, on request: consumeCredits and the balance in remainedCredits
    fake_kie.config(credit_names="old", model_credits={EDIT: 3})
    e = create_as(fake_kie)["data"]["taskId"]
    rec = final_record(fake_kie, e)
    assert rec["consumeCredits"] == 3 and rec["remainedCredits"] == 1000000 - 13
    assert "creditsConsumed" not in rec


def test_fake_accounts_have_their_own_balance_limits_and_402(fake_kie):
    fake_kie.config(task_ms=50, create_limit=2, create_window_s=30)
    account(fake_kie, "b", token="tok-b", credits=10)
    st, raw = call(fake_kie.url + "/api/v1/chat/credit", token="tok-b")
    assert json.loads(raw)["data"] == 10
    t1 = create_as(fake_kie, "tok-b")["data"]["taskId"]
    final_record(fake_kie, t1, token="tok-b")
    assert json.loads(call(fake_kie.url + "/api/v1/chat/credit", token="tok-b")[1])["data"] == 4
    # 4 left, a task costs 6: 402 for b; the default account is not concerned
    assert create_as(fake_kie, "tok-b")["code"] == 402
    assert create_as(fake_kie)["code"] == 200
    # b's limit is its own: the default account's two slots are not b's
    assert create_as(fake_kie)["code"] == 200
    assert create_as(fake_kie)["code"] == 429
    account(fake_kie, "b", credits=100)  # a refill
    assert create_as(fake_kie, "tok-b")["code"] == 200
    s = fake_kie.stats()["accounts"]
    assert s["b"]["creates_refused_402"] == 1 and s["b"]["creates_total"] == 2
    assert s["b"]["charged_total"] == 6 and s["b"]["credit_requests"] == 2
    assert s["default"]["creates_refused_429"] == 1 and s["default"]["creates_total"] == 2
    assert call(fake_kie.url + "/api/v1/chat/credit", token="tok-c")[0] == 401


def test_fake_callback_carries_the_cost(fake_kie):
    import http.server
    import threading
    got = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        fake_kie.config(task_ms=50)
        st, raw = call(fake_kie.url + "/api/v1/jobs/createTask", "POST", {
            "model": BANANA, "callBackUrl": f"http://127.0.0.1:{srv.server_port}/cb",
            "input": {"prompt": "p"}})
        wait_for(lambda: got, 10, what="the callback")
        assert got[0]["data"]["creditsConsumed"] == 4
    finally:
        srv.shutdown()


# --- kie spend and kie budget, over the counters the scripts write ---

PREFIX = "kie"


def lua(r, name, keys, args):
    from conftest import lua_expanded, lua_path
    return r.eval(lua_expanded(lua_path(name)).decode(), len(keys), *keys, *args)


def utc_day(days_back=0):
    import datetime
    d = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=days_back)
    return d.strftime("%Y%m%d")


def spend_add(r, day, credits, type_, account, group):
    lua(r, "spend_add", [f"{PREFIX}:spend:{day}", f"{PREFIX}:spend:{day}:groups"],
        [credits, type_, account, group, 1000, 7776000])


def test_kie_spend_by_type_group_and_account(redis_server, r):
    env = base_env(redis_server.url)
    today, yday = utc_day(), utc_day(1)
    spend_add(r, today, 6, "outfit-change-v2", "main", "acme")
    spend_add(r, today, 4, "generate-image", "byok", "acme")
    spend_add(r, today, 6, "outfit-change-v2", "main", "")
    spend_add(r, yday, 2.5, "raw", "main", "beta")
    c = run_kie(["spend", "--json", "--days", "2"], env)
    assert c.returncode == 0, c.stderr
    out = json.loads(c.stdout)
    d0, d1 = out["days"]
    assert d0["day"] == f"{today[:4]}-{today[4:6]}-{today[6:]}"
    assert d0["total"] == 16 and d0["tasks"] == 3
    assert d0["types"] == {"outfit-change-v2": 12, "generate-image": 4}
    assert d0["accounts"] == {"main": 12, "byok": 4}
    assert d0["groups"] == {"acme": 10}
    assert d1["total"] == 2.5 and d1["groups"] == {"beta": 2.5}
    assert out["total"] == 18.5 and out["tasks"] == 4
    c = run_kie(["spend", "--by", "account"], env)
    assert c.returncode == 0, c.stderr
    lines = c.stdout.splitlines()
    assert lines[0].split() == ["DAY", "ACCOUNT", "CREDITS"]
    assert re.search(r"^\S+\s+main\s+12\.00$", c.stdout, re.M), c.stdout
    assert "7 day(s): 18.50 credits, 4 tasks" in c.stdout
    assert run_kie(["spend", "--by", "model"], env).returncode == 2
    assert run_kie(["spend", "--days", "91"], env).returncode == 2


def test_kie_budget_set_list_and_remove(redis_server, r):
    env = base_env(redis_server.url, KIE_DAILY_CREDIT_BUDGET=100)
    c = run_kie(["budget", "set", "acme", "40", "--json"], env)
    assert c.returncode == 0, c.stderr
    assert json.loads(c.stdout) == {"group": "acme", "budget": 40}
    assert r.hget(f"{PREFIX}:budget:group", "acme") == "40"
    today = utc_day()
    res = lua(r, "budget_reserve", [f"{PREFIX}:job:j1", f"{PREFIX}:budget:{today}",
                                    f"{PREFIX}:budget:group", f"{PREFIX}:budget:models",
                                    f"{PREFIX}:budget:open"],
              ["j1", today, "acme", EDIT, 4, 100, 1])
    assert res[:2] == [1, "reserved"]
    c = run_kie(["budget", "list", "--json"], env)
    assert c.returncode == 0, c.stderr
    out = json.loads(c.stdout)
    assert out["pool"] == {"budget": 100, "spent": 0, "reserved": 4}
    assert out["groups"] == [{"group": "acme", "budget": 40, "spent": 0, "reserved": 4}]
    c = run_kie(["budget", "list"], env)
    assert "pool: 0.00 spent + 4.00 reserved of 100 (KIE_DAILY_CREDIT_BUDGET), 4.0% used" \
        in c.stdout, c.stdout
    assert re.search(r"^acme\s+40\.00\s+0\.00\s+4\.00\s+10\.0%$", c.stdout, re.M), c.stdout
    assert run_kie(["budget", "set", "acme", "0"], env).returncode == 0
    assert r.hget(f"{PREFIX}:budget:group", "acme") is None
    assert run_kie(["budget", "set", "a|b", "5"], env).returncode == 2
    assert run_kie(["budget", "set", "acme", "-5"], env).returncode == 2
    assert run_kie(["budget", "set", "acme"], env).returncode == 2


# --- the worker: accounts, the balance gauge ---

def accounts_file(tmp, text):
    path = os.path.join(tmp, "accounts")
    with open(path, "w") as f:
        f.write(text)
    return path


def metrics(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_worker_runs_with_an_accounts_file_and_shares_one_balance_query(
        redis_server, r, fake_kie, workers, tmpdir_path):
    """Three workers, two accounts: each account's balance is asked of KIE once (the
    lease lasts a minute), and every worker's /metrics shows both; jobs run on the
    default (first) account."""
    account(fake_kie, "b", token="tok-b", credits=777)
    path = accounts_file(tmpdir_path, f"# pool accounts\nmain {TOKEN}\nbyok tok-b\n")
    ports = [free_port() for _ in range(3)]
    r.hset(f"{PREFIX}:budget:group", "acme", 50)
    r.hset(f"{PREFIX}:budget:{utc_day()}", mapping={"spent": 30, "reserved": 6,
                                                    "spent|acme": 20, "reserved|acme": 4})
    ws = [workers(redis_server.url, fake_kie.url, KIE_API_TOKEN="", KIE_ACCOUNTS_FILE=path,
                  KIE_HTTP_ADDR=f"127.0.0.1:{p}", KIE_DAILY_CREDIT_BUDGET=500)
          for p in ports]
    r.lpush(f"{PREFIX}:queue", json.dumps({"v": 1, "id": "acc-1", "type": "raw", "input": {
        "prompt": "a coat", "imageUrls": ["https://img.example.com/c.png"]}}))
    wait_for(lambda: r.lrange(f"{PREFIX}:results", 0, -1), 30, what="the job's event")
    want = {"main": 1000000 - 6, "byok": 777}

    def gauges(port):
        text = metrics(port)
        got = dict(re.findall(r'^kie_account_balance\{account="([^"]+)"\} (\S+)$', text, re.M))
        return {k: float(v) for k, v in got.items()}

    def all_known():
        seen = [gauges(p) for p in ports]
        return all(set(g) == {"main", "byok"} for g in seen) and seen
    seen = wait_for(all_known, 20, interval=0.1, what="every worker's balance gauges")
    assert all(g["byok"] == 777 for g in seen)
    # the budgets' gauges: the pool's and the group's, today's use
    # (the job's own 6 credits are spent on the pool: 30 + 6 + 6)
    text = metrics(ports[0])
    assert 'kie_budget_credits{group="(pool)"} 500.000' in text, text
    assert 'kie_budget_used_credits{group="(pool)"} 42.000' in text
    assert 'kie_budget_credits{group="acme"} 50.000' in text
    assert 'kie_budget_used_credits{group="acme"} 24.000' in text
    assert all(g["main"] in (1000000, want["main"]) for g in seen)
    acc = fake_kie.stats()["accounts"]
    # one query per account for the whole pool within the minute
    assert acc["b"]["credit_requests"] == 1 and acc["default"]["credit_requests"] == 1
    assert acc["default"]["creates_total"] == 1 and acc["b"]["creates_total"] == 0
    assert all(w.proc.poll() is None for w in ws)
    assert "tok-b" not in "".join(w.log() for w in ws)


def test_worker_refuses_a_bad_accounts_file(redis_server, fake_kie, tmpdir_path):
    import subprocess
    from conftest import BIN
    cases = [
        (f"main {TOKEN}\nbyok SECRET-B extra\n", "line 2: expected \"alias token\""),
        (f"main {TOKEN}\nmain SECRET-B\n", "line 2: the alias \"main\" is given twice"),
        ("b@d SECRET-B\n", "line 1: \"b@d\" is not an alias"),
    ]
    for text, want in cases:
        path = accounts_file(tmpdir_path, text)
        env = base_env(redis_server.url, fake_kie.url, tmpdir_path, KIE_ACCOUNTS_FILE=path)
        env.pop("KIE_API_TOKEN")
        p = subprocess.run([os.path.join(BIN, "kie-worker")], env=env, capture_output=True,
                           text=True, timeout=30)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert want in p.stderr and path in p.stderr, p.stderr
        assert "SECRET" not in p.stderr + p.stdout and TOKEN not in p.stderr + p.stdout
    # both KIE_API_TOKEN and the file: which one is meant?
    env = base_env(redis_server.url, fake_kie.url, tmpdir_path,
                   KIE_ACCOUNTS_FILE=accounts_file(tmpdir_path, f"main {TOKEN}\n"))
    p = subprocess.run([os.path.join(BIN, "kie-worker")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "are both set" in p.stderr, p.stderr
