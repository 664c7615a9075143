"""test_bench: bench/compare.py runs both systems of `make bench` — kie-worker and the
BullMQ worker of bench/bullmq — to the end with a few jobs, and each did all the work:
counted at the KIE fake (createTask calls), in the S3 fake (metadata objects) and on the
results list (one completed event per job). Figures are not checked here (bench/)."""
import os
import shutil
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import compare  # noqa: E402

JOBS = 20


@pytest.fixture(scope="module")
def node_ready():
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed: the BullMQ side of make bench needs "
                    "them (scripts/install-deps.sh installs them)")
    try:
        compare.ensure_node_modules()
    except compare.BenchError as e:
        pytest.skip(f"bench/bullmq's npm packages could not be installed: {e}")


@pytest.mark.parametrize("system", ["kie-worker", "bullmq"])
def test_bench_system_does_all_the_work(system, node_ready, tmpdir_path):
    a = types.SimpleNamespace(task_ms=100, poll_initial_ms=100, runners=4, pollers=2)
    o = compare.run_system(system, a, JOBS, tmpdir_path)
    assert o["creates"] == JOBS, o
    assert o["s3_objects"] == JOBS, o
    assert o["events"] == JOBS and o["event_ids"] == JOBS and o["completed"] == JOBS, o
    assert o["record_info"] >= JOBS, o
    assert o["redis_cmds"] > 0 and o["cpu_s"] >= 0 and o["hwm_kib"] > 0, o
    assert o["exit"] == 0, (o, open(o["log"]).read()[-4000:])
    log = open(o["log"]).read()
    assert "ERROR: AddressSanitizer" not in log, log[-4000:]
    assert "runtime error:" not in log, log[-4000:]


def test_bench_fails_loudly_when_work_is_missing(node_ready, tmpdir_path, monkeypatch):
    """The check can fail: a KIE fake that answers every createTask with code 400 leaves
    no task, and the run must raise, naming what is missing, instead of printing a row."""
    real = compare.FakeKie

    def refusing(tmp, **opts):
        f = real(tmp, **opts)
        f.config(refuse_creates_until_ms=2 ** 50, refuse_code=455)
        return f
    monkeypatch.setattr(compare, "FakeKie", refusing)
    a = types.SimpleNamespace(task_ms=100, poll_initial_ms=100, runners=2, pollers=1)
    with pytest.raises(compare.BenchError, match=r"0 of 3 completions"):
        compare.run_system("bullmq", a, 3, tmpdir_path, timeout_s=8)


@pytest.mark.parametrize("callbacks", [True, False], ids=["callbacks", "polling"])
def test_bench_latency_run_measures_every_job(callbacks, tmpdir_path):
    """make bench's latency run (issue 18) with a few jobs: every task's completeTime is
    matched with its event's arrival; one recordInfo per job either way (an unverified
    callback's task is confirmed by the poller's one call)."""
    a = types.SimpleNamespace(latency_task_ms=300, latency_rate=4.0)
    o = compare.run_latency(a, 4, tmpdir_path, callbacks=callbacks, timeout_s=60)
    assert len(o["lat_ms"]) == 4 and all(x > 0 for x in o["lat_ms"]), o
    assert o["record_info"] == 4, o
    if callbacks:
        assert o["app_posts"] >= 4, o
        # the poll interval is 2.5 s: an event this soon came by the callback's kick
        assert max(o["lat_ms"]) < 2000, o["lat_ms"]
    else:
        assert o["app_posts"] == 0 and min(o["lat_ms"]) > 1000, o["lat_ms"]


def test_bench_memory_run_counts_what_finished_jobs_leave(tmpdir_path):
    a = types.SimpleNamespace(task_ms=100, poll_initial_ms=100, runners=4, pollers=2)
    o = compare.run_memory(a, 5, tmpdir_path)
    assert o["jobs"] == 5 and 0 < o["job_b"] <= 300 and o["task_b"] == 0, o
