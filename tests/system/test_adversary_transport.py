"""A dying connection against a paid request (issue 16, point 1): KIE takes a createTask
on a kept-alive connection, creates (and charges) the task, and the connection dies
before a byte of answer. libcurl 7.88 would send the same POST again on a fresh connection
by itself ("Connection died, retrying a fresh connect"): a second paid task, the first
never recorded. The worker sends createTask on a connection of its own, so the outcome
comes back unknown: the job is uncertain and its callback adopts the one task. Counted at
the fake (creates_by_job)."""
import json

from conftest import FakeKie, free_port, task_finalized, wait_for
from test_callbacks import wait_listening
from test_worker import PREFIX, dead, events, job, wait_events


def test_create_dropped_unanswered_is_never_sent_again(redis_server, r, tmpdir_path, workers):
    fake = FakeKie(tmpdir_path, task_ms=1500, create_limit=0, query_limit=0)
    try:
        port = free_port()
        # one runner: the second job's createTask goes out on the handle that already
        # holds a kept-alive connection to KIE from the first one
        workers(redis_server.url, fake.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
                KIE_CALLBACK_URL=f"http://127.0.0.1:{port}/api/kie/callback",
                KIE_WORKER_CONCURRENCY=1, KIE_UNCERTAIN_WINDOW_MS=60000)
        wait_listening(port)
        r.lpush(f"{PREFIX}:queue", job("warm-1"))
        wait_events(r, 1, timeout=30)

        # KIE creates the next task and the connection dies without an answer, 3 times:
        # a hidden retry would be dropped too, and still be counted as a second task
        fake.config(drop_next_create=3)
        r.lpush(f"{PREFIX}:queue", job("dropped-1"))
        wait_for(lambda: fake.stats()["creates_dropped"] >= 1, 20, what="the dropped create")
        seen_uncertain = wait_for(
            lambda: r.zscore(f"{PREFIX}:uncertain", "dropped-1") is not None or
            any(e["jobId"] == "dropped-1" for e in events(r)), 20,
            what="the job uncertain (or done)")
        evs = wait_events(r, 2, timeout=60)
        stats = fake.stats(brief=False)
        by_job = stats["creates_by_job"]
        print(f"\ncreates: {by_job}, dropped {stats['creates_dropped']}, callbacks sent "
              f"{stats['callbacks_sent']}")
        assert by_job.get("dropped-1") == 1, f"paid twice for one job: {by_job}"
        assert stats["creates_dropped"] == 1, stats["creates_dropped"]
        assert seen_uncertain is True
        assert int(r.hget(f"{PREFIX}:stats", "uncertain") or 0) == 1
        done = [e for e in evs if e["jobId"] == "dropped-1"]
        assert len(done) == 1 and done[0]["status"] == "completed", done
        # adopted from its callback: the one task KIE made is the job's
        task = next(t for t, v in stats["tasks"].items() if v["jobId"] == "dropped-1")
        assert done[0]["taskId"] == task
        assert task_finalized(r, PREFIX, task, "dropped-1")
        assert dead(r) == []
        assert stats["callbacks_sent"] >= 1
        assert len(events(r)) == 2, json.dumps(events(r))[:2000]
    finally:
        fake.stop()
