"""System tests of the callback endpoint (KIE_HTTP_ADDR, docs/protocol.md section 9): a real
kie-worker serving on a free loopback port, a real redis-server, signatures computed here
with hmac/hashlib/base64 as kie-api.md says; entries read back from <p>:callbacks."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import selectors
import socket
import threading
import time

import pytest

from conftest import FakeKie, free_port, wait_for

PREFIX = "kie"
PATH = "/api/kie/callback"
KEY = "whk-Test-Secret-4f1b9c"
TASK = "task_google_1765178615729"
LIST = f"{PREFIX}:callbacks"
STATS = f"{PREFIX}:stats"


def sign(task_id, ts, key=KEY):
    """kie-api.md: base64(HMAC-SHA256(key, taskId + "." + timestamp))."""
    mac = hmac.new(key.encode(), f"{task_id}.{ts}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def signed(task_id=TASK, ts=None, key=KEY):
    ts = str(int(time.time())) if ts is None else str(ts)
    return {"X-Webhook-Timestamp": ts, "X-Webhook-Signature": sign(task_id, ts, key)}


def kie_body(task_id=TASK):
    """A success callback as KIE sends it, written the way no serializer of ours would
    (spaces, newlines, escapes, non-ASCII) so that byte identity means something."""
    raw = ('{"code": 200,\n  "msg": "ok \u2713 caf\u00e9 \\u00e9 \\"q\\" \\/",\n  "data": '
           '{"taskId": "%s", "model": "google/nano-banana-edit", "state": "success",\n'
           '   "resultJson": "{\\"resultUrls\\":[\\"https://cdn.example.com/r.png\\"]}",\n'
           '   "costTime": 12.5, "creditsConsumed": 1, "completeTime": 1765178634000}}\n'
           % task_id).encode()
    assert json.loads(raw)["data"]["taskId"] == task_id
    return raw


class Endpoint:
    def __init__(self, worker, port):
        self.worker = worker
        self.port = port

    def request(self, body=b"", query="", headers=None, path=PATH, method="POST",
                source=None, timeout=15):
        """Returns (status, headers with lower-case names, parsed JSON body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        h = {"Content-Type": "application/json", "User-Agent": "kie-tests"}
        h.update(headers or {})
        try:
            conn.request(method, path + query, body=body if method != "GET" else None,
                         headers=h)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        assert hdrs.get("content-type") == "application/json", (resp.status, hdrs, data)
        return resp.status, hdrs, json.loads(data) if data else None

    def alive(self):
        return self.worker.proc.poll() is None


def wait_listening(worker, port):
    def up():
        if worker.proc.poll() is not None:
            raise AssertionError(f"worker exited with {worker.proc.returncode}:\n"
                                 f"{worker.log()[-3000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False
    wait_for(up, 15, what=f"the callback endpoint on port {port}")


@pytest.fixture
def endpoint(redis_server, fake_kie, workers):
    def start(**extra):
        port = free_port()
        # the endpoint alone: the entries stay on the list for the test to read
        env = {"KIE_HTTP_ADDR": f"127.0.0.1:{port}", "KIE_LOG_LEVEL": "debug",
               "KIE_CALLBACK_CONSUMER": 0, **extra}
        w = workers(redis_server.url, fake_kie.url, **env)
        wait_listening(w, port)
        return Endpoint(w, port)
    return start


def entries(r):
    """<p>:callbacks, oldest first."""
    return list(reversed(r.lrange(LIST, 0, -1)))


def check_entry(raw_entry, job_id, task_id, verified, body, t0_ms, t1_ms):
    """The exact entry format of docs/protocol.md section 9, byte for byte."""
    e = json.loads(raw_entry)
    assert list(e) == ["v", "jobId", "taskId", "verified", "receivedAt", "body"], e
    assert t0_ms <= e["receivedAt"] <= t1_ms, (e["receivedAt"], t0_ms, t1_ms)
    assert e["body"].encode("utf-8") == body  # byte-identical
    want = json.dumps({"v": 1, "jobId": job_id, "taskId": task_id, "verified": verified,
                       "receivedAt": e["receivedAt"], "body": body.decode("utf-8")},
                      separators=(",", ":"), ensure_ascii=False)
    assert raw_entry == want
    return e


def now_ms():
    return int(time.time() * 1000)


def test_signed_callback_is_pushed_verified(endpoint, r):
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY)
    body = kie_body()
    ts = int(time.time())
    t0 = now_ms()
    status, hdrs, resp = ep.request(body, "?jobId=order-1234-look_2:a.b", signed(ts=ts))
    t1 = now_ms()
    assert (status, resp) == (200, {"code": 200, "msg": "success"})
    got = entries(r)
    assert len(got) == 1
    check_entry(got[0], "order-1234-look_2:a.b", TASK, True, body, t0, t1)
    assert r.hget(STATS, "callbacks_received") == "1"
    # a job id percent-encoded (as libcurl's CURLU_URLENCODE writes ':') reads the same
    # (another timestamp: the same signed pair twice is one callback, test_adversary_http;
    # the first one's less a second, which the clock passing a second cannot make equal)
    status, _, _ = ep.request(body, "?jobId=order%3A7", signed(ts=ts - 1))
    assert status == 200
    assert json.loads(r.lindex(LIST, 0))["jobId"] == "order:7"
    log = ep.worker.log()
    assert "callback accepted (signature verified" in log
    assert KEY not in log and sign(TASK, int(time.time())) not in log


def test_wrong_signature_is_refused(endpoint, r):
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY)
    body = kie_body()
    cases = [
        signed(key="another-key"),                   # signed with the wrong key
        signed(task_id="task_other"),                # for another task
        {**signed(), "X-Webhook-Signature": "not base64 at all"},
        {**signed(), "X-Webhook-Timestamp": str(int(time.time()) - 1)},  # ts not signed
        {**signed(), "X-Webhook-Timestamp": "12ab"},
    ]
    for h in cases:
        status, _, resp = ep.request(body, "?jobId=j1", h)
        assert status == 401, (h, resp)
        assert resp["code"] == 401 and resp["msg"], resp
    assert r.llen(LIST) == 0
    # the refusals are counted (the next accepted push carries any not yet added)
    assert ep.request(body, "?jobId=j1", signed())[0] == 200
    assert r.hget(STATS, "callbacks_refused") == str(len(cases))
    assert r.llen(LIST) == 1
    log = ep.worker.log()
    assert KEY not in log
    for h in cases:
        assert h["X-Webhook-Signature"] not in log


def test_stale_or_future_timestamp_is_refused(endpoint, r):
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY, KIE_WEBHOOK_WINDOW_S=300)
    body = kie_body()
    now = int(time.time())
    for ts, word in ((now - 301, "behind"), (now + 400, "ahead of"), (now - 86400 * 365, "behind")):
        status, _, resp = ep.request(body, "", signed(ts=ts))
        assert status == 401, resp
        assert word in resp["msg"] and "window 300 s" in resp["msg"], resp
    assert r.llen(LIST) == 0
    # inside the window
    assert ep.request(body, "", signed(ts=now - 250))[0] == 200
    assert json.loads(r.lindex(LIST, 0))["jobId"] is None


def test_unsigned_callback_is_refused_when_a_key_is_set(endpoint, r):
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY)
    body = kie_body()
    for h in ({}, {"X-Webhook-Timestamp": str(int(time.time()))},
              {"X-Webhook-Signature": sign(TASK, int(time.time()))}):
        status, _, resp = ep.request(body, "?jobId=j1", h)
        assert status == 401
        assert resp == {"code": 401,
                        "msg": "missing X-Webhook-Timestamp or X-Webhook-Signature"}
    assert r.llen(LIST) == 0


def test_unsigned_callback_without_a_key_is_pushed_unverified(endpoint, r):
    ep = endpoint()
    body = kie_body("task_unsigned")
    t0 = now_ms()
    # signature headers are ignored without a key: still unverified
    for h in ({}, signed("task_unsigned")):
        status, _, resp = ep.request(body, "?jobId=job-u", h)
        assert (status, resp) == (200, {"code": 200, "msg": "success"})
    got = entries(r)
    assert len(got) == 2
    for g in got:
        check_entry(g, "job-u", "task_unsigned", False, body, t0, now_ms())
    assert "unverified: no KIE_WEBHOOK_HMAC_KEY" in ep.worker.log()


def test_duplicate_callbacks_are_both_pushed(endpoint, r):
    """KIE may call twice for a task: each call (its own timestamp) is pushed. The same
    signed pair twice is one call: pushed once (test_adversary_http has the replays)."""
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY)
    body = kie_body()
    now = int(time.time())
    for ts in (now - 1, now, now):
        assert ep.request(body, "?jobId=dup-1", signed(ts=ts))[0] == 200
    got = [json.loads(e) for e in entries(r)]
    assert len(got) == 2
    assert all(g["taskId"] == TASK and g["jobId"] == "dup-1" and g["verified"] for g in got)
    assert r.hget(STATS, "callbacks_received") == "2"
    assert r.hget(STATS, "callbacks_replayed") == "1"


def test_task_id_places_and_failed_callbacks(endpoint, r):
    ep = endpoint()
    bodies = [
        (b'{"code":200,"data":{"task_id":"t-snake","state":"success"}}', "t-snake"),
        (b'{"taskId":"t-top","code":501,"msg":"failed"}', "t-top"),
        (b'{"code":501,"msg":"generation failed","data":{"taskId":"t-fail","state":"fail",'
         b'"failCode":"501","failMsg":"boom","creditsConsumed":0}}', "t-fail"),
    ]
    for body, task in bodies:
        assert ep.request(body)[0] == 200
        assert json.loads(r.lindex(LIST, 0))["taskId"] == task


def test_oversized_body_is_refused(endpoint, r):
    ep = endpoint(KIE_HTTP_BODY_MAX=1024)
    good = kie_body("task_cap")
    # exactly at the cap: accepted; one byte more: 413, nothing pushed
    at_cap = good.rstrip(b"\n") + b" " * (1024 - len(good.rstrip(b"\n")))
    assert len(at_cap) == 1024
    assert ep.request(at_cap)[0] == 200
    status, _, resp = ep.request(at_cap + b" ")
    assert status == 413
    assert resp == {"code": 413, "msg": "callback body of 1025 bytes is over the 1024-byte limit"}
    assert r.llen(LIST) == 1

    # announced by Content-Length: answered from the headers, the body is not read (a
    # client still sending a large one may see the connection close under it instead)
    for extra in (b"", b"Expect: 100-continue\r\n"):
        with socket.create_connection(("127.0.0.1", ep.port), 5) as s:
            s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra +
                      b"Content-Length: 1000000000\r\n\r\n")
            s.settimeout(5)
            head = s.recv(4096)
            assert head.startswith(b"HTTP/1.1 413"), head  # and no "100 Continue"
            assert b"Content-Type: application/json" in head

    # a chunked body over the cap (no length to refuse up front) is answered 413 at its end:
    # test_adversary_http.py
    assert ep.alive()
    assert ep.request(good)[0] == 200
    assert r.llen(LIST) == 2


def test_malformed_bodies_are_refused(endpoint, r):
    ep = endpoint()
    cases = [
        (b"", "not strict JSON"),
        (b"{not json", "not strict JSON"),
        (b'{"data":{"taskId":"t1"}} trailing', "not strict JSON"),
        (b'{"taskId":"a","taskId":"b"}', "duplicate key"),
        (b'{"taskId":"a\\u0000b"}', "NUL"),
        (b'{"taskId":"\xff\xfe"}', "UTF-8"),
        (b'["taskId", "t1"]', "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
        (b'{"code":200,"data":{"state":"success"}}', "no task id"),
        (b'{"code":200,"data":{"taskId":""}}', "no task id"),
        (b'{"code":200,"data":{"taskId":42}}', "no task id"),
        (b"{}", "no task id"),
    ]
    for body, want in cases:
        status, _, resp = ep.request(body, "?jobId=j-bad")
        assert status == 400, (body, resp)
        assert resp["code"] == 400 and want in resp["msg"], (body, resp)
    assert r.llen(LIST) == 0
    # 404 and 405 are not callbacks: not counted
    assert ep.request(path="/elsewhere")[0] == 404
    assert ep.request(method="GET")[0] == 405
    assert ep.request(kie_body())[0] == 200
    assert r.hget(STATS, "callbacks_refused") == str(len(cases))
    assert r.hget(STATS, "callbacks_received") == "1"


def test_bad_job_id_is_refused(endpoint, r):
    ep = endpoint()
    body = kie_body()
    for q in ("?jobId=", "?jobId", "?jobId=bad%20id", "?jobId=a/b", "?jobId=" + "a" * 129,
              "?jobId=%C3%A9", "?jobId=ok&jobId=ok2", "?jobId=a%00b"):
        status, _, resp = ep.request(body, q)
        assert status == 400, (q, resp)
        assert "jobId" in resp["msg"], resp
    assert r.llen(LIST) == 0
    assert ep.request(body, "?jobId=" + "a" * 128)[0] == 200
    # other parameters are ignored
    assert ep.request(body, "?x=1&jobId=j-2&y")[0] == 200
    assert json.loads(r.lindex(LIST, 0))["jobId"] == "j-2"


def test_methods_and_paths(endpoint, r):
    ep = endpoint(KIE_CALLBACK_PATH="/hooks/kie")
    for m in ("GET", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, hdrs, resp = ep.request(b"{}", method=m, path="/hooks/kie")
        assert status == 405, m
        assert hdrs.get("allow") == "POST"
        assert resp["code"] == 405
    for p in ("/", "/api/kie/callback", "/hooks/kie/", "/hooks/kiex", "/hooks", "/x" * 200):
        status, _, resp = ep.request(kie_body(), path=p)
        assert (status, resp) == (404, {"code": 404, "msg": "not found"}), p
    assert r.llen(LIST) == 0
    assert ep.request(kie_body(), path="/hooks/kie")[0] == 200
    assert ep.request(kie_body(), path="/hooks/kie?jobId=q1")[0] == 200
    assert r.llen(LIST) == 2


def test_refusals_are_logged_at_most_once_a_second(endpoint, r):
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY)
    t0 = time.monotonic()
    n = 0

    def summarized():
        nonlocal n
        ep.request(kie_body(), "", signed(key="wrong"))
        n += 1
        return "more refused since the last such line" in ep.worker.log()
    wait_for(summarized, 10, interval=0.01, what="a line counting the refusals not logged")
    elapsed = time.monotonic() - t0
    lines = [l for l in ep.worker.log().splitlines() if "callback endpoint: 401" in l]
    assert n > len(lines) + 5
    assert len(lines) <= elapsed + 2, (len(lines), elapsed)
    assert all(f"task={TASK}" in l for l in lines)


def open_slow(port, source):
    """A connection that sends a callback's headers (and 10 of its 100 body bytes) and
    then nothing. Connects without blocking: past the limit, connections wait in the
    listen backlog."""
    s = socket.socket()
    s.bind((source, 0))
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    return s


def test_slow_senders_are_closed_and_callbacks_go_through(endpoint, r):
    timeout_s = 2
    ep = endpoint(KIE_HTTP_CONN_TIMEOUT_S=timeout_s, KIE_HTTP_MAX_CONNECTIONS=64,
                  KIE_HTTP_MAX_PER_ADDRESS=16)
    head = (b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"code\":20")

    # 200 slow connections from 20 addresses (10 each: under the per-address limit, so the
    # 64-connection limit is what holds them off)
    socks = [open_slow(ep.port, f"127.0.0.{10 + i % 20}") for i in range(200)]
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    pending = set(socks)
    while pending and time.monotonic() - t0 < 20:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                s.sendall(head)
            except OSError:
                pass
            sel.unregister(s)
            pending.discard(s)
    assert not pending, f"{len(pending)} connections never connected"
    sent_at = time.monotonic()

    # a good callback meanwhile: it waits for a free slot, then goes through
    result = {}

    def good():
        t = time.monotonic()
        result["status"] = ep.request(kie_body("task_during"), "?jobId=during",
                                      source="127.0.0.200", timeout=60)[0]
        result["s"] = time.monotonic() - t
    th = threading.Thread(target=good)
    th.start()

    closed_at = {}
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    while len(closed_at) < len(socks) and time.monotonic() - sent_at < 60:
        for key, _ in sel.select(0.5):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            assert data == b"", f"a slow sender got an answer: {data[:200]!r}"
            closed_at[s] = time.monotonic() - sent_at
            sel.unregister(s)
    for s in socks:
        s.close()
    th.join(60)
    waits = sorted(closed_at.values())
    print(f"slow senders closed after {waits[0]:.2f}..{waits[-1]:.2f} s; "
          f"good callback took {result.get('s', -1):.2f} s")
    assert len(closed_at) == 200
    # nobody is closed before the timeout, every one by it (in waves of at most 64)
    assert waits[0] >= timeout_s - 0.6, waits[:5]
    assert ep.alive()
    assert result.get("status") == 200, result

    # one address holds at most 16 connections; the others are closed at once and
    # a callback from elsewhere is answered at once
    socks = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", ep.port), 5, source_address=("127.0.0.2", 0))
        socks.append(s)
    t = time.monotonic()
    status = ep.request(kie_body("task_other_addr"), "?jobId=elsewhere")[0]
    assert status == 200 and time.monotonic() - t < 1.5

    def closed(s):
        try:
            return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True
    wait_for(lambda: sum(closed(s) for s in socks) >= 24, 5, what="per-address limit")
    assert sum(not closed(s) for s in socks) <= 16
    wait_for(lambda: all(closed(s) for s in socks), timeout_s + 5, what="idle timeout")
    for s in socks:
        s.close()

    assert ep.alive()
    assert ep.request(kie_body("task_after"), "?jobId=after")[0] == 200
    jobs = [json.loads(e)["jobId"] for e in entries(r)]
    assert sorted(jobs) == ["after", "during", "elsewhere"]


def test_trickled_body_is_cut_off(endpoint, r):
    """A body that keeps coming, a byte at a time, never resets the clock: the request
    must be answered KIE_HTTP_REQUEST_TIMEOUT_MS after the connection opened."""
    ep = endpoint(KIE_HTTP_REQUEST_TIMEOUT_MS=2000)
    body = kie_body()
    with socket.create_connection(("127.0.0.1", ep.port), 5) as s:
        s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        t0 = time.monotonic()
        closed = False
        for i in range(len(body)):
            try:
                s.sendall(body[i:i + 1])
                s.settimeout(0.3)
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        took = time.monotonic() - t0
    assert closed and 1.5 < took < 4, took
    assert r.llen(LIST) == 0
    assert "not answered within KIE_HTTP_REQUEST_TIMEOUT_MS (2000 ms)" in ep.worker.log()
    assert ep.request(body)[0] == 200


def test_redis_down_gives_503_then_back(endpoint, redis_server, r):
    ep = endpoint(KIE_WEBHOOK_HMAC_KEY=KEY)
    body = kie_body()
    assert ep.request(body, "?jobId=before", signed())[0] == 200
    redis_server.stop()
    for _ in range(2):
        t = time.monotonic()
        status, _, resp = ep.request(body, "?jobId=down", signed())
        took = time.monotonic() - t
        assert status == 503, resp
        assert resp["code"] == 503
        assert took < 3.5, took
    # refusals while Redis is down are kept and counted once it is back
    assert ep.request(body, "?jobId=down", signed(key="wrong"))[0] == 401
    redis_server.start()
    status, _, resp = ep.request(body, "?jobId=after", signed())
    assert (status, resp) == (200, {"code": 200, "msg": "success"})
    # the server restarted without persistence: only what came after it
    assert [json.loads(e)["jobId"] for e in entries(r)] == ["after"]
    assert r.hget(STATS, "callbacks_refused") == "1"
    assert ep.alive()


def test_list_is_capped_and_wrong_types_answer_503(endpoint, r):
    ep = endpoint()
    # a list at the cap (KIE_CALLBACKS_MAX, 100000) takes nothing more: 503, KIE tries
    # again; the entries waiting (KIE's genuine callbacks among them) are all kept
    pipe = r.pipeline()
    for i in range(0, 100000, 10000):
        pipe.rpush(LIST, *[f"old-{i + k}" for k in range(10000)])
    pipe.execute()
    status, _, resp = ep.request(kie_body())
    assert (status, resp) == (503, {"code": 503, "msg": "the callbacks list is full; try again"})
    assert r.llen(LIST) == 100000
    assert (r.lindex(LIST, 0), r.lindex(LIST, -1)) == ("old-0", "old-99999")
    assert r.hget(STATS, "callbacks_dropped") == "1"
    r.rpop(LIST)  # the consumer takes one: room for one
    assert ep.request(kie_body())[0] == 200
    assert json.loads(r.lindex(LIST, 0))["taskId"] == TASK
    assert r.llen(LIST) == 100000
    assert r.hget(STATS, "callbacks_received") == "1"
    # the script checks types before writing anything
    r.delete(LIST)
    r.set(LIST, "not a list")
    status, _, resp = ep.request(kie_body())
    assert status == 503
    assert r.get(LIST) == "not a list"
    assert r.hget(STATS, "callbacks_received") == "1"
    assert "is a string, not a list" in ep.worker.log()


def test_fake_kie_signed_callbacks_end_to_end(redis_server, r, workers, tmpdir_path):
    """The KIE fake signs its callbacks (--hmac-key) and POSTs them to the callBackUrl the
    worker gave it: each lands in <p>:callbacks, verified, with the job id."""
    fake = FakeKie(tmpdir_path, task_ms=200, create_limit=0, hmac_key=KEY)
    try:
        port = free_port()
        w = workers(redis_server.url, fake.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
                    KIE_WEBHOOK_HMAC_KEY=KEY, KIE_CALLBACK_CONSUMER=0,
                    KIE_CALLBACK_URL=f"http://127.0.0.1:{port}{PATH}")
        wait_listening(w, port)
        for i in range(3):
            r.lpush(f"{PREFIX}:queue", json.dumps({
                "v": 1, "id": f"e2e-cb-{i}", "type": "raw",
                "input": {"prompt": "a red coat", "imageUrls": ["https://img.example.com/c.png"]}}))
        wait_for(lambda: r.llen(LIST) >= 3, 30, what="3 callbacks from the fake")
        got = {json.loads(e)["jobId"]: json.loads(e) for e in entries(r)}
        assert sorted(got) == [f"e2e-cb-{i}" for i in range(3)]
        for e in got.values():
            assert e["verified"] is True
            assert json.loads(e["body"])["data"]["taskId"] == e["taskId"]
        assert fake.stats()["callbacks_sent"] >= 3
        assert KEY not in w.log()
    finally:
        fake.stop()


def test_bad_address_and_busy_port(redis_server, fake_kie, workers):
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR="localhost:8080")
    assert w.wait(30) == 2
    assert "configuration error: KIE_HTTP_ADDR: " in w.log()
    w = workers(redis_server.url, fake_kie.url, args=["--http-addr", "127.0.0.1"])
    assert w.wait(30) == 2
    assert "KIE_HTTP_ADDR" in w.log()

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}")
        assert w.wait(30) == 1
        assert (f"KIE_HTTP_ADDR: cannot listen on 127.0.0.1:{port}: Address already in use"
                in w.log())
