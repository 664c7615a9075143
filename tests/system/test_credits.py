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
