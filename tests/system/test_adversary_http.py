"""The worker's HTTP server against hostile clients (issue 16, points 3, 5 and 8): slow
headers from several addresses, a saturated callback listener beside the operator one,
chunked bodies past the cap, clients behind a trusted proxy, DNS rebinding against the
operator page, replayed signed callbacks, and a flood of unsigned callbacks past the
list's cap. Paid tasks are counted at the KIE fake (creates_by_job)."""
import http.client
import json
import random
import re
import socket
import threading
import time

from conftest import FakeKie, free_port, wait_for
from test_callbacks import wait_listening
from test_callbacks_http import KEY, LIST, PATH, STATS, kie_body, signed
from test_worker import PREFIX, events, job

TOKEN = "op-token-0123456789abcdef"


def request(port, method="GET", path="/healthz", body=None, headers=None, source=None,
            timeout=5):
    """(status, headers with lower-case names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    h = {"User-Agent": "kie-tests"}
    h.update(headers or {})
    try:
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def answers(port, path="/healthz"):
    try:
        return request(port, path=path, timeout=1)[0] == 200
    except OSError:
        return False


def timed(port, path="/healthz", **kw):
    t = time.monotonic()
    status = request(port, path=path, **kw)[0]
    return status, time.monotonic() - t


class SlowHeaders:
    """Connections that send a request line and then one header line every interval_s,
    never ending their headers; a connection found closed is opened again at the next
    round (an attacker keeps up the pressure). Runs in a thread until stop()."""

    def __init__(self, port, sources, per_source, interval_s=2.0):
        self.port, self.interval = port, interval_s
        self.slots = [src for src in sources for _ in range(per_source)]
        self.socks = [None] * len(self.slots)
        self.opened = self.closed_by_server = self.rounds = 0
        self.done = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def open(self, i):
        s = socket.socket()
        s.bind((self.slots[i], 0))
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", self.port))
        self.socks[i] = [s, False]  # socket, request line sent
        self.opened += 1

    def alive(self, s):
        try:
            return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) != b""
        except BlockingIOError:
            return True
        except OSError:
            return False

    def run(self):
        n = 0
        while not self.done.is_set():
            for i in range(len(self.slots)):
                if self.socks[i] is not None and not self.alive(self.socks[i][0]):
                    self.socks[i][0].close()
                    self.socks[i] = None
                    self.closed_by_server += 1
                if self.socks[i] is None:
                    self.open(i)
                s, started = self.socks[i]
                line = (f"X-Slow-{n}: {'y' * 20}\r\n".encode() if started else
                        b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n")
                try:
                    s.send(line)
                    self.socks[i][1] = True
                except OSError:
                    pass  # not connected yet (backlog), or closed: the next round sees
            self.rounds += 1
            n += 1
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.th.join(10)
        for e in self.socks:
            if e:
                e[0].close()


def worker_env(port, **extra):
    return {"KIE_HTTP_ADDR": f"127.0.0.1:{port}",
            "KIE_CALLBACK_URL": f"http://127.0.0.1:{port}{PATH}", **extra}


def test_slow_headers_from_four_addresses_do_not_wedge_the_endpoint(redis_server, r,
                                                                     tmpdir_path, workers):
    """Issue 16 point 3 as it was shown: 64 connections trickling a header line every 2 s,
    16 from each of 4 addresses, while an uncertain job waits for its callback, and the
    listener in its old single-address form with the old settings only. /healthz answers
    within 1 s, KIE's callback is taken, the job completes on its one task."""
    fake = FakeKie(tmpdir_path, task_ms=4000, create_limit=0, query_limit=0)
    attack = None
    try:
        port = free_port()
        workers(redis_server.url, fake.url, KIE_WORKER_CONCURRENCY=1,
                KIE_UNCERTAIN_WINDOW_MS=20000, **worker_env(port))
        wait_listening(port)
        fake.config(drop_next_create=1)  # KIE made the task; its answer was lost
        r.lpush(f"{PREFIX}:queue", job("slow-1"))
        wait_for(lambda: r.zscore(f"{PREFIX}:uncertain", "slow-1") is not None, 20,
                 what="the job uncertain")
        attack = SlowHeaders(port, [f"127.0.0.{i}" for i in range(2, 6)], 16)
        wait_for(lambda: attack.rounds >= 2, 10, what="the slow connections")
        took = []
        for _ in range(3):
            status, t = timed(port, timeout=1)
            took.append(round(t, 3))
            assert status == 200
            time.sleep(0.5)  # the probes spread over the attack's rounds (the subject)
        evs = wait_for(lambda: [e for e in events(r) if e["jobId"] == "slow-1"], 40,
                       what="the job completed")
        stats = fake.stats()
        print(f"\n/healthz took {took} s; slow connections opened {attack.opened}, closed "
              f"by the worker {attack.closed_by_server}; creates {stats['creates_by_job']}")
        assert stats["creates_by_job"] == {"slow-1": 1}
        assert evs[0]["status"] == "completed"
        assert stats["callbacks_sent"] == 1
        assert max(took) < 1
    finally:
        if attack:
            attack.stop()
        fake.stop()


def test_operator_listener_answers_while_the_callback_listener_is_full(
        redis_server, fake_kie, workers):
    port, ops = free_port(), free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_OPS_ADDR=f"127.0.0.1:{ops}",
                KIE_ADMIN_PAGE="on", KIE_HTTP_MAX_CONNECTIONS=16, KIE_HTTP_MAX_PER_ADDRESS=16,
                KIE_HTTP_REQUEST_TIMEOUT_MS=60000, KIE_CALLBACK_CONSUMER=0,
                **worker_env(port))
    wait_listening(port)
    wait_for(lambda: answers(ops), 10, what="the operator listener")
    # each listener serves its own routes only
    assert request(port, path="/healthz")[0] == 404
    assert request(port, path="/admin/")[0] == 404
    assert request(ops, "POST", PATH, kie_body())[0] == 404
    assert request(port, "POST", PATH, kie_body())[0] == 200
    attack = SlowHeaders(port, ["127.0.0.2"], 16, interval_s=1)
    try:
        wait_for(lambda: attack.rounds >= 2, 10, what="the slow connections")
        # the callback listener is full: a callback waits in the backlog
        try:
            status = request(port, "POST", PATH, kie_body(), timeout=1)[0]
        except OSError:
            status = None
        assert status is None, "the callback listener still had a free slot"
        for path in ("/healthz", "/readyz", "/metrics", "/admin/api/stats"):
            status, t = timed(ops, path, timeout=1)
            assert status == 200 and t < 1, (path, status, t)
    finally:
        attack.stop()
    assert w.proc.poll() is None


def test_request_deadline_counts_from_the_first_byte(redis_server, fake_kie, workers):
    """Header lines every 0.3 s never leave the connection idle: the request deadline
    still closes it; a kept-alive connection gets the whole deadline for each request."""
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_REQUEST_TIMEOUT_MS=1500,
                KIE_CALLBACK_CONSUMER=0, **worker_env(port))
    wait_listening(port)
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        t0 = time.monotonic()
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        s.settimeout(0.3)
        closed, i = False, 0
        while time.monotonic() - t0 < 6:
            try:
                s.sendall(b"X-Slow-%d: y\r\n" % i)
                i += 1
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                continue
            except OSError:
                closed = True
                break
        took = time.monotonic() - t0
    assert closed and 1.2 < took < 3, (closed, took)
    # three requests on one connection, 1 s apart: each has its own 1.5 s
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for _ in range(3):
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
        time.sleep(1)
    conn.close()
    metrics = request(port, path="/metrics")[2].decode()
    assert 'kie_http_refused_total{reason="deadline"} 1' in metrics
    assert "whose request was not answered within KIE_HTTP_REQUEST_TIMEOUT_MS" in w.log()


def test_chunked_body_over_the_cap_is_answered_413(redis_server, r, fake_kie, workers):
    port = free_port()
    workers(redis_server.url, fake_kie.url, KIE_HTTP_BODY_MAX=1024,
            KIE_HTTP_REQUEST_TIMEOUT_MS=3000, KIE_CALLBACK_CONSUMER=0, **worker_env(port))
    wait_listening(port)
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"POST " + PATH.encode() + b"?jobId=big-1 HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(3):
            s.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        s.settimeout(5)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), data[:300]
    assert b"\r\nConnection: close" in head, head
    assert json.loads(body) == {"code": 413, "msg": "callback body over the 1024-byte limit"}
    assert r.llen(LIST) == 0
    # one that never ends is cut at the request deadline
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        t0 = time.monotonic()
        s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        closed = False
        try:
            while time.monotonic() - t0 < 10:
                s.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
                time.sleep(0.01)
        except OSError:
            closed = True
        assert closed and time.monotonic() - t0 < 6
    assert request(port, "POST", PATH, kie_body())[0] == 200
    assert r.llen(LIST) == 1
    assert int(r.hget(STATS, "callbacks_refused")) == 1


def hold(port, source, xff):
    """A callback request whose headers are in and whose body never comes."""
    s = socket.create_connection(("127.0.0.1", port), 5, source_address=(source, 0))
    s.sendall(b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
              b"application/json\r\nContent-Length: 100\r\n" +
              (b"X-Forwarded-For: " + xff.encode() + b"\r\n" if xff else b"") + b"\r\n")
    return s


def test_clients_behind_a_trusted_proxy_are_limited_per_client(redis_server, r, fake_kie,
                                                                workers):
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/8",
                KIE_HTTP_MAX_PER_ADDRESS=2, KIE_HTTP_REQUEST_TIMEOUT_MS=30000,
                KIE_CALLBACK_CONSUMER=0, **worker_env(port))
    wait_listening(port)
    held = [hold(port, "127.0.0.1", "203.0.113.7") for _ in range(2)]
    try:
        # once the two requests' headers are read, the client's third is refused (a path
        # that is no route: 404 until then, nothing pushed)
        wait_for(lambda: request(port, path="/nothing", source="127.0.0.1",
                                 headers={"X-Forwarded-For": "203.0.113.7"})[0] == 429, 5,
                 what="the client's two requests counted")
        # the same client again, even with an entry of its own written to the left: 429
        status, hdrs, body = request(port, "POST", PATH, kie_body(), source="127.0.0.1",
                                     headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
        assert status == 429, (status, body)
        assert json.loads(body)["code"] == 429
        # a chain through a second trusted proxy names the same client: 429 too
        status = request(port, "POST", PATH, kie_body(), source="127.0.0.1",
                         headers={"X-Forwarded-For": "203.0.113.7, 10.1.2.3"})[0]
        assert status == 429
        # refusals are logged at most once a second, and a 404 of the wait above may have
        # had this second's line (the parallel run met it): the client's next 429 after it
        # is logged
        wait_for(lambda: request(port, path="/nothing", source="127.0.0.1",
                                 headers={"X-Forwarded-For": "203.0.113.7"})[0] == 429 and
                 "callback endpoint: 429" in w.log(), 5, interval=0.25, what="a 429 logged")
        # another client behind the proxy: taken; the proxy has more than 2 connections
        status = request(port, "POST", PATH, kie_body(), source="127.0.0.1",
                         headers={"X-Forwarded-For": "203.0.113.8"})[0]
        assert status == 200
        # an untrusted peer's X-Forwarded-For is ignored: it is itself, not 203.0.113.7
        status = request(port, "POST", PATH, kie_body(), source="127.0.0.4",
                         headers={"X-Forwarded-For": "203.0.113.7"})[0]
        assert status == 200
        # and it is limited per address: a third connection is closed at once
        mine = [hold(port, "127.0.0.3", "192.0.2.%d" % i) for i in range(3)]

        def gone(s):
            s.setblocking(False)
            try:
                return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
            except BlockingIOError:
                return False
            except OSError:
                return True
        wait_for(lambda: any(gone(s) for s in mine), 5, what="a connection closed")
        assert [gone(s) for s in mine].count(True) == 1
        for s in mine:
            s.close()
    finally:
        for s in held:
            s.close()
    # the held requests are done: the client is taken again
    wait_for(lambda: request(port, "POST", PATH, kie_body(), source="127.0.0.1",
                             headers={"X-Forwarded-For": "203.0.113.7"})[0] == 200, 5,
             what="the client's count back down")
    assert r.llen(LIST) == 3
    log = w.log()
    assert "callback endpoint: 429" in log and "from 203.0.113.7 via 127.0.0.1" in log
    # no KIE_WEBHOOK_HMAC_KEY: the worker said so at start (the key is the production setting)
    assert "warn  job=- task=- callback endpoint: no KIE_WEBHOOK_HMAC_KEY" in log
    metrics = request(port, path="/metrics")[2].decode()
    per_client = re.search(r'^kie_http_refused_total\{reason="per_client"\} (\d+)$', metrics, re.M)
    # 3 above, and any 429 the last wait met before the held requests' ends were read
    assert per_client and int(per_client.group(1)) >= 3, metrics[-2000:]
    assert 'kie_http_refused_total{reason="per_address"} 1' in metrics


def test_replayed_signed_callback_is_not_pushed(redis_server, r, fake_kie, workers):
    """Only the task id and the timestamp are signed: a captured callback sent again with
    another ?jobId must not reach the consumer (issue 16 points 4 and 8)."""
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_WEBHOOK_HMAC_KEY=KEY,
                KIE_CALLBACK_CONSUMER=0, **worker_env(port))
    wait_listening(port)
    h = {"Content-Type": "application/json", **signed()}
    assert request(port, "POST", PATH + "?jobId=victim-1", kie_body(), h)[0] == 200
    status, _, body = request(port, "POST", PATH + "?jobId=attacker-2", kie_body(), h)
    assert (status, json.loads(body)) == (200, {"code": 200, "msg": "success"})
    got = [json.loads(e) for e in r.lrange(LIST, 0, -1)]
    assert [g["jobId"] for g in got] == ["victim-1"]
    assert r.hget(STATS, "callbacks_replayed") == "1"
    # the pair is remembered for twice the window: its key expires
    keys = r.keys(f"{PREFIX}:callbacks:seen:*")
    assert len(keys) == 1 and 599000 < r.pttl(keys[0]) <= 600000
    assert "no KIE_WEBHOOK_HMAC_KEY" not in w.log()  # the key is set: no warning


def test_flood_past_the_cap_does_not_evict_genuine_callbacks(redis_server, r, tmpdir_path,
                                                            workers):
    """A few thousand unsigned POSTs naming random tasks and jobs, with the callbacks of
    50 uncertain jobs among them, against a list capped at 100: a full list refuses
    (503, KIE tries again) instead of evicting what waits, so every job completes on its
    one task."""
    fake = FakeKie(tmpdir_path, task_ms=4000, create_limit=0, query_limit=0)
    stop = threading.Event()
    sent = [0] * 4
    try:
        # KIE answers in 20 ms: the consumer (one recordInfo per unverified entry) drains
        # about 50 entries a second, far fewer than the flood pushes
        fake.config(callback_retry_ms=3000, latency_ms=20)
        port = free_port()
        workers(redis_server.url, fake.url, KIE_CALLBACKS_MAX=100,
                KIE_UNCERTAIN_WINDOW_MS=30000, KIE_HTTP_MAX_PER_ADDRESS=64,
                **worker_env(port))
        wait_listening(port)
        n = 50
        ids = [f"flood-{i}" for i in range(n)]
        fake.config(drop_next_create=n)
        pipe = r.pipeline()
        for i in ids:
            pipe.lpush(f"{PREFIX}:queue", job(i))
        pipe.execute()
        wait_for(lambda: r.zcard(f"{PREFIX}:uncertain") == n, 30, what="50 uncertain jobs")

        def flood(k):
            rnd = random.Random(k)
            conn = None
            while not stop.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(
                            "127.0.0.1", port, timeout=5, source_address=(f"127.0.0.{2 + k}", 0))
                    task = f"task_google_{rnd.getrandbits(48)}"
                    conn.request("POST", f"{PATH}?jobId=j{rnd.getrandbits(32)}",
                                 kie_body(task), {"Content-Type": "application/json"})
                    conn.getresponse().read()
                    sent[k] += 1
                except (OSError, http.client.HTTPException):
                    conn = None
        threads = [threading.Thread(target=flood, args=(k,), daemon=True) for k in range(4)]
        for t in threads:
            t.start()
        # until every genuine callback was tried once and a few thousand were sent
        wait_for(lambda: (fake.stats()["callbacks_sent"] + fake.stats()["callbacks_not_200"]
                          >= n and sum(sent) >= 2000), 60, what="the flood and the callbacks")
        stop.set()
        for t in threads:
            t.join(10)
        evs = wait_for(lambda: len([e for e in events(r) if e["jobId"] in ids]) >= n and
                       events(r), 60, what="50 jobs completed")
        stats = fake.stats()
        s = r.hgetall(STATS)
        print(f"\nflood: {sum(sent)} POSTs; callbacks_dropped {s.get('callbacks_dropped')}, "
              f"received {s.get('callbacks_received')}; fake callbacks sent "
              f"{stats['callbacks_sent']}, not answered 200 {stats['callbacks_not_200']}")
        done = [e for e in evs if e["jobId"] in ids]
        assert sorted(e["jobId"] for e in done) == sorted(ids)
        assert all(e["status"] == "completed" for e in done)
        assert {j: c for j, c in stats["creates_by_job"].items() if c != 1} == {}
        assert sorted(stats["creates_by_job"]) == sorted(ids)
        assert int(s.get("callbacks_dropped", 0)) > 0
        assert stats["callbacks_failed"] == 0
    finally:
        stop.set()
        fake.stop()


def test_operator_page_answers_only_its_own_host_names(redis_server, r, fake_kie, workers):
    """DNS rebinding: a page on evil.example, rebound to the worker, is same-origin with
    itself; the Host it sends is refused (421) on the page and the API, and the actions'
    Origin is compared with the page's own hosts, not with the request's Host."""
    port = free_port()
    workers(redis_server.url, fake_kie.url, KIE_ADMIN_PAGE="on", KIE_ADMIN_TOKEN=TOKEN,
            KIE_CALLBACK_CONSUMER=0, **worker_env(port))
    wait_listening(port)
    own, evil = f"127.0.0.1:{port}", f"evil.example:{port}"
    for path in ("/admin/", "/admin/api/stats", "/admin/api/dead?full=1"):
        status, hdrs, body = request(port, path=path, headers={"Host": evil})
        assert status == 421, (path, status, body[:200])
        assert "KIE_ADMIN_HOSTS" in json.loads(body)["error"]
        assert request(port, path=path, headers={"Host": own})[0] == 200, path
    assert request(port, path="/admin/api/stats", headers={"Host": f"localhost:{port}"})[0] == 200
    act = {"Content-Type": "application/json", "Authorization": "Bearer " + TOKEN}
    pause = json.dumps({"reason": "test"}).encode()
    # the rebinding page's own action: its Host and Origin agree, and both are foreign
    status = request(port, "POST", "/admin/api/pause", pause,
                     {**act, "Host": evil, "Origin": "http://" + evil})[0]
    assert status == 421
    # a foreign Origin with the token: refused
    status, _, body = request(port, "POST", "/admin/api/pause", pause,
                              {**act, "Host": own, "Origin": "http://" + evil})
    assert status == 403 and b"KIE_ADMIN_HOSTS" in body
    assert r.exists(f"{PREFIX}:pause") == 0
    # an Origin that is one of the page's hosts, whatever Host the request carries
    status = request(port, "POST", "/admin/api/pause", pause,
                     {**act, "Host": own, "Origin": f"http://localhost:{port}"})[0]
    assert status == 200
    assert r.exists(f"{PREFIX}:pause") == 1


def test_admin_hosts_setting_replaces_the_default(redis_server, fake_kie, workers):
    port, ops = free_port(), free_port()
    workers(redis_server.url, fake_kie.url, KIE_ADMIN_PAGE="on", KIE_CALLBACK_CONSUMER=0,
            KIE_OPS_ADDR=f"127.0.0.1:{ops}", KIE_ADMIN_HOSTS="ops.example.internal, "
            f"ops.example.internal:{ops}", **worker_env(port))
    wait_for(lambda: answers(ops), 10, what="the operator listener")
    assert request(ops, path="/admin/api/stats", headers={"Host": f"127.0.0.1:{ops}"})[0] == 421
    for host in ("ops.example.internal", f"OPS.example.internal:{ops}"):
        assert request(ops, path="/admin/api/stats", headers={"Host": host})[0] == 200
