"""Lost replies: Redis runs a command and the connection dies before the worker reads the
answer (a restart or failover at that instant). A proxy between the worker and a real
redis-server forwards everything and, once, swallows the reply to the command that
matches a step, closing the connection. Whichever step it hits, every job ends once,
with one KIE task and one event."""
import hashlib
import json
import os
import socket
import threading

import pytest

from conftest import LUA_FILES, lua_text, wait_for
from test_worker import PREFIX, dead, events, job, wait_events

def script_sha(name):
    """The SHA1 an EVALSHA of <name>.lua carries: the step's mark on the wire."""
    return hashlib.sha1(lua_text(name).encode()).hexdigest().encode()


def load_scripts(r):
    """SCRIPT LOAD every step, so the first EVALSHA of each runs (not a NOSCRIPT reply)."""
    for f in LUA_FILES:
        text = lua_text(f)
        if not text.startswith("#!lua name="):  # a Functions library, not a script
            r.script_load(text)


class ReplyDropper:
    """TCP proxy on loopback. drop(pattern) arms it: the next client command containing
    pattern is forwarded, and its reply (when not a null reply) is swallowed and both
    connections closed. hiredis sends one command and waits for its reply, so the reply
    that follows a matching command is that command's."""

    NULLS = (b"$-1\r\n", b"*-1\r\n", b"_\r\n")

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.pattern = None
        self.dropped = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def drop(self, pattern):
        with self.lock:
            self.pattern = pattern

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.upstream))
            state = {"armed": False}
            threading.Thread(target=self._pump, args=(c, u, lambda d: self._up(d, state)),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, lambda d: self._down(d, state)),
                             daemon=True).start()

    def _pump(self, src, dst, forward):
        """Copies src to dst while forward(data) says so; then closes both."""
        try:
            while True:
                data = src.recv(65536)
                if not data or not forward(data):
                    break
                dst.sendall(data)
        except OSError:
            pass
        self._close(src, dst)

    def _up(self, data, state):
        with self.lock:
            if self.pattern and self.pattern in data:
                state["armed"] = True
        return True

    def _down(self, data, state):
        if state["armed"]:
            state["armed"] = False
            with self.lock:
                if self.pattern and data not in self.NULLS:
                    self.pattern = None
                    self.dropped += 1
                    return False  # Redis did it; the worker never hears
        return True

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closed = True
        self.sock.close()


# (step, a byte string only that step's command carries: its script's SHA1 in EVALSHA).
# The router's BLMOVE and route.lua queue the job; a runner's pick.lua takes it (the
# createTask slot first), claims it and marks it creating in one step. The task is
# recorded and handed to the pollers in one step (record_task.lua); a poller's promote,
# claim, lease and the read of the task hash are one step (poll_next.lua, idle steps
# included: there is no separate task_get step any more).
STEPS = [
    ("route (BLMOVE)", b"BLMOVE"),
    ("route the job", script_sha("route")),
    ("pick and start", script_sha("pick")),
    ("record the task and hand off", script_sha("record_task")),
    ("claim and read a poll", script_sha("poll_next")),
    ("finalize", script_sha("finalize")),
]


@pytest.mark.parametrize("step,pattern", STEPS, ids=[s for s, _ in STEPS])
def test_a_lost_reply_at_any_step_costs_nothing(redis_server, r, fake_kie, workers, step,
                                                pattern):
    proxy = ReplyDropper(redis_server.port)
    load_scripts(r)
    try:
        fake_kie.config(task_ms=200)
        w = workers(proxy.url, fake_kie.url, KIE_WORKER_CONCURRENCY=2, KIE_WORKER_POLLERS=1,
                    KIE_POLL_INITIAL_MS=100, KIE_HTTP_TIMEOUT_MS=2000)
        proxy.drop(pattern)
        n = 6
        for i in range(n):
            r.lpush(f"{PREFIX}:queue", job(f"lr-{i}"))
        evs = wait_events(r, n, timeout=60)
        wait_for(lambda: proxy.dropped == 1, 10, what=f"the {step} reply to be dropped")
        assert sorted(e["jobId"] for e in evs) == [f"lr-{i}" for i in range(n)]
        assert {e["status"] for e in evs} == {"completed"}
        assert fake_kie.stats()["creates_by_job"] == {f"lr-{i}": 1 for i in range(n)}
        assert dead(r) == []
        # nothing left behind: no claimed descriptor, no task still being polled
        wait_for(lambda: r.zcard(f"{PREFIX}:poll:due") == 0 and r.llen(f"{PREFIX}:polling") == 0,
                 20, what="polling to empty")
        assert all(r.llen(k) == 0 for k in r.keys(f"{PREFIX}:processing:*"))
        assert len(events(r)) == n  # still exactly one event per job
        # the lost reply may have been an idle BLMOVE's (nothing moved): the connection's
        # timeout and reconnect then come after the last event
        wait_for(lambda: "reconnected to Redis" in w.log() or
                 "left in its processing list" in w.log(), 20,
                 what="the worker to notice the lost reply")
    finally:
        proxy.close()


def test_a_lost_reply_on_a_dead_letter_writes_it_once(redis_server, r, fake_kie, workers):
    proxy = ReplyDropper(redis_server.port)
    try:
        load_scripts(r)
        w = workers(proxy.url, fake_kie.url, KIE_WORKER_CONCURRENCY=1)
        proxy.drop(script_sha("job_dead"))
        bad = json.dumps({"v": 1, "id": "bad-1", "type": "teleport", "input": {}})
        r.lpush(f"{PREFIX}:queue", bad)
        ev = wait_events(r, 1)[0]
        # Redis emits the event inside the script, before the reply reaches the proxy
        wait_for(lambda: proxy.dropped == 1, 10, what="the dead-letter reply to be dropped")
        assert ev["jobId"] == "bad-1" and ev["status"] == "dead"
        wait_for(lambda: "reconnected to Redis" in w.log(), 10, what="the reconnect")
        r.lpush(f"{PREFIX}:queue", job("after"))  # the worker carries on
        wait_events(r, 2)
        assert len(dead(r)) == 1 and dead(r)[0]["raw"] == bad
        assert [e["jobId"] for e in events(r)].count("bad-1") == 1
    finally:
        proxy.close()


def test_a_lost_reply_on_a_route_batch_strands_nothing(redis_server, r, fake_kie, workers):
    """A backlog is routed in batches: each route.lua call moves the next batch into the
    router's list. Its reply lost, the moved descriptors are the router's leftovers: each
    is routed at once (not after a back-off that doubles per leftover), and every job
    still ends once, with one task, within 30 s."""
    proxy = ReplyDropper(redis_server.port)
    load_scripts(r)
    try:
        n = 48
        r.lpush(f"{PREFIX}:queue", *[job(f"rb-{i}") for i in range(n)])
        proxy.drop(script_sha("route"))
        w = workers(proxy.url, fake_kie.url, KIE_WORKER_CONCURRENCY=4, KIE_WORKER_POLLERS=2,
                    KIE_POLL_INITIAL_MS=100)
        evs = wait_events(r, n, timeout=30)
        wait_for(lambda: proxy.dropped == 1, 10, what="a route reply to be dropped")
        assert sorted(e["jobId"] for e in evs) == sorted(f"rb-{i}" for i in range(n))
        assert {e["status"] for e in evs} == {"completed"}
        assert fake_kie.stats()["creates_by_job"] == {f"rb-{i}": 1 for i in range(n)}
        assert dead(r) == []
        assert "reconnected to Redis" in w.log()
        wait_for(lambda: all(r.llen(k) == 0 for k in r.keys(f"{PREFIX}:processing:*")), 10,
                 what="every claimed descriptor released")
    finally:
        proxy.close()
