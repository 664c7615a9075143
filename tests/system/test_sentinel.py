"""Demoted nodes: a node turned into a replica under a worker (READONLY) makes every
thread reconnect instead of spinning, and work resumes once the node is a primary
again."""
import os
import re
import time

from conftest import RedisServer, wait_for
from test_worker import PREFIX, job, wait_events

def test_readonly_node_every_thread_reconnects_without_spinning(redis_server, r, fake_kie,
                                                               workers, tmpdir_path):
    """No sentinels: the worker's node is made a replica of another server (READONLY to
    every write; its data replaced by the other's), then a primary again."""
    d = os.path.join(tmpdir_path, "other")
    os.makedirs(d)
    other = RedisServer(d)
    try:
        w = workers(redis_server.url, fake_kie.url)
        for i in range(10):
            r.lpush(f"{PREFIX}:queue", job(f"ro-before-{i}"))
        wait_events(r, 10)
        me = r.client_id()

        def worker_conns():
            return {c["id"] for c in r.client_list()
                    if c["id"] != str(me) and c["id"] != me and not set(c["flags"]) & set("MS")}
        before = worker_conns()
        # 4 runners, 2 pollers and the supervisor hold a connection each
        assert len(before) == 7, r.client_list()
        conns_before = r.info("stats")["total_connections_received"]
        lines_before = len(w.log().splitlines())

        t0 = time.monotonic()
        r.execute_command("REPLICAOF", "127.0.0.1", str(other.port))
        # every thread drops the connection it had and makes a new one
        wait_for(lambda: not (worker_conns() & before), 30,
                 interval=0.05, what=lambda: f"every worker connection replaced "
                 f"(old still open: {worker_conns() & before})")
        t_all = time.monotonic() - t0
        # stay read-only a while: the worker must wait, not spin
        time.sleep(6)
        ro_s = time.monotonic() - t0
        ro_log = w.log().splitlines()[lines_before:]
        conns = r.info("stats")["total_connections_received"] - conns_before
        print(f"\nread-only for {ro_s:.1f} s: every connection replaced after {t_all:.2f} s; "
              f"{conns} connections made, {len(ro_log)} log lines")
        text = "\n".join(ro_log)
        assert "READONLY" in text, text
        assert "reconnected to Redis" in text, text
        for who in ("runner", "poller", "supervisor"):
            assert re.search(rf"{who}: (reconnected to Redis|leaving Redis|Redis 127)", text), \
                (who, text)
        assert len(ro_log) < 150, text
        assert conns < 300, conns

        r.execute_command("REPLICAOF", "NO", "ONE")
        t1 = time.monotonic()
        m = 10
        for i in range(m):
            r.lpush(f"{PREFIX}:queue", job(f"ro-after-{i}"))
        evs = wait_events(r, m, timeout=60)  # the node's data is the other's: a fresh list
        print(f"working again {time.monotonic() - t1:.2f} s after REPLICAOF NO ONE")
        assert sorted(e["jobId"] for e in evs) == sorted(f"ro-after-{i}" for i in range(m))
        assert all(v == 1 for v in fake_kie.stats()["creates_by_job"].values())
        assert w.proc.poll() is None
    finally:
        other.stop()
