"""Bad input gets a reason and nothing is lost: strict descriptors, oversized ones read
without being held, replyTo that would corrupt the worker's own keys, capped dead
letters, and a worker that keeps running through all of it. Paid tasks are counted at
the fake KIE."""
import base64
import hashlib
import json
import os
import re
import signal
import time

import pytest

from conftest import wait_for
from test_worker import PREFIX, job, events, dead, wait_events, EXAMPLES

OK_INPUT = '"type":"raw","input":{"prompt":"p","imageUrl":"https://img.example.com/c.png"}'

# (name, descriptor bytes, words the dead letter's reason must contain)
MALFORMED = [
    ("two objects in one element",
     ('{"v":1,"id":"two-a",' + OK_INPUT + '}{"v":1,"id":"two-b",' + OK_INPUT + '}').encode(),
     "bytes after the JSON value"),
    ("escaped NUL in the prompt",
     b'{"v":1,"id":"nul-1","type":"raw","input":{"prompt":"a\\u0000b",'
     b'"imageUrl":"https://img.example.com/c.png"}}', "NUL"),
    ("raw NUL byte",
     b'{"v":1,"id":"nul-2","type":"raw","input":{"prompt":"a\x00b",'
     b'"imageUrl":"https://img.example.com/c.png"}}', "NUL"),
    ("raw control byte",
     b'{"v":1,"id":"ctl-1","type":"raw","input":{"prompt":"a\x07b",'
     b'"imageUrl":"https://img.example.com/c.png"}}', "control byte"),
    ("prompt given twice",
     b'{"v":1,"id":"dup-1","type":"raw","input":{"prompt":"first","prompt":"second",'
     b'"imageUrl":"https://img.example.com/c.png"}}', 'duplicate key "prompt"'),
    ("id given twice",
     ('{"v":1,"id":"dup-2","id":"dup-3",' + OK_INPUT + '}').encode(), 'duplicate key "id"'),
    ("nesting past the limit",
     ('{"v":1,"id":"deep-1",' + OK_INPUT + ',"meta":{"a":' + "[" * 5000 + "]" * 5000 +
      '}}').encode(), "nesting deeper than"),
    ("id null",
     ('{"v":1,"id":null,' + OK_INPUT + '}').encode(), "id must be a string"),
    ("ftp callback",
     ('{"v":1,"id":"cb-1",' + OK_INPUT + ',"callbackUrl":"ftp://app.example.com/cb"}').encode(),
     'scheme "ftp"'),
    ("leading zero number",
     ('{"v":01,"id":"num-1",' + OK_INPUT + '}').encode(), "leading zero"),
    ("lone surrogate",
     b'{"v":1,"id":"sur-1","type":"raw","input":{"prompt":"\\ud800",'
     b'"imageUrl":"https://img.example.com/c.png"}}', "surrogate"),
]


def test_every_malformed_descriptor_is_refused_with_its_reason(redis_server, r, fake_kie,
                                                               workers):
    w = workers(redis_server.url, fake_kie.url)
    for _, raw, _ in MALFORMED:
        r.lpush(f"{PREFIX}:queue", raw)
    r.lpush(f"{PREFIX}:queue", job("good-after", replyTo="app:replies"))
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == len(MALFORMED), 30,
             what=lambda: f"{len(MALFORMED)} dead letters, have {dead(r)}")
    wait_for(lambda: any(e["jobId"] == "good-after" for e in events(r)), 30, what="good-after")
    # the original bytes are kept, byte for byte: match each entry to its descriptor
    by_raw = {}
    for e in dead(r):
        kept = e["raw"].encode() if "raw" in e else base64.b64decode(e["rawBase64"])
        by_raw[kept] = e
    assert len(by_raw) == len(MALFORMED)
    entries = [by_raw[raw] for _, raw, _ in MALFORMED]
    for (name, raw, words), e in zip(MALFORMED, entries):
        assert words in e["reason"], (name, e["reason"])
        assert e["source"] == "parse", name
        # an id is read only from strict JSON (of two ids, which one?)
        assert e["jobId"] == ("cb-1" if name == "ftp callback" else None), (name, e)
    # nothing was paid for any of them; the good job behind them ran once
    stats = fake_kie.stats()
    assert stats["creates_total"] == 1 and stats["creates_by_job"] == {"good-after": 1}
    assert w.proc.poll() is None
    # reasons quote offsets inside the descriptor
    two = entries[0]["reason"]
    off = int(re.search(r"at byte (\d+)", two).group(1))
    assert off == MALFORMED[0][1].index(b"}{") + 1, two


def test_meta_is_copied_untouched_into_the_event(redis_server, r, fake_kie, workers):
    workers(redis_server.url, fake_kie.url)
    raw = ('{"v":1,"id":"meta-1",' + OK_INPUT +
           ',"meta":{"orderId":9007199254740993,"big":1e999,"name":"\\u00e9t\\u00e9"}}')
    r.lpush(f"{PREFIX}:queue", raw)
    ev_raw = wait_for(lambda: r.lrange(f"{PREFIX}:results", 0, -1), 30, what="the event")[0]
    assert '"meta":{"orderId":9007199254740993,"big":1e999,"name":"\\u00e9t\\u00e9"}' in ev_raw
    assert json.loads(ev_raw)["meta"]["orderId"] == 9007199254740993


def test_100_mib_descriptor_is_dead_lettered_by_size_hash_and_head(redis_server, r, fake_kie,
                                                                   workers):
    w = workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=2)
    r.lpush(f"{PREFIX}:queue", job("warm-up"))
    wait_events(r, 1)
    before = vm_hwm_kib(w.proc.pid)
    body = b'{"v":1,"id":"huge","type":"raw","input":{"prompt":"' + b"\xc3\xa9" * (50 << 20)
    body = body[:100 << 20]
    r.lpush(f"{PREFIX}:queue", body)  # taken while the runners wait in BLMOVE
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == 1, 60, what="the dead letter")
    e = dead(r)[0]
    assert e["size"] == len(body)
    assert e["sha256"] == hashlib.sha256(body).hexdigest()
    assert "raw" not in e and "rawBase64" not in e
    head = e["rawHead"].encode()
    assert body.startswith(head) and 4093 <= len(head) <= 4096  # cut at a whole character
    assert "KIE_JOB_MAX_BYTES" in e["reason"] and str(len(body)) in e["reason"]
    assert len(r.lindex(f"{PREFIX}:dead", 0)) < 6000
    after = vm_hwm_kib(w.proc.pid)
    # the worker never held it: its peak grew by far less than the descriptor
    assert after - before < 8 * 1024, (before, after)
    r.lpush(f"{PREFIX}:queue", job("after-huge"))
    evs = wait_events(r, 2)
    assert {e["jobId"] for e in evs} == {"warm-up", "after-huge"}
    assert all(r.llen(k) == 0 for k in r.keys(f"{PREFIX}:processing:*"))
    assert w.proc.poll() is None
    print(f"\n100 MiB descriptor: worker VmHWM {before} KiB before, {after} KiB after")


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_reply_to_may_not_name_worker_keys_and_a_wrong_type_is_skipped(redis_server, r,
                                                                       fake_kie, workers):
    w = workers(redis_server.url, fake_kie.url)
    r.hset("app:not-a-list", "x", "1")
    for i, key in enumerate([f"{PREFIX}:polling", f"{PREFIX}:stats", f"{PREFIX}:queue"]):
        r.lpush(f"{PREFIX}:queue", job(f"own-{i}", replyTo=key))
    r.lpush(f"{PREFIX}:queue", job("wrong-type", replyTo="app:not-a-list"))
    r.lpush(f"{PREFIX}:queue", job("ok-reply", replyTo=f"{PREFIX}:replies:u1"))
    wait_for(lambda: r.llen(f"{PREFIX}:dead") == 3, 30, what="3 dead letters")
    evs = wait_events(r, 2 + 3)  # two runs plus three job.dead events (not to replyTo)
    by = {e["jobId"]: e for e in evs}
    assert by["wrong-type"]["status"] == "completed"
    assert by["ok-reply"]["status"] == "completed"
    for i in range(3):
        assert by[f"own-{i}"]["status"] == "dead"
        assert "worker's own keys" in by[f"own-{i}"]["error"]
    assert r.type("app:not-a-list") == "hash" and r.hlen("app:not-a-list") == 1
    assert r.llen(f"{PREFIX}:replies:u1") == 1
    assert r.type(f"{PREFIX}:polling") in ("list", "none") and r.llen(f"{PREFIX}:polling") == 0
    assert r.type(f"{PREFIX}:stats") == "hash"
    assert fake_kie.stats()["creates_total"] == 2
    log = w.log()
    assert "replyTo key app:not-a-list holds another type" in log
    assert "Redis unreachable" not in log


def test_dead_letters_are_capped_and_drops_counted(redis_server, r, fake_kie, workers):
    workers(redis_server.url, fake_kie.url, KIE_DEAD_MAX=5, KIE_WORKER_CONCURRENCY=1)
    for i in range(8):
        r.lpush(f"{PREFIX}:queue", f"not json {i}")
    wait_for(lambda: int(r.hget(f"{PREFIX}:stats", "dead") or 0) == 8, 30, what="8 dead")
    assert r.llen(f"{PREFIX}:dead") == 5
    assert int(r.hget(f"{PREFIX}:stats", "dead_dropped")) == 3
    assert [e["raw"] for e in dead(r)] == [f"not json {i}" for i in range(7, 2, -1)]


def test_sigterm_while_redis_is_gone_exits_after_the_grace(redis_server, r, fake_kie, workers):
    w = workers(redis_server.url, fake_kie.url, KIE_SHUTDOWN_GRACE_MS=1500)
    r.lpush(f"{PREFIX}:queue", job("before-stop"))
    wait_events(r, 1)
    redis_server.stop()
    w.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    rc = w.proc.wait(15)
    assert time.monotonic() - t0 < 6, "the worker outlived its grace period"
    assert rc in (0, 1)


def test_second_sigterm_while_redis_is_gone_exits_at_once(redis_server, r, fake_kie, workers):
    w = workers(redis_server.url, fake_kie.url, KIE_SHUTDOWN_GRACE_MS=60000)
    wait_for(lambda: r.keys(f"{PREFIX}:worker:*"), 10, what="heartbeats")
    redis_server.stop()
    w.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping: finishing in-flight work" in w.log(), 10,
             what="the first signal taken")
    w.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    w.proc.wait(10)
    assert time.monotonic() - t0 < 5


def test_failing_heartbeat_is_logged_once_not_twenty_times_a_second(redis_server, r, fake_kie,
                                                                    workers):
    w = workers(redis_server.url, fake_kie.url, KIE_LOG_LEVEL="info")
    wait_for(lambda: r.keys(f"{PREFIX}:worker:*"), 10, what="heartbeats")
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", "1")  # every write is refused: OOM
    try:
        time.sleep(3.0)  # the fault's length is the subject: 12 heartbeats refused (250 ms)
    finally:
        r.config_set("maxmemory", "0")
    log = w.log()
    assert "heartbeat not written" in log and "OOM" in log
    assert log.count("heartbeat not written") <= 2, log[-3000:]
    assert log.count("Redis script error") <= 2 * 5, log[-3000:]  # once per 10 s per thread
    wait_for(lambda: "heartbeat written again" in w.log(), 10, what="recovery")
