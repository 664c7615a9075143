"""test_budget.py — the budget arithmetic (common/pool/lua/lib/budget.lua) and the spend
counters (lib/spend.lua), run through their scripts (budget_reserve, budget_settle,
budget_release, budget_heal, spend_add: each includes the shared file, expanded as
scripts/embed-lua.sh embeds it) against a real redis-server; and the key rule over the
expanded scripts (docs/protocol.md, "Credits, spend and budgets")."""
import glob
import os
import re

import pytest
import redis

from conftest import LUA_FILES, ROOT, keyed_call_problems as _problems, lua_expanded, lua_path

P = "{kie}"
TODAY, YDAY = "20250102", "20250101"
K_GROUPS, K_MODELS, K_OPEN = f"{P}:budget:group", f"{P}:budget:models", f"{P}:budget:open"
EDIT, BANANA = "google/nano-banana-edit", "google/nano-banana"


@pytest.fixture
def r(redis_server):
    c = redis.Redis(port=redis_server.port, decode_responses=True)
    yield c
    c.close()


def run(r, name, keys, args):
    return r.eval(lua_expanded(lua_path(name)).decode(), len(keys), *keys, *args)


def kday(day=TODAY):
    return f"{P}:budget:{day}"


def job(j):
    return f"{P}:job:{j}"


def reserve(r, j, group="", model=EDIT, configured=4, pool=0, day=TODAY, now=1000):
    res = run(r, "budget_reserve", [job(j), kday(day), K_GROUPS, K_MODELS, K_OPEN],
              [j, day, group, model, configured, pool, now])
    return [res[0], res[1]] + [float(x) for x in res[2:]]


def settle(r, j, credits, group="", model=EDIT):
    return float(run(r, "budget_settle", [job(j), kday(TODAY), kday(YDAY), K_GROUPS,
                                          K_MODELS, K_OPEN],
                     [j, TODAY, YDAY, group, model, "" if credits is None else credits]))


def release(r, j):
    return float(run(r, "budget_release", [job(j), kday(TODAY), kday(YDAY), K_GROUPS, K_OPEN],
                     [j, TODAY, YDAY]))


def day(r, d=TODAY):
    return {k: float(v) for k, v in r.hgetall(kday(d)).items()}


# --- the key rule, over the expanded text ---

INCLUDERS = [f for f in LUA_FILES if b"\n--#include " in b"\n" + open(f, "rb").read()]


@pytest.mark.parametrize("path", INCLUDERS, ids=[os.path.basename(f) for f in INCLUDERS])
def test_expanded_script_takes_every_key_from_keys(path):
    assert _problems(lua_expanded(path).decode()) == []


def test_the_expanded_key_check_can_fail():
    bad = ("local function f(a, b)\n  redis.call('GET', b)\nend\n"
           "f(KEYS[1], ARGV[1])\nredis.call('SET', KEYS[2], 1)\n")
    assert _problems(bad) == ["GET on 'b', not taken from KEYS"]
    assert _problems(bad.replace("ARGV[1]", "KEYS[3]")) == []


def test_every_lib_file_is_included_somewhere():
    libs = glob.glob(os.path.join(ROOT, "common", "*", "lua", "lib", "*.lua"))
    assert libs
    text = b"".join(open(f, "rb").read() for f in LUA_FILES)
    for lib in libs:
        assert b"--#include " + os.path.basename(lib).encode() in text, lib


# --- budget_reserve ---

def test_no_budget_reserves_nothing(r):
    assert reserve(r, "j1", group="g") == [1, "none", 0.0]
    assert r.hgetall(job("j1")) == {} and not r.exists(kday()) and not r.exists(K_OPEN)


def test_pool_budget_holds_and_a_reservation_is_remembered(r):
    for i in range(5):
        assert reserve(r, f"j{i}", pool=20, now=1000 + i)[:2] == [1, "reserved"]
    assert reserve(r, "j5", pool=20) == [0, "pool", 20.0, 20.0, 4.0]
    assert day(r) == {"reserved": 20.0}
    h = r.hgetall(job("j0"))
    assert h["budgetDay"] == TODAY and float(h["budgetEst"]) == 4 and h["budgetGroup"] == ""
    assert r.zscore(K_OPEN, f"{TODAY}|j0") == 1000
    assert 0 < r.ttl(kday()) <= 3 * 86400
    # a job that holds one keeps it: a re-pick does not reserve twice
    assert reserve(r, "j0", pool=20) == [1, "held", 4.0]
    assert day(r)["reserved"] == 20


def test_group_budget_holds_and_other_groups_are_unaffected(r):
    r.hset(K_GROUPS, "acme", 10)
    assert reserve(r, "a1", group="acme")[:2] == [1, "reserved"]
    assert reserve(r, "a2", group="acme")[:2] == [1, "reserved"]
    assert reserve(r, "a3", group="acme") == [0, "group", 8.0, 10.0, 4.0]
    assert reserve(r, "b1", group="other") == [1, "none", 0.0]
    assert r.hget(job("a1"), "budgetGroup") == "acme"
    assert day(r) == {"reserved": 8.0, "reserved|acme": 8.0}
    r.hset(K_GROUPS, "acme", 12)  # raising the budget lets the next one through
    assert reserve(r, "a3", group="acme")[:2] == [1, "reserved"]


def test_settle_replaces_the_estimate_with_the_cost(r):
    r.hset(K_GROUPS, "acme", 100)
    reserve(r, "a1", group="acme", pool=1000)
    assert settle(r, "a1", 6, group="acme") == 6
    assert day(r) == {"reserved": 0, "reserved|acme": 0, "spent": 6, "spent|acme": 6}
    assert r.hgetall(job("a1")) == {} and r.zcard(K_OPEN) == 0
    # KIE did not say what it cost: the estimate is counted
    reserve(r, "a2", group="acme", pool=1000)
    assert settle(r, "a2", None, group="acme") == 4
    assert day(r)["spent|acme"] == 10 and day(r)["reserved"] == 0
    # a failed task costs 0: the reservation is given back, nothing spent
    reserve(r, "a3", group="acme", pool=1000)
    assert settle(r, "a3", 0, group="acme") == 0
    assert day(r)["spent"] == 10 and day(r)["reserved"] == 0


def test_settle_without_reservation_still_counts_the_spend(r):
    r.hset(K_GROUPS, "acme", 100)
    assert settle(r, "x", 5, group="acme") == 5
    assert settle(r, "y", 3, group="nobudget") == 3
    assert day(r) == {"spent": 8, "spent|acme": 5}


def test_a_reservation_of_yesterday_settles_on_yesterday(r):
    reserve(r, "n1", pool=100, day=YDAY)
    assert day(r, YDAY) == {"reserved": 4}
    settle(r, "n1", 7)
    assert day(r, YDAY) == {"reserved": 0, "spent": 7} and not r.exists(kday())


def test_release_gives_the_reservation_back(r):
    r.hset(K_GROUPS, "acme", 4)
    reserve(r, "a1", group="acme")
    assert reserve(r, "a2", group="acme")[:2] == [0, "group"]
    assert release(r, "a1") == 4
    assert release(r, "a1") == 0  # twice: nothing more
    assert day(r) == {"reserved": 0, "reserved|acme": 0}
    assert reserve(r, "a2", group="acme")[:2] == [1, "reserved"]


def test_the_observed_average_corrects_the_estimate(r):
    for i in range(2):
        reserve(r, f"e{i}", pool=1000)
        settle(r, f"e{i}", 6)
        assert reserve(r, f"f{i}", pool=1000)[2] == 4  # fewer than 3 seen: the setting
        release(r, f"f{i}")
    reserve(r, "e2", pool=1000)
    settle(r, "e2", 9)
    assert reserve(r, "f9", pool=1000)[2] == 7  # (6 + 6 + 9) / 3
    # failures (0) do not pull the average down; other models are apart
    settle(r, "zz", 0)
    assert reserve(r, "f8", pool=1000)[2] == 7
    assert reserve(r, "b1", model=BANANA, configured=3, pool=1000)[2] == 3
    # n is halved at 200 observations: the average follows a price change
    for i in range(400):
        settle(r, f"p{i}", 10)
    n = int(r.hget(K_MODELS, f"{EDIT}|n"))
    assert n < 200 and 9.9 < reserve(r, "f7", pool=10**9)[-1] <= 10


# --- the overshoot bound ---

def test_overshoot_is_at_most_the_estimate_error_on_open_reservations(r):
    """Reservations made while spent + reserved + estimate <= budget; each task then costs
    more than its estimate (4 -> 6): the day ends at most budget + 2 x (reservations open
    at the last reservation)."""
    budget, spent, open_, last_open, n = 40, 0, [], 0, 0
    while True:
        res = reserve(r, f"j{n}", pool=budget, configured=4)
        if res[0] == 1:
            open_.append(f"j{n}")
            last_open = len(open_)
            n += 1
        elif open_:
            spent += settle(r, open_.pop(0), 6)  # one finishes, a slot frees (or not)
        else:
            break
    assert spent > budget  # it does overshoot (the estimate is 2 short)
    assert spent <= budget + 2 * last_open
    d = day(r)
    assert d["spent"] == spent and d["reserved"] == 0


# --- the heal step ---

def heal(r, j, now, age=60000, d=TODAY):
    return run(r, "budget_heal", [K_OPEN, job(j), kday(TODAY), kday(YDAY), K_GROUPS, K_MODELS],
               [f"{d}|{j}", j, TODAY, YDAY, now, age])


def test_heal_releases_or_settles_what_no_step_will(r):
    for j in ("fly", "done", "deadnotask", "gone", "young", "retry"):
        reserve(r, j, pool=1000, now=1000)
    r.hset(job("fly"), "state", "polling")
    r.hset(job("done"), mapping={"state": "completed", "taskId": "t1"})
    r.hset(job("deadnotask"), "state", "dead")
    r.hset(job("retry"), "state", "retry_wait")
    r.delete(job("gone"))  # expired: its fields went with it
    r.hset(job("young"), "state", "dead")
    r.zadd(K_OPEN, {f"{TODAY}|young": 60000})
    assert heal(r, "fly", 70000) == 0
    assert heal(r, "young", 70000) == 0        # younger than the age: not looked at
    assert heal(r, "done", 70000) == 2         # its settlement was lost: estimate spent
    assert heal(r, "deadnotask", 70000) == 1   # no task: released
    assert heal(r, "retry", 70000) == 1
    assert heal(r, "gone", 70000) == 3         # no hash: the member is dropped
    assert heal(r, "done", 70000) == 0         # done once
    d = day(r)
    assert d["spent"] == 4
    # left reserved: fly, young, and gone (its fields expired with the hash: the
    # member is dropped, the day's figure expires with the day)
    assert d["reserved"] == 12
    assert set(r.zrange(K_OPEN, 0, -1)) == {f"{TODAY}|fly", f"{TODAY}|young"}


# --- spend_add ---

def spend(r, credits, type_="edit", account="a", group="", gmax=3, ttl=7776000, d=TODAY):
    return run(r, "spend_add", [f"{P}:spend:{d}", f"{P}:spend:{d}:groups"],
               [credits, type_, account, group, gmax, ttl])


def test_spend_counters_by_type_account_and_group(r):
    spend(r, 4, "generate-image", "main", "g1")
    spend(r, 6, "outfit-change-v2", "main", "g1")
    spend(r, 6, "outfit-change-v2", "byok", "g2")
    spend(r, 0, "outfit-change-v2", "byok", "")
    h = {k: float(v) for k, v in r.hgetall(f"{P}:spend:{TODAY}").items()}
    assert h == {"total": 16, "tasks": 4, "type:generate-image": 4,
                 "type:outfit-change-v2": 12, "account:main": 10, "account:byok": 6}
    assert r.zrange(f"{P}:spend:{TODAY}:groups", 0, -1, withscores=True) == [
        ("g2", 6.0), ("g1", 10.0)]
    assert 90 * 86400 - 5 < r.ttl(f"{P}:spend:{TODAY}") <= 90 * 86400
    assert 90 * 86400 - 5 < r.ttl(f"{P}:spend:{TODAY}:groups") <= 90 * 86400


def test_spend_groups_are_bounded_and_add_up(r):
    amounts = {"a": 10, "b": 1, "c": 5, "d": 2, "e": 0.5, "f": 3}
    for g, c in amounts.items():
        spend(r, c, group=g, gmax=3)
    z = dict(r.zrange(f"{P}:spend:{TODAY}:groups", 0, -1, withscores=True))
    other = float(r.hget(f"{P}:spend:{TODAY}", "group:(other)"))
    assert len(z) == 3
    assert sum(z.values()) + other == pytest.approx(sum(amounts.values()))
    # the big ones are named, each figure at most what it spent
    assert {"a", "c"} <= set(z) and all(z[g] <= amounts[g] for g in z)
    for _ in range(2000):  # many groups, one day: still 3 members
        spend(r, 0.25, group=f"x{_}", gmax=3)
    assert r.zcard(f"{P}:spend:{TODAY}:groups") == 3
