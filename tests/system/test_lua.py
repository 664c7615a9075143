"""test_lua.py — each script of common/*/lua/ on its own, loaded from its file and run with
redis-py against a real redis-server, with the KEYS and ARGV its header declares; and a
static check that every script declares its keys (docs/protocol.md, "Scripts")."""
import hashlib
import itertools
import json
import os
import re
import subprocess
import time

import pytest
import redis

from conftest import LUA_FILES, keyed_call_problems, lua_expanded, lua_path, lua_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = LUA_FILES
P = "{kie}"  # a Cluster-style prefix: every key in one slot


def src(name):
    return lua_text(name)  # includes expanded: what Redis runs


@pytest.fixture
def r(redis_server):
    """bytes in, bytes out: scripts handle binary descriptors"""
    c = redis.Redis(port=redis_server.port)
    yield c
    c.close()


def run(r, name, keys, args):
    return r.eval(src(name), len(keys), *keys, *args)


def header(text):
    """The leading comment block (after an optional #! line)."""
    lines = text.split("\n")
    if lines[0].startswith("#!"):
        lines = lines[1:]
    out = []
    for ln in lines:
        if not ln.startswith("--"):
            break
        out.append(ln)
    return "\n".join(out)


def code(text):
    return "\n".join(ln for ln in text.split("\n")
                     if not ln.lstrip().startswith("--") and not ln.startswith("#!"))


# --- static checks: keys come from KEYS only, and every KEYS index used is declared ---

KEYED = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'\s*,\s*([^,)]+)")


def key_problems(name, text):
    probs = []
    h, c = header(text), code(text)
    if not re.search(r"^-- \S+\.lua — ", h, re.M):
        probs.append("no header line '-- <name>.lua — what it does'")
    if "Returns" not in h:
        probs.append("header does not say what it returns")
    declared = set(int(n) for n in re.findall(r"^-- KEYS\[(\d+)\]", h, re.M))
    ranged = re.search(r"^-- KEYS\[[^\]]*[^\d\]][^\]]*\]", h, re.M)  # KEYS[2..n+1] etc.
    for n in re.findall(r"KEYS\[(\d+)\]", c):
        if int(n) not in declared:
            probs.append(f"uses KEYS[{n}], which its header does not declare")
    if re.search(r"KEYS\[[^\]\d][^\]]*\]", c) and not ranged:
        probs.append("indexes KEYS by an expression its header does not declare")
    argv_used = set(int(n) for n in re.findall(r"ARGV\[(\d+)\]", c))
    argv_decl = set(int(n) for n in re.findall(r"^-- ARGV\[(\d+)\]", h, re.M))
    if argv_used - argv_decl and not re.search(r"^-- ARGV\[[^\]]*[^\d\]]", h, re.M) \
            and "ARGV" not in re.sub(r"ARGV\[\d+\]", "", h):
        probs.append(f"uses ARGV {sorted(argv_used - argv_decl)} its header does not declare")
    # a key built inside the script: string concatenation with ':' or a prefix argument
    # (a field name such as 'type:' .. t is no key: only what reaches a key position counts)
    firsts = [f.strip() for _, f in KEYED.findall(c)]
    built = [f for f in firsts if ".." in f and not f.startswith("KEYS[")] + \
        [rhs for lhs, rhs in re.findall(r"\b(\w+)\s*=\s*([^\n=][^\n]*\.\.[^\n]*)", c)
         if lhs in firsts and not rhs.strip().startswith("KEYS[")]
    if built:
        probs.append("builds a key name with '..' (pass it in KEYS)")
    # a key named by data: only KEYS[i] .. <one value>, KEYS[i] declared a prefix (its
    # header line says "prefix"), so the key keeps the prefix's hash tag and slot — as a
    # keyed command's first argument or a local such an argument is taken from
    prefixes = set(int(n) for n in re.findall(r"^-- KEYS\[(\d+)\][^\n]*\bprefix\b", h, re.M))
    named = [f.strip() for cmd, f in KEYED.findall(c) if ".." in f] + \
        [m.strip() for m in re.findall(r"\b\w+\s*=\s*(KEYS\[\d+\]\s*\.\.[^\n]*)", c)]
    for expr in named:
        m = re.fullmatch(r"KEYS\[(\d+)\]\s*\.\.\s*(ARGV\[\d+\]|[A-Za-z_]\w*(\[\w+\])?)", expr)
        if not m:
            probs.append(f"{expr!r}: a key named by data is KEYS[i] .. <one value>")
        elif int(m.group(1)) not in prefixes:
            probs.append(f"builds a key from KEYS[{m.group(1)}], which its header does not "
                         "declare a prefix")
    if re.search(r"prefix", c, re.I):
        probs.append("mentions a prefix in code (keys must come from KEYS)")
    # the first argument of every keyed command is KEYS[...], a local taken from KEYS, or
    # a parameter of a local function (an included one's too) every call passes such a value
    probs += keyed_call_problems(text)
    return probs


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_script_declares_its_keys(path):
    assert key_problems(os.path.basename(path), lua_text(path)) == []


def test_a_data_named_key_is_a_declared_prefix_and_one_value():
    """The one way a script may name a key by data (docs/architecture.md, "Redis
    scripts"): KEYS[i] .. value, KEYS[i] declared a prefix in the header."""
    head = ("-- x.lua — test\n-- KEYS[1] <p>:task:  prefix of task hashes\n"
            "-- KEYS[2] <p>:poll:due  zset\n-- ARGV[1] id\n-- Returns 1.\n")
    ok = head + ("local id = ARGV[1]\nredis.call('HGET', KEYS[1] .. id, 'x')\n"
                 "local t = KEYS[1] .. ARGV[1]\nredis.call('HGET', t, 'y')\nreturn 1\n")
    assert key_problems("x.lua", ok) == []
    for bad in ("redis.call('HGET', KEYS[2] .. ARGV[1], 'x')",     # not a prefix
                "redis.call('HGET', KEYS[1] .. ARGV[1] .. ':x', 'x')",  # more than a value
                "redis.call('HGET', KEYS[1] .. ARGV[1] .. ARGV[1], 'x')",
                "redis.call('HGET', 'kie:' .. KEYS[1], 'x')",
                "redis.call('HGET', 'kie:task:' .. ARGV[1], 'x')"):
        assert key_problems("x.lua", head + bad + "\nreturn 1\n") != [], bad


def test_key_check_can_fail():
    bad = ("-- bad.lua — builds a key\n-- KEYS[1] a\n-- ARGV[1] prefix\n-- Returns 1.\n"
           "redis.call('SET', ARGV[1] .. ':x', 1)\nredis.call('GET', KEYS[2])\nreturn 1\n")
    probs = key_problems("bad.lua", bad)
    assert any("KEYS[2]" in p for p in probs), probs
    assert any("builds a key" in p for p in probs), probs
    assert any("not taken from KEYS" in p for p in probs), probs


def test_embedded_scripts_are_the_files(tmp_path):
    """scripts/embed-lua.sh: each script's bytes as in its file (its --#include lines
    expanded) and its SHA1."""
    subprocess.run([os.path.join(ROOT, "scripts", "embed-lua.sh"), str(tmp_path)] + FILES,
                   check=True)
    gen = (tmp_path / "lua_scripts.c").read_text()
    for f in FILES:
        name = os.path.basename(f)[:-4]
        data = lua_expanded(f)
        m = re.search(r"static const char src_%s\[\] = \{(.*?)\};" % name, gen, re.S)
        assert m, name
        body = bytes(int(x, 16) for x in re.findall(r"0x([0-9a-f]{2})", m.group(1)))
        assert body == data + b"\0", name
        assert f'"{hashlib.sha1(data).hexdigest()}"' in gen, name
        assert f", {len(data)}, " in gen, name


# --- the steps, one by one ---

def now_ms(r):
    s, us = r.time()
    return s * 1000 + us // 1000


S = f"{P}:sched:default"


def route_keys(proc=f"{P}:processing:c#router", replies=()):
    k = [f"{P}:job:", f"{P}:recoveries", proc, f"{S}:ready", f"{S}:delayed",
         f"{S}:items", f"{S}:state", f"{S}:gtag", f"{S}:gcount", f"{S}:inflight",
         f"{S}:picked", f"{P}:group:weight", f"{S}:wake", f"{P}:cancel:", f"{P}:stats",
         f"{P}:results", f"{P}:queue", f"{P}:hist:m:1", f"{P}:hist:d:19700101"]  # i21
    return k + list(replies)


def route_args(cid="c#router", maxrec=3, more=0, jobs=(), account=""):
    """route.lua's ARGV: the common part, then per job (raw, jobId, reply index, prio,
    group, notBefore, own)."""
    a = [cid, 5000, maxrec, f"{P}:events", 100, 100, 3600, 600, len(jobs), more, 100000,
         account]
    for raw, jid, rk, prio, group, nb, own in jobs:
        a += [raw, jid, "raw", rk, "", "0", prio, group, nb, own, "m/model", "1.5"]
    return a


def route(r, jid, raw=None, prio=5, group="", nb=0, own="0", cid="c#router", reply=None,
          maxrec=3):
    """route.lua with a batch of one: its outcome tuple."""
    raw = raw or json.dumps({"v": 1, "id": jid})
    proc = f"{P}:processing:{cid}"
    r.lpush(proc, raw)
    out = run(r, "route", route_keys(proc, [reply] if reply else []),
              route_args(cid, maxrec, jobs=[(raw, jid, 1 if reply else 0, prio, group, nb,
                                             own)]))
    assert out[-1] == []  # nothing moved from the queue (none asked)
    return out[0]


PICK_KEYS = [f"{S}:ready", f"{S}:delayed", f"{S}:items", f"{S}:state", f"{S}:gtag",
             f"{S}:gcount", f"{S}:inflight", f"{S}:picked", f"{S}:parked",
             f"{S}:parkedGroups", f"{P}:group:weight", f"{P}:group:limit", f"{P}:pause",
             f"{P}:processing:c#0", f"{S}:wake", f"{P}:job:"]
PICK_TOKENS = itertools.count(1)


def pick(r, k=0, keep=False, tok=None):
    """pick.lua for runner c#0 (its list emptied first, as after a createTask, unless
    keep): picks and starts in one step."""
    if not keep:
        r.delete(f"{P}:processing:c#0")
    return run(r, "pick", PICK_KEYS, [k, "c#0", 5000, tok or next(PICK_TOKENS)])


def test_route_outcomes(r):
    """route.lua: one case per outcome (the ownership table, queued, delayed, cancelled)."""
    out = route(r, "q1")
    assert out[0] == b"queued" and r.zscore(f"{S}:ready", "q1") == 4e12 + 1000
    h = r.hgetall(f"{P}:job:q1")
    assert h[b"state"] == b"queued" and b"queuedAt" in h and b"raw" in h and b"owner" not in h
    assert r.llen(f"{P}:processing:c#router") == 0 and r.llen(f"{S}:wake") == 1
    # a second descriptor of a queued job: a duplicate, nothing written
    assert route(r, "q1")[0] == b"queued_already"
    r.delete(f"{P}:processing:c#router")
    # run again after its reply was lost: the copy is not held, nothing to do
    raw = json.dumps({"v": 1, "id": "q9"})
    assert run(r, "route", route_keys(), route_args(jobs=[(raw, "q9", 0, 5, "", 0, "0")]))[0][0] \
        == b"not_held"
    assert not r.exists(f"{P}:job:q9")
    # notBefore in the future: delayed
    out = route(r, "d1", nb=now_ms(r) + 60000)
    assert out[0] == b"delayed" and r.zscore(f"{S}:delayed", "d1") is not None
    assert r.hget(f"{P}:job:d1", "state") == b"delayed"
    # an early cancel: the job ends cancelled with its event, never queued
    r.set(f"{P}:cancel:c1", "1")
    out = route(r, "c1", reply=f"{P}:replies:u1")
    assert out[0] == b"cancelled" and r.hget(f"{P}:job:c1", "state") == b"cancelled"
    ev = json.loads(r.lindex(f"{P}:results", 0))
    assert ev["event"] == "job.cancelled" and ev["jobId"] == "c1" and ev["taskId"] is None
    assert json.loads(r.lindex(f"{P}:replies:u1", 0)) == ev
    assert not r.exists(f"{P}:cancel:c1") and r.zscore(f"{S}:ready", "c1") is None
    # the ownership table
    r.hset(f"{P}:job:f1", "state", "completed")
    assert route(r, "f1")[0] == b"finished"
    r.hset(f"{P}:job:t1", mapping={"state": "polling", "taskId": "tk"})
    assert route(r, "t1")[0] == b"has_task"
    r.hset(f"{P}:job:o1", mapping={"state": "creating", "owner": "x#0",
                                   "lease": now_ms(r) + 60000})
    assert route(r, "o1")[0] == b"owned"
    r.hset(f"{P}:job:u1", "state", "uncertain")
    assert route(r, "u1")[0] == b"uncertain"
    r.hset(f"{P}:job:k1", mapping={"state": "creating", "owner": "gone#0", "lease": 1})
    out = route(r, "k1")
    assert out[0] == b"takeover" and r.hget(f"{P}:job:k1", "owner") == b"c#router"
    raw = json.dumps({"v": 1, "id": "m1"})
    r.hset(f"{P}:recoveries", hashlib.sha1(raw.encode()).hexdigest(), 4)
    assert route(r, "m1", raw=raw)[0] == b"too_many_recoveries"
    out = route(r, "b1", own="1")
    assert out[0] == b"claimed" and r.hget(f"{P}:job:b1", "owner") == b"c#router"
    # picked by a runner that died: routed again, its group's in-flight slot comes back
    r.hset(f"{S}:picked", "p1", "g")
    r.hset(f"{S}:inflight", "g", 1)
    r.hset(f"{P}:job:p1", mapping={"state": "queued", "group": "g"})  # routed, then picked
    assert route(r, "p1", group="g")[0] == b"queued"
    assert not r.hexists(f"{S}:picked", "p1") and not r.hexists(f"{S}:inflight", "g")


def test_route_a_batch_and_move_the_next(r):
    """route.lua routes a batch in one call, in order, each descriptor as if alone (the
    second copy of a job is a duplicate of the first), then moves the next batch from the
    queue into the router's list, oldest first, stopping before an oversized one."""
    proc = f"{P}:processing:c#router"
    raws = [json.dumps({"v": 1, "id": i}) for i in ("b1", "b2", "b1")]
    for raw in raws:
        r.lpush(proc, raw)
    reply = f"{P}:replies:u9"
    r.set(f"{P}:cancel:b2", "1")  # b2 ends cancelled, its event onto its replyTo
    for i in range(3):
        r.lpush(f"{P}:queue", json.dumps({"v": 1, "id": f"n{i}"}))
    r.lpush(f"{P}:queue", "x" * 200)  # after n2: too long to move
    r.lpush(f"{P}:queue", "last")
    jobs = [(raws[0], "b1", 0, 5, "", 0, "0"), (raws[1], "b2", 1, 5, "", 0, "0"),
            (raws[2], "b1", 0, 5, "", 0, "0")]
    args = route_args(jobs=jobs, more=10)
    args[10] = 100  # the most bytes of one moved
    out = run(r, "route", route_keys(proc, [reply]), args)
    assert [o[0] for o in out[:3]] == [b"queued", b"cancelled", b"queued_already"]
    assert json.loads(r.lindex(reply, 0))["jobId"] == "b2"
    assert r.hget(f"{P}:job:b2", "replyTo") == reply.encode()
    assert out[3] == [json.dumps({"v": 1, "id": f"n{i}"}).encode() for i in range(3)]
    # the duplicate's copy stays for the router to dead-letter; the moved ones are its own
    assert r.lrange(proc, 0, -1) == [json.dumps({"v": 1, "id": f"n{i}"}).encode()
                                     for i in (2, 1, 0)] + [raws[2].encode()]
    assert r.lrange(f"{P}:queue", 0, -1) == [b"last", b"x" * 200]
    # run again after its reply was lost: nothing routed twice, nothing more moved than asked
    again = run(r, "route", route_keys(proc, [reply]), route_args(jobs=jobs[:2]))
    # (b1's identical copy is still held: a duplicate again, as the first run said)
    assert [o[0] for o in again[:2]] == [b"queued_already", b"not_held"] and again[2] == []


def test_pick_rule(r):
    """pick.lua: priority first, groups take turns (start-time fair queuing), a capped
    group's jobs are parked, every K-th pick serves a lower priority, delayed jobs come due,
    a pause picks nothing."""
    assert pick(r)[0] == b"empty"
    r.hset(f"{P}:group:limit", "big", 2)  # a cap: in-flight counts are kept
    for i in range(4):
        route(r, f"big{i}", group="big")
    route(r, "small0", group="small")
    route(r, "hi", prio=9)
    got = [pick(r)[1] for _ in range(3)]
    # the priority-9 job first; then the small group's first job before big's second
    assert got[0] == b"hi" and set(got[1:]) == {b"big0", b"small0"}
    assert r.llen(f"{P}:processing:c#0") == 1 and r.hget(f"{P}:job:hi", "inflight") == b""
    assert pick(r)[1] == b"big1"
    # big has 2 in flight (big0, big1 picked), its cap is 2: parked, nothing ready
    assert pick(r)[0] in (b"again", b"empty")
    assert r.zcard(f"{S}:parked") == 2 and r.zcard(f"{S}:ready") == 0
    r.hincrby(f"{S}:inflight", "big", -1)  # one of them ended
    out = pick(r)
    assert out[0] == b"picked" and out[1] == b"big2" and r.zcard(f"{S}:parked") == 1
    r.delete(f"{P}:group:limit")
    assert pick(r)[1] == b"big3"
    # the reserved share: every 2nd pick goes to the lower level
    for i in range(4):
        route(r, f"h{i}", prio=9)
    route(r, "low", prio=0)
    got = [pick(r, k=2)[1] for _ in range(3)]
    assert b"low" in got[:2], got
    # notBefore: delayed until due, then ready
    route(r, "later", nb=now_ms(r) + 300)
    r.delete(f"{S}:ready")
    out = pick(r)
    assert out[0] == b"empty" and int(out[1]) > now_ms(r)
    time.sleep(0.35)
    assert pick(r)[1] == b"later"
    route(r, "p")
    r.set(f"{P}:pause", "{}")
    assert pick(r) == [b"paused"]


def test_pick_drops_the_tags_of_groups_left_without_work(r):
    """pick.lua: once a group has nothing queued, its last tag (now at or below its level's
    virtual time) is dropped, so the tags kept grow with the groups that have work, not
    with every group ever seen; the turn is the same as if it had been kept."""
    for i in range(50):
        route(r, f"u{i}", group=f"user-{i}")
    route(r, "big0", group="big")
    route(r, "big1", group="big")
    assert r.hlen(f"{S}:gtag") == 51
    got = [pick(r)[1] for _ in range(52)]
    assert len(set(got)) == 52 and got[-1] == b"big1"
    # every group emptied: no tag kept at all
    assert r.hlen(f"{S}:gtag") == 0 and r.hlen(f"{S}:gcount") == 0
    # a group that comes back gets the level's virtual time plus its step, as it would
    # have with its old tag (at or below that time) kept
    v = int(r.hget(f"{S}:state", "v5"))
    route(r, "again", group="user-3")
    assert r.zscore(f"{S}:ready", "again") == 4e12 + v + 1000


def test_final_states_give_back_the_groups_in_flight_slot(r):
    """finalize, job_dead and uncertain_resolve end a started job's in-flight count."""
    infl = f"{P}:sched:default:inflight"
    r.hset(infl, "g", 3)
    r.hset(f"{P}:job:j1", mapping={"state": "polling", "inflight": "g"})
    r.hset(f"{P}:task:t1", "jobId", "j1")
    run(r, "finalize", finalize_keys(), ["{}", "completed", 1, f"{P}:events", 100, "1", "t1",
                                          60, 10, 60])
    assert r.hget(infl, "g") == b"2" and not r.hexists(f"{P}:job:j1", "inflight")
    run(r, "finalize", finalize_keys(), ["{}", "completed", 1, f"{P}:events", 100, "1", "t1",
                                          60, 10, 60])
    assert r.hget(infl, "g") == b"2"  # once
    proc = f"{P}:processing:c#0"
    r.lpush(proc, "raw")
    r.hset(f"{P}:job:j2", mapping={"owner": "c#0", "epoch": 1, "inflight": "g"})
    run(r, "job_dead", [proc, f"{P}:dead", f"{P}:job:j2", f"{P}:recoveries", f"{P}:stats",
                        f"{P}:results", infl], ["raw", "{}", "1", 1, "x", 60, "", f"{P}:events",
                                                100, 10, 1, "c#0", 10, 60])
    assert r.hget(infl, "g") == b"1"
    r.hset(f"{P}:job:j3", mapping={"state": "uncertain", "raw": "{}", "inflight": "g"})
    run(r, "uncertain_resolve", resolve_keys("j3"), ["j3", "1", "{}", "why", 5, 60, "",
                                                     f"{P}:events", 100, 100])
    assert not r.hexists(infl, "g")


def test_pick_starts_the_job_and_sched_put(r):
    """pick.lua starts the job it picks (fencing as the claim table; job_start.lua before),
    answers the same job when run again after a lost reply, and sched_put.lua gives it
    back: front at its old place, retry into delayed."""
    r.hset(f"{P}:group:limit", "g", 5)  # a cap: in-flight counts are kept
    route(r, "s1", group="g")
    route(r, "s1b", group="g")
    out = pick(r, tok=101)
    assert out[0] == b"picked" and out[1] == b"s1" and out[7] == b"started" and out[9] == 1
    h = r.hgetall(f"{P}:job:s1")
    assert h[b"state"] == b"creating" and h[b"owner"] == b"c#0" and h[b"inflight"] == b"g"
    assert r.hget(f"{S}:inflight", "g") == b"1" and not r.exists(f"{S}:picked")
    # run again after a lost reply (the same call): the same job, started, nothing else
    again = pick(r, keep=True, tok=101)
    assert again[:2] == [b"picked", b"s1"] and again[2] == out[2] and again[7] == b"started"
    assert again[6] == out[6] and again[8] == out[8] and again[9] == 1
    assert r.zscore(f"{S}:ready", "s1b") is not None and r.hget(f"{S}:inflight", "g") == b"1"
    # another call while the list holds a descriptor: route that leftover first
    assert pick(r, keep=True) == [b"held"]
    put_keys = [f"{P}:processing:c#0", f"{P}:job:s1", f"{S}:ready", f"{S}:delayed",
                f"{S}:items", f"{S}:state", f"{S}:gcount", f"{S}:inflight", f"{P}:stats",
                f"{S}:wake", f"{P}:recoveries"]
    raw, tag = out[2], out[6]
    assert run(r, "sched_put", put_keys, [raw, "s1", "c#0", "9", "front", 0, "", 1, 5, "g",
                                          out[5], tag]) == -1  # fenced: another epoch
    r.lpush(f"{P}:processing:c#0", raw)
    assert run(r, "sched_put", put_keys, [raw, "s1", "c#0", h[b"epoch"], "retry",
                                          now_ms(r) + 1000, "boom", 1, 5, "g", out[5], tag]) == 1
    h = r.hgetall(f"{P}:job:s1")
    assert h[b"state"] == b"retry_wait" and b"owner" not in h and b"inflight" not in h
    assert r.zscore(f"{S}:delayed", "s1") is not None and not r.hexists(f"{S}:inflight", "g")
    # a cancelled job is not started: the group's slot is not taken
    r.hset(f"{P}:job:s1b", "state", "cancelled")
    out = pick(r)
    assert out[1] == b"s1b" and out[7] == b"finished" and not r.hexists(f"{S}:inflight", "g")
    assert r.hget(f"{P}:job:s1b", "state") == b"cancelled"
    # one found creating without its owner: taken over (it goes uncertain next)
    route(r, "s3")
    r.hset(f"{P}:job:s3", mapping={"state": "creating", "owner": "gone#0", "lease": 1})
    out = pick(r, tok=303)
    assert out[1] == b"s3" and out[7] == b"takeover"
    assert r.hget(f"{P}:job:s3", "owner") == b"c#0"
    # its reply lost, the same call again: still a takeover (its last owner may have made
    # a task), never "started", which would send a second createTask
    again = pick(r, keep=True, tok=303)
    assert again[:2] == [b"picked", b"s3"] and again[7] == b"takeover", again


def fcall(r, name, jid, reply=None):
    keys = [f"{P}:job:{jid}", f"{P}:cancel:{jid}", f"{S}:ready", f"{S}:delayed", f"{S}:items",
            f"{S}:state", f"{S}:gcount", f"{P}:stats", f"{P}:results", f"{S}:parked",
            reply or f"{P}:job:{jid}"]
    return json.loads(r.execute_command("FCALL", name, len(keys), *keys, jid))


def test_functions_cancel_and_position(r):
    """kie_functions.lua: every answer of kie_cancel, and kie_position's position."""
    r.execute_command("FUNCTION", "LOAD", "REPLACE", src("kie_functions"))
    r.hset(f"{S}:state", "chan", f"{P}:events")
    for i in range(3):
        route(r, f"a{i}")
    pos = fcall(r, "kie_position", "a2")
    assert pos["state"] == "queued" and pos["position"] == 2 and pos["eta"] > now_ms(r)
    assert fcall(r, "kie_cancel", "nobody")["result"] == "remembered"
    assert r.ttl(f"{P}:cancel:nobody") > 0
    assert fcall(r, "kie_position", "nobody")["state"] == "cancel_remembered"
    out = fcall(r, "kie_cancel", "a1")
    assert out["result"] == "cancelled" and r.zscore(f"{S}:ready", "a1") is None
    assert fcall(r, "kie_position", "a2")["position"] == 1
    assert json.loads(r.lindex(f"{P}:results", 0))["event"] == "job.cancelled"
    assert fcall(r, "kie_cancel", "a1")["result"] == "finished"
    r.hset(f"{P}:job:a3", mapping={"state": "polling", "taskId": "t"})
    assert fcall(r, "kie_cancel", "a3")["result"] == "started"
    route(r, "a4", reply=f"{P}:replies:u")
    out = fcall(r, "kie_cancel", "a4")
    assert out["result"] == "reply_to_needed" and out["replyTo"] == f"{P}:replies:u"
    assert fcall(r, "kie_cancel", "a4", reply=f"{P}:replies:u")["result"] == "cancelled"
    assert r.llen(f"{P}:replies:u") == 1


def test_events_carry_the_jobs_times_and_a_finished_job_keeps_little(r):
    """emit.lua: every event gets queuedAt and startedAt (epoch ms) from the job hash when
    set, before finishedAt; finalize.lua leaves the job hash only what the guarantees and
    `kie job show` need (docs/protocol.md section 2), and no task hash."""
    job = f"{P}:job:j1"
    r.hset(job, mapping={"state": "polling", "taskId": "t1", "queuedAt": 1000,
                         "startedAt": 1500, "raw": "x" * 400, "jobMeta": '{"u":1}',
                         "owner": "c#0", "epoch": 3, "lease": 9, "replyTo": "", "attempts": 1,
                         "createdAt": 900, "type": "raw", "callback": "1",
                         "workerId": "c#0", "error": "e"})
    r.hset(f"{P}:task:t1", mapping={"jobId": "j1", "record": "y" * 600, "copy:0": "u"})
    ev = '{"v":1,"status":"completed","attempts":1,"finishedAt":"2026-01-01T00:00:00.000Z"}'
    assert run(r, "finalize", finalize_keys(), [ev, "completed", 2000, f"{P}:events", 100, "1",
                                                "t1", 60]) == 1
    got = json.loads(r.lindex(f"{P}:results", 0))
    assert got["queuedAt"] == 1000 and got["startedAt"] == 1500
    assert list(got)[-3:] == ["queuedAt", "startedAt", "finishedAt"]
    assert not r.exists(f"{P}:task:t1")
    assert set(r.hkeys(job)) == {b"state", b"taskId", b"attempts", b"createdAt", b"updatedAt",
                                 b"finishedAt", b"queuedAt", b"startedAt", b"type"}
    assert r.memory_usage(job) <= 300
    # a dead job's event too (job_dead.lua), and no times when the hash has none (or junk)
    r.hset(f"{P}:job:j2", mapping={"owner": "c#0", "epoch": 1, "queuedAt": "1x"})
    r.lpush(f"{P}:processing:c#0", "d")
    dev = '{"v":1,"status":"dead","finishedAt":"2026-01-01T00:00:00.000Z"}'
    run(r, "job_dead", [f"{P}:processing:c#0", f"{P}:dead", f"{P}:job:j2", f"{P}:recoveries",
                        f"{P}:stats", f"{P}:results"],
        ["d", "{}", "1", 5, "why", 60, dev, f"{P}:events", 100, 100, 1, "c#0", 10, 60])
    assert r.lindex(f"{P}:results", 0) == dev.encode()
    assert r.hget(f"{P}:job:j2", "finishedAt") == b"5"


def test_job_creating_is_fenced(r):
    job, pause = f"{P}:job:j1", f"{P}:pause"
    r.hset(job, mapping={"owner": "c#0", "epoch": 2, "state": "queued"})
    assert run(r, "job_creating", [job, pause], [123, "c#0", 2, ""]) == 1
    assert not r.hexists(job, "raw")
    # the descriptor is kept for its adopter, which rebuilds the pending record from it;
    # no pending record in the job hash
    assert run(r, "job_creating", [job, pause], [124, "c#0", 2, '{"v":1}']) == 2
    assert r.hget(job, "state") == b"creating" and r.hget(job, "attempts") == b"2"
    assert r.hget(job, "raw") == b'{"v":1}' and not r.hexists(job, "pending")
    assert run(r, "job_creating", [job, pause], [125, "c#0", 1, "x"]) == -1  # an older epoch
    assert run(r, "job_creating", [job, pause], [125, "c#9", 2, "x"]) == -1
    assert r.hget(job, "attempts") == b"2" and r.hget(job, "raw") == b'{"v":1}'
    # paused meanwhile: nothing written, the runner gives the job back
    r.set(pause, '{"kind":"operator"}')
    assert run(r, "job_creating", [job, pause], [126, "c#0", 2, "x"]) == -2
    assert r.hget(job, "attempts") == b"2" and r.hget(job, "updatedAt") != b"126"


def record_keys(job="j1", task="t1", cid="c#0"):
    return [f"{P}:job:{job}", f"{P}:task:{task}", f"{P}:uncertain", f"{P}:polling",
            f"{P}:stats", f"{P}:poll:due", f"{P}:processing:{cid}", f"{P}:recoveries"]


def test_record_task_with_handoff(r):
    raw = b'{"v":1,"id":"j1"}'
    r.lpush(f"{P}:processing:c#0", raw)
    r.hset(f"{P}:recoveries", hashlib.sha1(raw).hexdigest(), 1)
    r.hset(f"{P}:job:j1", mapping={"owner": "c#0", "epoch": 1, "lease": 9, "state": "creating"})
    args = ["t1", "j1", 1000, "raw", "", '{"taskId":"t1"}', "", 1, "h", 1100, raw, "c#0"]
    assert run(r, "record_task", record_keys(), args) == b"recorded"
    j = r.hgetall(f"{P}:job:j1")
    assert j[b"taskId"] == b"t1" and j[b"state"] == b"polling"
    assert b"owner" not in j and b"lease" not in j
    t = r.hgetall(f"{P}:task:t1")
    assert t[b"jobId"] == b"j1" and t[b"createdAt"] == b"1000" and t[b"record"]
    assert r.zscore(f"{P}:poll:due", "t1") == 1100
    assert r.llen(f"{P}:processing:c#0") == 0 and not r.hlen(f"{P}:recoveries")
    assert r.hget(f"{P}:stats", "tasks_created") == b"1"
    # again (a lost reply): the same, nothing counted twice, the due time kept
    assert run(r, "record_task", record_keys(), args) == b"same"
    assert r.hget(f"{P}:stats", "tasks_created") == b"1"
    assert r.zscore(f"{P}:poll:due", "t1") == 1100
    # a second task of the job: recorded as its duplicate and polled
    args2 = ["t2", "j1", 2000, "raw", "", "{}", "", 2, "0", 0, "", "c#0"]
    assert run(r, "record_task", record_keys(task="t2"), args2) == b"duplicate"
    assert r.hget(f"{P}:task:t2", "duplicateOf") == b"t1"
    assert r.lrange(f"{P}:polling", 0, -1) == [b"t2"]
    assert r.hget(f"{P}:job:j1", "taskId") == b"t1"


def test_record_task_adopts_an_uncertain_job(r):
    r.hset(f"{P}:job:j1", mapping={"state": "uncertain", "raw": "x", "uncertainUntil": 5})
    r.zadd(f"{P}:uncertain", {"j1": 5})
    args = ["t1", "j1", 1000, "raw", "", "", "", 1, "1", 0, "", "cb#0"]
    assert run(r, "record_task", record_keys(), args) == b"recorded"
    j = r.hgetall(f"{P}:job:j1")
    # the descriptor stays until the final state (finalize.lua drops it)
    assert j[b"raw"] == b"x" and b"uncertainUntil" not in j and j[b"state"] == b"polling"
    assert r.zcard(f"{P}:uncertain") == 0
    # straight into <p>:poll:due at ARGV[10]: a callback's ZADD XX LT then finds it
    assert r.zscore(f"{P}:poll:due", "t1") == 0 and r.llen(f"{P}:polling") == 0
    assert r.hget(f"{P}:stats", "adopted") == b"1"


def finalize_keys(task="t1", job="j1", reply=None):
    k = [f"{P}:task:{task}", f"{P}:job:{job}", f"{P}:results", f"{P}:poll:due", f"{P}:stats",
         f"{P}:sched:default:inflight", f"{P}:hist:m:1", f"{P}:hist:d:19700101"]  # i21
    return k + ([reply] if reply else [])


def test_finalize_once(r):
    r.hset(f"{P}:task:t1", mapping={"jobId": "j1"})
    r.zadd(f"{P}:poll:due", {"t1": 5})
    ps = r.pubsub()
    ps.subscribe(f"{P}:events")
    ps.get_message(timeout=1)
    ev = json.dumps({"jobId": "j1", "status": "completed"})
    reply = f"{P}:replies:u1"
    args = [ev, "completed", 777, f"{P}:events", 100, "1", "t1", 60, 1000, 3600]
    assert run(r, "finalize", finalize_keys(reply=reply), args) == 1
    assert r.lrange(f"{P}:results", 0, -1) == [ev.encode()]
    assert r.lrange(reply, 0, -1) == [ev.encode()]
    msg = ps.get_message(timeout=2)
    assert msg and msg["data"] == ev.encode()
    assert r.hget(f"{P}:job:j1", "state") == b"completed"
    # the job's own task hash goes: the job hash (final, taskId t1) is the once-only mark
    assert not r.exists(f"{P}:task:t1")
    assert r.hget(f"{P}:job:j1", "taskId") == b"t1"
    assert r.hget(f"{P}:job:j1", "finishedAt") == b"777"
    assert 0 < r.ttl(f"{P}:job:j1") <= 60
    assert r.zcard(f"{P}:poll:due") == 0
    assert r.hget(f"{P}:stats", "completed") == b"1"
    # twice: nothing more, and no task hash made again
    assert run(r, "finalize", finalize_keys(reply=reply), args) == 0
    assert r.llen(f"{P}:results") == 1 and r.llen(reply) == 1
    assert not r.exists(f"{P}:task:t1")
    # a replyTo of another type is skipped, the rest goes on
    r.hset(f"{P}:task:t2", "jobId", "j2")
    r.set(f"{P}:replies:bad", "x")
    out = run(r, "finalize", finalize_keys("t2", "j2", f"{P}:replies:bad"),
              [ev, "failed", 1, f"{P}:events", 100, "1", "t2", 60])
    assert out == 3 and r.llen(f"{P}:results") == 2
    # a wrong-typed key fails before the first write
    r.set(f"{P}:results", "oops")
    r.hset(f"{P}:task:t3", "jobId", "j3")
    with pytest.raises(Exception):
        run(r, "finalize", finalize_keys("t3", "j3"), [ev, "completed", 1, f"{P}:events", 100,
                                                      "1", "t3", 60])
    assert not r.hexists(f"{P}:task:t3", "finalizedAt")


def test_retry_and_dead(r):
    raw = b'{"v":1,"id":"j1"}'
    proc = f"{P}:processing:c#0"
    r.lpush(proc, raw)
    r.hset(f"{P}:job:j1", mapping={"owner": "c#0", "epoch": 3, "lease": 9})
    keys = [proc, f"{P}:delayed", f"{P}:job:j1", f"{P}:recoveries", f"{P}:stats"]
    assert run(r, "job_retry", keys, [raw, 5000, "HTTP 500", 100, "c#0", 3]) == 1
    assert r.zscore(f"{P}:delayed", raw) == 5000 and r.llen(proc) == 0
    j = r.hgetall(f"{P}:job:j1")
    assert j[b"state"] == b"retry_wait" and b"owner" not in j
    assert run(r, "job_retry", keys, [raw, 5000, "again", 100, "c#0", 3]) == 0  # not held
    # promoted when due
    assert run(r, "promote_delayed", [f"{P}:delayed", f"{P}:queue"], [4999]) == 0
    assert run(r, "promote_delayed", [f"{P}:delayed", f"{P}:queue"], [5000]) == 1
    assert r.lrange(f"{P}:queue", 0, -1) == [raw]
    # dead: entry, state, event; fenced when another consumer owns it
    r.lpush(proc, raw)
    r.hset(f"{P}:job:j1", mapping={"owner": "c#0", "epoch": 4})
    dkeys = [proc, f"{P}:dead", f"{P}:job:j1", f"{P}:recoveries", f"{P}:stats", f"{P}:results",
             f"{P}:sched:default:inflight"]
    ev = '{"status":"dead"}'
    out = run(r, "job_dead", dkeys, [raw, '{"reason":"bad"}', "1", 1, "bad", 60, ev,
                                     f"{P}:events", 100, 2, 4, "c#0"])
    assert out == 1
    assert r.lrange(f"{P}:dead", 0, -1) == [b'{"reason":"bad"}']
    assert r.hget(f"{P}:job:j1", "state") == b"dead" and r.ttl(f"{P}:job:j1") > 0
    assert r.lrange(f"{P}:results", 0, -1) == [ev.encode()]
    r.lpush(proc, raw)
    out = run(r, "job_dead", dkeys, [raw, "{}", "1", 1, "x", 60, "", f"{P}:events", 100, 2,
                                     4, "c#9"])
    assert out == -1 and r.llen(proc) == 0 and r.llen(f"{P}:dead") == 1
    # the dead letters keep the newest KIE_DEAD_MAX (2), counting what was dropped
    for i in range(3):
        r.lpush(proc, raw)
        run(r, "job_dead", dkeys, [raw, f"e{i}", "0", 1, "x", 60, "", f"{P}:events", 100, 2,
                                   0, "c#0"])
    assert r.lrange(f"{P}:dead", 0, -1) == [b"e2", b"e1"]
    assert r.hget(f"{P}:stats", "dead_dropped") == b"2"


def test_reply_lists_are_capped_and_expire(r):
    """Issue 17: a replyTo list was never trimmed nor expired. Each script that pushes an
    event there keeps the newest KIE_REPLY_MAX and sets KIE_REPLY_TTL_S again."""
    reply = f"{P}:replies:capped"
    for i in range(3):  # finalize.lua: ARGV[9] max, ARGV[10] TTL
        r.hset(f"{P}:task:f{i}", "jobId", f"jf{i}")
        assert run(r, "finalize", finalize_keys(f"f{i}", f"jf{i}", reply),
                   [f"f{i}", "completed", 1, f"{P}:events", 100, "1", f"f{i}", 60, 2,
                    100 + i]) == 1
    assert r.lrange(reply, 0, -1) == [b"f2", b"f1"] and 100 < r.ttl(reply) <= 102
    # job_dead.lua: ARGV[13] max, ARGV[14] TTL
    raw, proc = b'{"v":1,"id":"jd"}', f"{P}:processing:c#0"
    r.lpush(proc, raw)
    r.hset(f"{P}:job:jd", mapping={"owner": "c#0", "epoch": 1})
    dkeys = [proc, f"{P}:dead", f"{P}:job:jd", f"{P}:recoveries", f"{P}:stats",
             f"{P}:results", f"{P}:sched:default:inflight", f"{P}:hist:m:1",
             f"{P}:hist:d:19700101", reply]  # i21: the history counters' keys
    assert run(r, "job_dead", dkeys, [raw, "{}", "1", 1, "x", 60, "d", f"{P}:events", 100,
                                      100, 1, "c#0", 2, 500]) == 1
    assert r.lrange(reply, 0, -1) == [b"d", b"f2"] and 400 < r.ttl(reply) <= 500
    # uncertain_resolve.lua: ARGV[11] max, ARGV[12] TTL
    r.hset(f"{P}:job:ju", mapping={"state": "uncertain", "raw": raw})
    r.zadd(f"{P}:uncertain", {"ju": 1})
    assert run(r, "uncertain_resolve", resolve_keys("ju") + [reply],
               ["ju", "0", "{}", "why", 5, 60, "u", f"{P}:events", 100, 100, 1, 7000]) == 2
    assert r.lrange(reply, 0, -1) == [b"u"] and 6000 < r.ttl(reply) <= 7000


def test_admin_find_queued_reads_both_ends_of_a_long_queue(r):
    """kie job show of a job with no hash yet (issue 17): found in the queue or the delayed
    set by its decoded id, within the bound: all of a short queue, else half from each end."""
    q, d = f"{P}:queue", f"{P}:delayed"
    for i in range(7):  # s-0 is the next to be claimed, s-6 the newest
        r.lpush(q, json.dumps({"v": 1, "id": f"s-{i}", "type": "raw"}))
    r.lpush(q, '{"v":1,"id":"s-10x"}')  # holds the bytes of s-1, is not s-1
    r.zadd(d, {'{"v":1, "id" : "d-1"}': 1234})
    find = lambda job, cap: run(r, "admin_find_queued", [q, d], [job, cap])  # noqa: E731
    assert find("s-3", 100) == [b"queue", b"", 8, 4, 1, 0]
    assert find("s-1", 100) == [b"queue", b"", 8, 2, 1, 0]
    assert find("d-1", 100) == [b"delayed", b"1234", 8, 8, 1, 1]
    assert find("nope", 100) == [b"", b"", 8, 8, 1, 1]
    # a cap of 4: s-0, s-1 from the consuming end, s-10x, s-6 from the newest; s-3 is not read
    assert find("s-6", 4)[:4] == [b"queue", b"", 8, 4]
    assert find("s-1", 4)[:4] == [b"queue", b"", 8, 2]
    assert find("s-3", 4) == [b"", b"", 8, 4, 1, 1]


def test_limiter_acquire(r):
    log, state = "acct:{abc}:create", "acct:{abc}:create:state"
    granted = [run(r, "limiter_acquire", [log, state], [2, 1000, f"m{i}", 50, "1"])
               for i in range(3)]
    assert [g[0] for g in granted[:2]] == [1, 1]
    assert granted[2][0] == 0 and 0 < granted[2][1] <= 1000  # a reservation in the future
    assert r.zcard(log) == 3 and r.pttl(log) > 0
    # the reservation's holder asks again before its time: told to wait, not logged twice
    again = run(r, "limiter_acquire", [log, state], [2, 1000, "m2", 50, "0"])
    assert again[0] == 0 and r.zcard(log) == 3
    # a penalty blocks everyone and drops reservations not yet due
    pen = run(r, "limiter_penalize", [log, state], [500, 4000, "429"])
    assert pen == [500, 1]
    assert run(r, "limiter_penalize", [log, state], [500, 4000, "429"])[1] == 0  # joins it
    blocked = run(r, "limiter_acquire", [log, state], [2, 1000, "m9", 50, "1"])
    assert blocked[0] == 0 and blocked[2] == 1
    assert r.zscore(log, "m2") is None


def test_heartbeat_renews_owned_leases(r):
    hb0, hb1, job = f"{P}:worker:w#0", f"{P}:worker:w#1", f"{P}:job:j1"
    r.hset(job, mapping={"owner": "w#1", "epoch": 5, "lease": 1})
    r.hset(f"{P}:job:j2", mapping={"owner": "other#0", "epoch": 1, "lease": 1})
    keys = [f"{P}:workers", hb0, hb1, job, f"{P}:job:j2"]
    args = [3000, "info", 2, "w#0", 5, 1, "w#1", 4, 5]
    assert run(r, "heartbeat", keys, args) == 1
    assert r.get(hb0) == b"info" and 0 < r.pttl(hb1) <= 3000
    assert r.smembers(f"{P}:workers") == {b"w#0", b"w#1"}
    assert int(r.hget(job, "lease")) > now_ms(r)
    assert r.hget(f"{P}:job:j2", "lease") == b"1"  # not its job: untouched


def recover_keys(cids):
    k = [f"{P}:queue", f"{P}:callbacks", f"{P}:workers", f"{P}:recoveries", f"{P}:stats"]
    for c in cids:
        k += [f"{P}:worker:{c}", f"{P}:processing:{c}", f"{P}:callbacks:processing:{c}"]
    return k


def test_recover_dead_consumers_only(r):
    r.sadd(f"{P}:workers", "dead#0", "live#0")
    r.set(f"{P}:worker:live#0", "x", px=60000)
    r.lpush(f"{P}:processing:dead#0", "d1")
    r.lpush(f"{P}:processing:live#0", "l1")
    r.lpush(f"{P}:callbacks:processing:dead#0", "cb")
    big = "x" * 50
    r.lpush(f"{P}:processing:dead#0", big)
    out = run(r, "recover", recover_keys(["dead#0", "live#0"]), ["1", 10, "dead#0", "live#0"])
    assert out == [b"dead#0", 2]
    assert sorted(r.lrange(f"{P}:queue", 0, -1)) == sorted([b"d1", big.encode()])
    assert r.lrange(f"{P}:callbacks", 0, -1) == [b"cb"]
    assert r.lrange(f"{P}:processing:live#0", 0, -1) == [b"l1"]  # its heartbeat lives
    assert r.smembers(f"{P}:workers") == {b"live#0"}
    rec = r.hgetall(f"{P}:recoveries")
    assert rec == {hashlib.sha1(b"d1").hexdigest().encode(): b"1"}  # the big one uncounted
    assert r.hget(f"{P}:stats", "recovered") == b"2"
    # a clean exit: its own, uncounted, heartbeat deleted
    out = run(r, "recover", recover_keys(["live#0"]), ["0", 10, "live#0"])
    assert out == [b"live#0", 1] and not r.exists(f"{P}:worker:live#0")
    assert r.hget(f"{P}:stats", "recovered") == b"2"


def test_pool_idle_rechecks_the_workers(r):
    keys = [f"{P}:queue", f"{P}:polling", f"{P}:poll:due", f"{P}:delayed", f"{P}:workers",
            f"{P}:uncertain", f"{P}:callbacks", f"{P}:sched:default:items"]
    proc = [f"{P}:processing:a#0"]
    r.sadd(f"{P}:workers", "a#0")
    assert run(r, "pool_idle", keys + proc, ["1", "a#0"]) == 0
    r.lpush(f"{P}:processing:a#0", "x")
    assert run(r, "pool_idle", keys + proc, ["1", "a#0"]) == 1
    r.delete(f"{P}:processing:a#0")
    # an uncertain job is unfinished work; callbacks count only for their consumer
    r.zadd(f"{P}:uncertain", {"j1": 1})
    assert run(r, "pool_idle", keys + proc, ["0", "a#0"]) == 1
    r.delete(f"{P}:uncertain")
    r.lpush(f"{P}:callbacks", "{}")
    assert run(r, "pool_idle", keys + proc, ["1", "a#0"]) == 1
    assert run(r, "pool_idle", keys + proc, ["0", "a#0"]) == 0
    r.hset(f"{P}:sched:default:items", "j9", "5\t\t1\t1000\t{}")  # a scheduled job
    assert run(r, "pool_idle", keys + proc, ["0", "a#0"]) == 1
    r.delete(f"{P}:sched:default:items")
    r.sadd(f"{P}:workers", "b#0")  # joined after the list was read
    assert run(r, "pool_idle", keys + proc, ["0", "a#0"]) == -1


def test_poll_next(r):
    keys = [f"{P}:polling", f"{P}:poll:due", f"{P}:task:"]
    assert run(r, "poll_next", keys, [100, 500, 1000, 9000]) == [None, -1]
    r.lpush(f"{P}:polling", "t1")
    out = run(r, "poll_next", keys, [100, 1500, 1000, 9000])  # moved, due later
    assert out[0] is None and int(out[1]) == 1500 and r.llen(f"{P}:polling") == 0
    r.zadd(f"{P}:poll:due", {"t2": 1550})
    out = run(r, "poll_next", keys, [100, 0, 1600, 9000])
    assert out[0] == b"t1" and r.zscore(f"{P}:poll:due", "t1") == 9000  # leased
    # claimed and read in one step (a task moved from <p>:polling got its createdAt when
    # moved, a poll counted); next: the due time of the task after it
    assert int(out[1]) == 1550 and len(out) == 13
    assert out[5] == b"1000" and out[6] == b"1" and r.hget(f"{P}:task:t1", "polls") == b"1"
    # an id without a task hash (a job's own task finalized, put back by a race) is
    # dropped, not polled as a task nobody owns
    out = run(r, "poll_next", keys, [100, 0, 1600, 9000])
    assert out == [None, b"1600"] and r.zscore(f"{P}:poll:due", "t2") is None
    assert not r.exists(f"{P}:task:t2")
    r.zadd(f"{P}:poll:due", {"t2": 1550})
    r.hset(f"{P}:task:t2", mapping={"jobId": "j2", "record": "{}", "copyResult": "{}",
                                    "createdAt": 5})
    out = run(r, "poll_next", keys, [100, 0, 1600, 9000])
    assert out[0] == b"t2" and int(out[1]) == 9000 and out[2] == b"j2" and out[12] == b"1"



# --- a job whose createTask may have gone out ends through uncertain, at every exit, and
# its dead letter cannot be retried without allow_uncertain (docs/protocol.md section 3) ---

def uncertain_keys(job="j1", cid="c#0"):
    return [f"{P}:processing:{cid}", f"{P}:job:{job}", f"{P}:uncertain", f"{P}:stats"]


def resolve_keys(job="j1"):
    return [f"{P}:job:{job}", f"{P}:uncertain", f"{P}:queue", f"{P}:dead", f"{P}:stats",
            f"{P}:results", f"{P}:sched:default:inflight", f"{P}:hist:m:1",
            f"{P}:hist:d:19700101"]  # i21: the history keys


def test_may_have_task_mark_at_every_exit(r):
    raw = b'{"v":1,"id":"j1","type":"raw","input":{}}'
    job = f"{P}:job:j1"
    # the claim takes a job found creating over (test_job_claim); going uncertain marks it
    r.lpush(f"{P}:processing:c#0", raw)
    r.hset(job, mapping={"owner": "c#0", "epoch": 2, "state": "creating",
                         "pending": '{"taskId":null,"type":"raw"}'})
    assert run(r, "job_uncertain", uncertain_keys(), [raw, 1, "c#0", 2, 60000, "500", "j1"]) == 1
    assert r.hget(job, "mayHaveTask") == b"1" and r.hget(job, "raw") == raw
    # the window ends, policy dead: dead letter and event; the mark and the descriptor
    # stay on the job (a late callback adopts into it and rebuilds its record from raw; a
    # retry is refused)
    r.zadd(f"{P}:uncertain", {"j1": 1})
    entry = b'{"jobId":"j1","source":"uncertain","mayHaveTask":true}'
    out = run(r, "uncertain_resolve", resolve_keys(), ["j1", "0", entry, "may have been created",
                                                       5, 60, '{"status":"dead"}',
                                                       f"{P}:events", 100, 100])
    assert out == 2 and r.hget(job, "state") == b"dead"
    assert r.hget(job, "mayHaveTask") == b"1" and r.hexists(job, "pending")
    assert r.hget(job, "raw") == raw
    dkeys = [f"{P}:dead", f"{P}:queue", f"{P}:recoveries", f"{P}:stats", job]
    # a retry is refused whatever the entry's source says: the job hash carries the mark
    recov = b'{"jobId":"j1","source":"recovery"}'
    r.lpush(f"{P}:dead", recov)
    out = run(r, "admin_dead_retry", dkeys, [recov, raw, "0", "0", "recovery", 6, "0"])
    assert out[0] == b"refused" and b"--allow-uncertain" in out[1]
    # ... and the entry's own mark, when the job hash is gone (expired)
    out = run(r, "admin_dead_retry", dkeys[:4], [entry, raw, "0", "0", "uncertain", 6, "1"])
    assert out[0] == b"refused"
    other = b'{"jobId":"j9","source":"kie","mayHaveTask":true}'
    r.lpush(f"{P}:dead", other)
    out = run(r, "admin_dead_retry", dkeys[:4], [other, raw, "0", "0", "kie", 6, "1"])
    assert out[0] == b"refused" and r.llen(f"{P}:queue") == 0
    # told so, it goes: the mark and the pending record leave with the retry
    out = run(r, "admin_dead_retry", dkeys, [recov, raw, "1", "0", "recovery", 7, "0"])
    assert out == [b"retried", b""]
    assert not r.hexists(job, "mayHaveTask") and not r.hexists(job, "pending")
    # a task recorded on the job ends the mark
    r.hset(job, "mayHaveTask", "1")
    args = ["t1", "j1", 1000, "raw", "", '{"taskId":"t1"}', "", 1, "1", 0, "", "cb#0"]
    assert run(r, "record_task", record_keys(), args) == b"recorded"
    assert not r.hexists(job, "mayHaveTask")
    # a dead letter written by a runner (job_dead.lua) leaves the mark on the job hash
    r.delete(job)
    r.lpush(f"{P}:processing:c#0", raw)
    r.hset(job, mapping={"owner": "c#0", "epoch": 4, "mayHaveTask": "1"})
    dk = [f"{P}:processing:c#0", f"{P}:dead", job, f"{P}:recoveries", f"{P}:stats",
          f"{P}:results"]
    assert run(r, "job_dead", dk, [raw, '{"mayHaveTask":true}', "1", 1, "x", 60, "",
                                   f"{P}:events", 100, 100, 4, "c#0"]) == 1
    assert r.hget(job, "state") == b"dead" and r.hget(job, "mayHaveTask") == b"1"


def test_adoption_takes_the_jobs_pending_record_and_a_dead_job_gets_no_event(r):
    job = f"{P}:job:j1"
    pending = '{"taskId":null,"jobId":"j1","type":"raw","prompt":"p"}'
    r.hset(job, mapping={"state": "dead", "pending": pending, "mayHaveTask": "1",
                         "error": "may have been created"})
    r.expire(job, 1000)
    # adopted (no record of its own): the job's pending record; the job stays dead, its
    # task set (a dead retry is refused), the mark gone
    args = ["t1", "j1", 1000, "raw", "", "", "", 1, "1", 0, "", "cb#0"]
    assert run(r, "record_task", record_keys(), args) == b"dead"
    j = r.hgetall(job)
    assert j[b"state"] == b"dead" and j[b"taskId"] == b"t1" and b"mayHaveTask" not in j
    assert r.hget(f"{P}:task:t1", "record") == pending.encode()
    assert r.zscore(f"{P}:poll:due", "t1") == 0
    # finalized: no job.completed after the job.dead, the job untouched but its pending
    # record dropped (the record is in the store now)
    ev = '{"event":"job.completed"}'
    out = run(r, "finalize", finalize_keys(), [ev, "completed", 777, f"{P}:events", 100, "1",
                                               "t1", 60])
    assert out == 4
    assert r.llen(f"{P}:results") == 0 and r.hget(job, "state") == b"dead"
    assert r.hget(f"{P}:task:t1", "finalizedAt") == b"777" and not r.hexists(job, "pending")
    # its task hash is trimmed to its once-only mark, with the TTL
    assert set(r.hkeys(f"{P}:task:t1")) == {b"finalizedAt", b"status", b"jobId", b"createdAt"}
    assert 0 < r.ttl(f"{P}:task:t1") <= 60
    assert r.hget(f"{P}:stats", "dead_tasks_collected") == b"1"
    assert run(r, "finalize", finalize_keys(), [ev, "completed", 778, f"{P}:events", 100, "1",
                                                "t1", 60]) == 0
    # a live job's own task: its pending record goes with its finalization
    r.hset(f"{P}:job:j2", mapping={"state": "polling", "taskId": "t2", "pending": pending})
    r.hset(f"{P}:task:t2", "jobId", "j2")
    out = run(r, "finalize", finalize_keys("t2", "j2"), [ev, "completed", 779, f"{P}:events",
                                                        100, "1", "t2", 60])
    assert out == 1 and r.llen(f"{P}:results") == 1
    assert not r.hexists(f"{P}:job:j2", "pending")


def test_callback_lookup_costs_no_write_but_a_count(r):
    def look(task, job):
        keys = [f"{P}:task:{task}", f"{P}:job:{job or '-'}", f"{P}:stats"]
        return run(r, "callback_lookup", keys, ["1" if job else "0", task, job or ""])
    # forged: an unknown task naming no job, or a job that does not exist: counted, and no
    # task hash is made for it
    assert look("forged1", None) == [b"unowned", None, b"0"]
    assert look("forged2", "nobody") == [b"unowned", None, b"0"]
    assert not r.exists(f"{P}:task:forged1") and not r.exists(f"{P}:task:forged2")
    assert r.hget(f"{P}:stats", "callbacks_unowned") == b"2"
    # a job that exists: confirm with KIE first
    r.hset(f"{P}:job:victim", "state", "uncertain")
    assert look("t9", "victim") == [b"adopt", None, b"0"]
    # a recorded task, finalized or not
    r.hset(f"{P}:task:t1", mapping={"jobId": "j1"})
    assert look("t1", "someone") == [b"recorded", b"j1", b"0"]
    r.hset(f"{P}:task:t1", "finalizedAt", 5)
    assert look("t1", None) == [b"recorded", b"j1", b"1"]
    assert r.hget(f"{P}:stats", "callbacks_unowned") == b"2"
    # a job's own task finalized: no task hash left, the job hash says it (no adoption,
    # no recordInfo); another task of that job is still one to confirm
    r.hset(f"{P}:job:j5", mapping={"state": "completed", "taskId": "t5"})
    assert look("t5", "j5") == [b"recorded", b"j5", b"1"]
    assert look("t6", "j5") == [b"adopt", None, b"0"]
    assert not r.exists(f"{P}:task:t5")

# --- the operator's scripts (kie stats, job show, dead retry/purge) and the metrics ---

def test_admin_rates_counts_the_window(r):
    res, dead = f"{P}:results", f"{P}:dead"
    # newest first: LPUSH the oldest first
    for at, st in [("2026-01-01T00:00:00.000Z", "completed"),  # before the cutoff
                   ("2026-01-02T00:00:01.000Z", "failed"),
                   ("2026-01-02T00:00:02.000Z", "dead"),
                   ("2026-01-02T00:00:03.000Z", "completed"),
                   ("2026-01-02T00:00:04.000Z", "completed")]:
        r.lpush(res, json.dumps({"jobId": "j", "status": st, "finishedAt": at, "meta": {}},
                                separators=(",", ":")))
    # a dead letter's own failedAt is its last one; the one inside raw is escaped
    raw = json.dumps({"failedAt": "2030-01-01T00:00:00.000Z"}, separators=(",", ":"))
    for at in ["2026-01-01T00:00:00.000Z", "2026-01-02T00:00:05.000Z"]:
        r.lpush(dead, json.dumps({"raw": raw, "failedAt": at}, separators=(",", ":")))
    r.lpush(dead, json.dumps({"raw": raw, "failedAt": "2025-01-01T00:00:00.000Z"},
                             separators=(",", ":")))  # newest but old: stops at once
    out = run(r, "admin_rates", [res, dead], ["2026-01-02T00:00:00.000Z", 100])
    assert out == [2, 1, 1, 4, 0, 0, 0, 0]
    r.lpop(dead)
    out = run(r, "admin_rates", [res, dead], ["2026-01-02T00:00:00.000Z", 100])
    assert out[4:6] == [1, 1]
    # the cap: 3 read, the 3rd still in the window
    out = run(r, "admin_rates", [res, dead], ["2026-01-02T00:00:00.000Z", 3])
    assert out == [2, 0, 1, 3, 1, 1, 1, 0]
    assert run(r, "admin_rates", [f"{P}:none", f"{P}:none2"], ["x", 10]) == [0] * 8


def test_admin_find(r):
    key = f"{P}:results"
    for i in range(450):
        r.lpush(key, json.dumps({"jobId": "a" if i % 100 == 0 else f"b{i}", "n": i},
                                separators=(",", ":")))
    out = run(r, "admin_find", [key], ['"jobId":"a"', 10000, 10])
    assert [json.loads(e)["n"] for e in out] == [400, 300, 200, 100, 0]  # newest first
    assert len(run(r, "admin_find", [key], ['"jobId":"a"', 10000, 2])) == 2
    # the scan cap: only the newest 120 entries are looked at
    assert [json.loads(e)["n"] for e in run(r, "admin_find", [key],
                                            ['"jobId":"a"', 120, 10])] == [400]
    assert run(r, "admin_find", [key], ['"jobId":"zz"', 10000, 10]) == []


def dead_keys(job="j1"):
    return [f"{P}:dead", f"{P}:queue", f"{P}:recoveries", f"{P}:stats", f"{P}:job:{job}"]


def test_admin_dead_retry(r):
    raw = b'{"v":1,"id":"j1","type":"raw","input":{}}'
    entry = b'{"jobId":"j1","raw":"x","failedAt":"t"}'
    keys = dead_keys()
    sha = hashlib.sha1(raw).hexdigest()
    r.lpush(f"{P}:dead", entry)
    r.hset(f"{P}:job:j1", mapping={"state": "dead", "attempts": 3, "owner": "c#0",
                                   "error": "e"})
    r.expire(f"{P}:job:j1", 1000)
    r.hset(f"{P}:recoveries", sha, 2)
    # dry run: nothing written
    assert run(r, "admin_dead_retry", keys, [entry, raw, "0", "1", "dead", 5, "0"]) == \
        [b"would_retry", b""]
    assert r.llen(f"{P}:dead") == 1 and r.llen(f"{P}:queue") == 0
    # a job with a task is refused: its result comes from that task
    r.hset(f"{P}:job:j1", "taskId", "t9")
    out = run(r, "admin_dead_retry", keys, [entry, raw, "0", "0", "dead", 5, "0"])
    assert out[0] == b"refused" and b"t9" in out[1] and r.llen(f"{P}:dead") == 1
    r.hdel(f"{P}:job:j1", "taskId")
    # an uncertain entry needs allow_uncertain
    out = run(r, "admin_dead_retry", keys, [entry, raw, "0", "0", "uncertain", 5, "0"])
    assert out[0] == b"refused" and b"--allow-uncertain" in out[1]
    # retried: back on the queue, the hash reset, recoveries cleared, counted
    out = run(r, "admin_dead_retry", keys, [entry, raw, "1", "0", "uncertain", 5, "0"])
    assert out == [b"retried", b""]
    assert r.llen(f"{P}:dead") == 0 and r.lrange(f"{P}:queue", 0, -1) == [raw]
    h = r.hgetall(f"{P}:job:j1")
    assert h[b"state"] == b"queued" and h[b"attempts"] == b"0" and h[b"retriedAt"] == b"5"
    assert b"owner" not in h and b"error" not in h and r.ttl(f"{P}:job:j1") == -1
    assert not r.hexists(f"{P}:recoveries", sha)
    assert r.hget(f"{P}:stats", "dead_retried") == b"1"
    # gone: the entry was taken meanwhile (and no dead list at all)
    out = run(r, "admin_dead_retry", keys, [entry, raw, "0", "0", "dead", 6, "0"])
    assert out[0] == b"gone"
    r.lpush(f"{P}:dead", b"other")
    out = run(r, "admin_dead_retry", keys, [entry, raw, "0", "0", "dead", 6, "0"])
    assert out == [b"gone", b"the entry is no longer in the dead letters"]
    # back in the pool or finished: refused
    r.lpush(f"{P}:dead", entry)
    for st in (b"polling", b"completed"):
        r.hset(f"{P}:job:j1", "state", st)
        out = run(r, "admin_dead_retry", keys, [entry, raw, "0", "0", "dead", 7, "0"])
        assert out[0] == b"refused" and st in out[1]
    # no job id: 4 keys, retried without a job hash
    out = run(r, "admin_dead_retry", keys[:4], [entry, raw, "0", "0", "dead", 8, "0"])
    assert out == [b"retried", b""] and r.llen(f"{P}:queue") == 2
    # a key of the wrong type is an error, before any write
    r.lpush(f"{P}:dead", entry)
    r.set(f"{P}:stats", "x")
    with pytest.raises(redis.ResponseError, match="not a hash"):
        run(r, "admin_dead_retry", keys[:4], [entry, raw, "0", "0", "dead", 9, "0"])
    assert r.llen(f"{P}:dead") == 2


def test_admin_dead_purge(r):
    keys = [f"{P}:dead", f"{P}:stats"]
    r.lpush(keys[0], b"e1", b"e2")
    assert run(r, "admin_dead_purge", keys, [b"e1", "1"]) == [b"would_purge", b""]
    assert r.llen(keys[0]) == 2
    assert run(r, "admin_dead_purge", keys, [b"e1", "0"]) == [b"purged", b""]
    assert r.lrange(keys[0], 0, -1) == [b"e2"] and r.hget(keys[1], "dead_purged") == b"1"
    assert run(r, "admin_dead_purge", keys, [b"e1", "0"])[0] == b"gone"
    r.set(keys[1], "x")
    with pytest.raises(redis.ResponseError, match="not a hash"):
        run(r, "admin_dead_purge", keys, [b"e2", "0"])
    assert r.llen(keys[0]) == 1


def scrape_keys(cids):
    keys = [f"{P}:{k}" for k in ("queue", "delayed", "uncertain", "dead", "callbacks",
                                 "polling", "poll:due", "pause")]
    for c in cids:
        keys += [f"{P}:processing:{c}", f"{P}:worker:{c}"]
    return keys


def test_metrics_scrape_counts(r):
    cids = ["a#0", "a#1", "b#0", "c#0"]
    r.lpush(f"{P}:queue", "q1", "q2", "q3")
    r.rpush(f"{P}:queue", "the oldest entry")
    r.zadd(f"{P}:delayed", {"d1": 1, "d2": 2})
    r.zadd(f"{P}:uncertain", {"u1": 1})
    r.lpush(f"{P}:dead", "x", "y", "z")
    r.lpush(f"{P}:callbacks", "cb")
    r.lpush(f"{P}:polling", "t1", "t2")
    r.zadd(f"{P}:poll:due", {"t3": 1})
    r.lpush(f"{P}:processing:a#0", "p")
    r.lpush(f"{P}:processing:a#1", "p", "p")
    r.lpush(f"{P}:processing:c#0", "p")
    r.set(f"{P}:worker:a#0", "info")
    r.set(f"{P}:worker:a#1", "info")  # not a process's first consumer: not a worker
    r.set(f"{P}:worker:b#0", "info")  # c#0 has no heartbeat: dead
    r.set(f"{P}:pause", '{"kind":"operator"}')
    out = run(r, "metrics_scrape", scrape_keys(cids), [5, "1"] + cids)
    assert out == [4, 4, 2, 3, 1, 3, 1, 2, b'{"kind":"operator"}', 16, b"the o"]
    # consumers not listed are not counted
    out = run(r, "metrics_scrape", scrape_keys(cids[:1]), [5, "1"] + cids[:1])
    assert out[1] == 1 and out[7] == 1
    # wrong types read -1 (or "?" for the pause), not an error
    r.delete(f"{P}:queue", f"{P}:polling", f"{P}:pause", f"{P}:processing:a#0")
    r.set(f"{P}:queue", "s")
    r.hset(f"{P}:polling", "f", 1)
    r.hset(f"{P}:pause", "f", 1)
    r.set(f"{P}:processing:a#0", "s")
    out = run(r, "metrics_scrape", scrape_keys(cids), [5, "1"] + cids)
    assert out == [-1, 3, 2, -1, 1, 3, 1, 2, b"?", -1, b""]
    # <p>:workers of the wrong type: no consumers, processing and workers alive -1
    out = run(r, "metrics_scrape", scrape_keys([]), [5, "0"])
    assert out[1] == -1 and out[7] == -1 and out[2] == 2
    # an empty pool
    r.flushdb()
    assert run(r, "metrics_scrape", scrape_keys([]), [5, "1"]) == \
        [0, 0, 0, 0, 0, 0, 0, 0, b"", -1, b""]


def test_accounts_prune_keeps_a_structure_that_holds_anything(r):
    """A name goes from <p>:accounts only while its structure holds no item, nothing over
    budget and nothing delayed; a name not in the set stays absent (0)."""
    def keys(a):
        return [f"{P}:accounts", f"{P}:sched:{a}:items", f"{P}:sched:{a}:overBudget",
                f"{P}:sched:{a}:delayed"]
    r.sadd(f"{P}:accounts", "old", "busy", "late", "over")
    r.hset(f"{P}:sched:busy:items", "j1", "5\tg\t1\t1\t{}")
    r.zadd(f"{P}:sched:late:delayed", {"j2": 1})
    r.zadd(f"{P}:sched:over:overBudget", {"j3": 1})
    assert [run(r, "accounts_prune", keys(a), [a]) for a in ("busy", "late", "over")] == \
        [0, 0, 0]
    assert run(r, "accounts_prune", keys("old"), ["old"]) == 1
    assert run(r, "accounts_prune", keys("old"), ["old"]) == 0
    assert r.smembers(f"{P}:accounts") == {b"busy", b"late", b"over"}


# --- the worker runs them by EVALSHA and reloads a Redis that lost them ---

def test_worker_reloads_scripts_after_script_flush(redis_server, fake_kie, workers):
    """SCRIPT FLUSH (as after a restart or failover) makes every EVALSHA answer NOSCRIPT;
    the worker sends the script once with EVAL and goes on: no job is lost or created
    twice, and the scripts are cached again."""
    from conftest import wait_for
    c = redis.Redis(port=redis_server.port, decode_responses=True)
    workers(redis_server.url, fake_kie.url)

    def push(ids):
        for i in ids:
            c.lpush("kie:queue", json.dumps({"v": 1, "id": i, "type": "raw",
                                             "input": {"prompt": "p",
                                                       "imageUrl": "https://a.b/c.png"}}))
    push([f"a{i}" for i in range(5)])
    wait_for(lambda: c.llen("kie:results") == 5, 30, what="5 events")
    loaded = {f: hashlib.sha1(lua_text(f).encode()).hexdigest() for f in FILES
              if not lua_text(f).startswith("#!lua name=")}
    seen = c.script_exists(*loaded.values())
    assert any(seen), "the worker loaded no script"
    c.script_flush()
    assert not any(c.script_exists(*loaded.values()))
    push([f"b{i}" for i in range(5)])
    wait_for(lambda: c.llen("kie:results") == 10, 30, what="5 more events")
    byname = dict(zip(loaded, c.script_exists(*loaded.values())))
    for name in ("route", "pick", "record_task", "poll_next", "finalize",
                 "limiter_acquire"):
        assert byname[lua_path(name)], name
    stats = fake_kie.stats()
    assert stats["creates_total"] == 10
    evs = [json.loads(e) for e in c.lrange("kie:results", 0, -1)]
    assert sorted(e["jobId"] for e in evs) == sorted([f"a{i}" for i in range(5)] +
                                                     [f"b{i}" for i in range(5)])
    assert all(e["status"] == "completed" for e in evs)


def test_every_counter_key_a_finalization_creates_expires(r):
    """The history, spend and budget counters set their expiry when a write creates a
    field (EXPIRE NX, not on every write): every key the first finalization creates has
    one, and so does a key whose first write came from a later, second task (a new
    group, a new bucket)."""
    day = "20261206"
    cost = [f"{P}:budget:{day}", f"{P}:budget:20261205", f"{P}:budget:group",
            f"{P}:budget:models", f"{P}:budget:open", f"{P}:spend:{day}",
            f"{P}:spend:{day}:groups"]

    def fin(task, job, credits, group):
        r.hset(f"{P}:job:{job}", mapping={"state": "polling", "taskId": task, "type": "raw",
                                          "group": group, "startedAt": 1000, "model": "m"})
        r.hset(f"{P}:task:{task}", "jobId", job)
        keys = finalize_keys(task, job) + [""] + cost
        args = ['{"finishedAt":1}', "completed", 1000 + 1500 * len(task), f"{P}:events", 100,
                "1", task, 60, 10, 60, credits, day, "20261205", "raw", "acct", 1000, 7776000,
                job]
        assert run(r, "finalize", keys, args) == 1

    fin("t1", "j1", "2.5", "g1")
    created = [f"{P}:hist:m:1", f"{P}:hist:d:19700101", f"{P}:budget:{day}",
               f"{P}:spend:{day}", f"{P}:spend:{day}:groups"]
    for k in created:
        assert r.exists(k) and r.ttl(k) > 0, (k, r.ttl(k))
    # keys a later task's write creates: the groups set and the minute hash gone, a task
    # whose cost KIE did not say (no credits written: the minute hash is made by the
    # counts alone), then one with credits and a new group
    r.delete(f"{P}:spend:{day}:groups", f"{P}:hist:m:1")
    fin("t22", "j2", "", "")
    assert r.exists(f"{P}:hist:m:1") and r.ttl(f"{P}:hist:m:1") > 0
    assert not r.hexists(f"{P}:hist:m:1", "credits")
    fin("t333", "j3", "1.25", "g2")
    for k in created:
        assert r.exists(k) and r.ttl(k) > 0, (k, r.ttl(k))
    assert float(r.hget(f"{P}:spend:{day}", "total")) == 3.75
    assert r.zscore(f"{P}:spend:{day}:groups", "g2") == 1.25


def test_pick_reserves_the_budget_with_the_start(r):
    """The pick starts the job and reserves its estimate (the job hash's modelCredits,
    written at routing) in the same step: within the pool's budget it is started with
    the reservation on the job hash; past it the job is not started, spends no attempt,
    and the reply says which budget; a paused account is not picked from at all."""
    day = "20261206"
    bkeys = [f"{P}:budget:{day}", f"{P}:budget:group", f"{P}:budget:models",
             f"{P}:budget:open"]

    def pick_b(budget, acct_pause=None):
        r.delete(f"{P}:processing:c#0")
        keys = PICK_KEYS + bkeys + ([acct_pause] if acct_pause else [])
        return run(r, "pick", keys, [0, "c#0", 5000, next(PICK_TOKENS), day, budget, "acct1"])

    route(r, "b1")
    route(r, "b2")
    out = pick_b(2)  # 1.5 of 2 credits: room
    assert out[1] == b"b1" and out[7] == b"started", out
    h = r.hgetall(f"{P}:job:b1")
    assert h[b"budgetEst"] == b"1.5" and h[b"account"] == b"acct1" and h[b"attempts"] == b"1"
    assert float(r.hget(f"{P}:budget:{day}", "reserved")) == 1.5
    out = pick_b(2)  # 1.5 + 1.5 > 2: waits, not started
    assert out[1] == b"b2" and out[7] == b"over_budget" and len(out) == 16, out
    assert out[14].startswith(b"pool budget: 1.5 of 2 credits") and out[15] == b"1.5"
    h = r.hgetall(f"{P}:job:b2")
    assert h[b"state"] == b"queued" and b"owner" not in h and b"budgetEst" not in h
    assert b"attempts" not in h or h[b"attempts"] == b"0"
    # an account's pause: nothing is picked
    route(r, "b3")
    r.set(f"{P}:pause:acct:acct1", "{}")
    assert pick_b(0, f"{P}:pause:acct:acct1") == [b"paused"]
    assert r.zscore(f"{S}:ready", "b3") is not None


def test_functions_name_the_jobs_account_when_given_another_structure(r):
    """Several accounts: a job routed into <p>:sched:byok (its job hash's account) is not
    cancelled through another account's keys — the job would be marked cancelled while its
    item stayed queued in byok's structure — nor positioned in it: both answer
    account_needed with the account; with byok's keys the cancel ends it."""
    r.execute_command("FUNCTION", "LOAD", "REPLACE", src("kie_functions"))
    B = f"{P}:sched:byok"
    proc = f"{P}:processing:c#router"
    raw = json.dumps({"v": 1, "id": "acc1"})
    r.lpush(proc, raw)
    keys = route_keys(proc)
    keys[3:13] = [f"{B}:ready", f"{B}:delayed", f"{B}:items", f"{B}:state", f"{B}:gtag",
                  f"{B}:gcount", f"{B}:inflight", f"{B}:picked", f"{P}:group:weight",
                  f"{B}:wake"]
    out = run(r, "route", keys, route_args(jobs=[(raw, "acc1", 0, 5, "", 0, "0")],
                                          account="byok"))
    assert out[0][0] == b"queued" and r.hget(f"{P}:job:acc1", "account") == b"byok"
    assert fcall(r, "kie_cancel", "acc1") == {"result": "account_needed", "jobId": "acc1",
                                              "state": "queued", "account": "byok"}
    pos = fcall(r, "kie_position", "acc1")
    assert pos["error"] == "account_needed" and pos["account"] == "byok"
    assert pos["position"] is None
    assert r.hget(f"{P}:job:acc1", "state") == b"queued"
    bkeys = [f"{P}:job:acc1", f"{P}:cancel:acc1", f"{B}:ready", f"{B}:delayed", f"{B}:items",
             f"{B}:state", f"{B}:gcount", f"{P}:stats", f"{P}:results", f"{B}:parked",
             f"{P}:job:acc1"]
    assert json.loads(r.execute_command("FCALL", "kie_position", 11, *bkeys, "acc1"))[
        "position"] == 0
    out = json.loads(r.execute_command("FCALL", "kie_cancel", 11, *bkeys, "acc1"))
    assert out["result"] == "cancelled" and r.zcard(f"{B}:ready") == 0


def test_a_one_account_pools_retried_job_is_cancelled_with_the_default_keys(r):
    """One account named in KIE_ACCOUNTS_FILE (alias main, structure default): a job
    started, then put back to wait for its retry, is cancelled by kie_cancel with
    <p>:sched:default's keys, as protocol.md says — the account check applies only to a
    pool of several accounts."""
    r.execute_command("FUNCTION", "LOAD", "REPLACE", src("kie_functions"))
    day = "20261206"
    route(r, "one1")
    r.delete(f"{P}:processing:c#0")
    keys = PICK_KEYS + [f"{P}:budget:{day}", f"{P}:budget:group", f"{P}:budget:models",
                        f"{P}:budget:open"]
    # the runner of a one-account pool passes no alias (sched_pick: "" with one account)
    out = run(r, "pick", keys, [0, "c#0", 5000, next(PICK_TOKENS), day, 0, ""])
    assert out[1] == b"one1" and out[7] == b"started", out
    h = r.hgetall(f"{P}:job:one1")
    put_keys = [f"{P}:processing:c#0", f"{P}:job:one1", f"{S}:ready", f"{S}:delayed",
                f"{S}:items", f"{S}:state", f"{S}:gcount", f"{S}:inflight", f"{P}:stats",
                f"{S}:wake", f"{P}:recoveries"]
    assert run(r, "sched_put", put_keys, [out[2], "one1", "c#0", h[b"epoch"], "retry",
                                          now_ms(r) + 60000, "boom", 1, 5, "", out[5],
                                          out[6]]) == 1
    assert r.hget(f"{P}:job:one1", "state") == b"retry_wait"
    assert fcall(r, "kie_cancel", "one1")["result"] == "cancelled"
