"""Adopting a task from its callback, against an adversary and bad luck: a forged unsigned
callback for a task someone else created decides nothing, a flood of them costs KIE no
call, a job already dead-lettered gets no job.completed after its job.dead, and the
pending metadata record never replaces a final one. Paid tasks are counted at the fake."""
import json
import time
import urllib.request
import uuid

from conftest import FakeKie, base_env, free_port, run_kie, wait_for
from test_callbacks import create_at_fake, wait_listening
from test_ownership import assert_one_task_per_job
from test_worker import PREFIX, dead, events, wait_events


def raw_job(job_id, prompt="a red coat on a mannequin"):
    return json.dumps({"v": 1, "id": job_id, "type": "raw",
                       "input": {"prompt": prompt,
                                 "imageUrls": ["https://img.example.com/c.png"]}})


def post_callback(port, body, job_id=None):
    """An unsigned POST to the worker's callback endpoint, as anyone can send one."""
    url = f"http://127.0.0.1:{port}/api/kie/callback"
    if job_id:
        url += f"?jobId={job_id}"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def unsigned_endpoint(workers, redis_url, kie_url, **extra):
    """A worker serving the callback endpoint without an HMAC key (the default): every
    callback it takes is unverified."""
    port = free_port()
    w = workers(redis_url, kie_url, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
                KIE_CALLBACK_URL=f"http://127.0.0.1:{port}/api/kie/callback", **extra)
    wait_listening(port)
    return w, port


def test_forged_unsigned_callback_for_a_foreign_task_is_not_adopted(redis_server, r, fake_kie,
                                                                    workers):
    """An outsider POSTs ?jobId=VICTIM naming a task of the account that another client
    created (its KIE record carries no jobId) while the victim's job is uncertain: KIE's
    record names no job, so nothing is adopted; the victim gets its own task, adopted from
    its own callback, and the forged entry is counted. A flood of forged entries naming no
    job or jobs that do not exist is dropped without a single recordInfo."""
    w, port = unsigned_endpoint(workers, redis_server.url, fake_kie.url,
                                KIE_UNCERTAIN_WINDOW_MS=20000)
    foreign = create_at_fake(fake_kie)  # someone else's task: no callBackUrl, no jobId
    # the victim's createTask is answered 500 after KIE made its task, which takes 2.5 s
    fake_kie.config(fail_next_create_http500=1)
    r.lpush(f"{PREFIX}:queue", raw_job("victim", "a red coat [fake:slow=2500]"))
    wait_for(lambda: r.hget(f"{PREFIX}:job:victim", "state") == "uncertain", 20,
             what="the victim uncertain")
    forged = {"code": 200, "msg": "success", "data": {
        "taskId": foreign, "state": "success",
        "resultJson": json.dumps({"resultUrls": ["https://evil.example.com/x.png"]})}}
    assert post_callback(port, forged, "victim") == 200
    ev = wait_events(r, 1, timeout=30)[0]
    tasks = fake_kie.stats(brief=False)["tasks"]
    own = [t for t, v in tasks.items() if v["jobId"] == "victim"]
    assert len(own) == 1
    assert ev["jobId"] == "victim" and ev["status"] == "completed", ev
    assert ev["taskId"] == own[0] != foreign, ev
    assert all("evil.example.com" not in u for u in ev["resultUrls"]), ev
    assert fake_kie.stats()["creates_by_job"] == {"-": 1, "victim": 1}
    assert not r.hget(f"{PREFIX}:task:{foreign}", "jobId")
    assert dead(r) == [] and len(events(r)) == 1
    wait_for(lambda: r.hget(f"{PREFIX}:stats", "callbacks_unowned") == "1", 10,
             what="the forged entry counted")
    # the flood: task ids KIE never made, for jobs that do not exist or for none at all
    queries = fake_kie.stats()["record_info_total"]
    for i in range(30):
        forged = {"code": 200, "msg": "success",
                  "data": {"taskId": f"task_forged_{uuid.uuid4().hex}", "state": "success"}}
        assert post_callback(port, forged, None if i % 3 == 0 else f"nobody-{i}") == 200
    wait_for(lambda: r.hget(f"{PREFIX}:stats", "callbacks_unowned") == "31", 20,
             what="the flood counted")
    assert fake_kie.stats()["record_info_total"] == queries, "a forged entry cost a recordInfo"
    # (the victim's own task hash went with its finalization: none is left at all)
    assert r.keys(f"{PREFIX}:task:*") == [], "a forged entry left a task hash behind"
    assert len(events(r)) == 1


def test_callback_after_the_job_went_dead_is_collected_without_an_event(redis_server, r,
                                                                        fake_kie, workers,
                                                                        tmpdir_path):
    """A job dead-lettered "may have been created" (uncertain, KIE_UNCERTAIN_POLICY=dead)
    whose task's callback comes after the window: the task is adopted and collected — its
    record, copies and metadata — with no job.completed after the job.dead; the job's
    taskId is set, so a dead retry is refused, and the dead letter stays."""
    w, port = unsigned_endpoint(workers, redis_server.url, fake_kie.url,
                                KIE_UNCERTAIN_POLICY="dead", KIE_UNCERTAIN_WINDOW_MS=800)
    fake_kie.config(fail_next_create_http500=1)
    r.lpush(f"{PREFIX}:queue", raw_job("late-1", "a green scarf [fake:slow=4000]"))
    wait_for(lambda: dead(r), 20, what="the job dead-lettered by the policy")
    assert dead(r)[0]["source"] == "uncertain"
    task_id = wait_for(lambda: [t for t, v in fake_kie.stats(brief=False)["tasks"].items()
                                if v["jobId"] == "late-1"], 10, what="its task at KIE")[0]
    wait_for(lambda: r.hget(f"{PREFIX}:task:{task_id}", "finalizedAt"), 30,
             what="the late task collected")
    # finalize.lua marks the task and pushes any event in one step; nothing else may push
    # one later: a poll or a callback would do so within KIE_POLL_MAX_MS (500 ms)
    time.sleep(0.5)
    assert [e["event"] for e in events(r)] == ["job.dead"], events(r)
    assert dead(r)[0].get("mayHaveTask") is True
    job = r.hgetall(f"{PREFIX}:job:late-1")
    assert job["state"] == "dead" and job["taskId"] == task_id, job
    assert "mayHaveTask" not in job and "pending" not in job
    assert len(dead(r)) == 1
    with open(f"{tmpdir_path}/meta/kie-tasks/{task_id}.json") as f:
        rec = json.load(f)
    assert rec["status"] == "completed" and rec["jobId"] == "late-1", rec
    assert rec["type"] == "raw" and rec["prompt"] == "a green scarf [fake:slow=4000]", rec
    assert rec["storedUrls"] and rec["storedUrls"][0], rec  # its result copied
    out = run_kie(["dead", "retry", "late-1", "--json"], base_env(redis_server.url))
    res = json.loads(out.stdout)["results"]
    assert res[0]["outcome"] == "refused" and task_id in res[0]["why"], out.stdout
    assert fake_kie.stats()["creates_by_job"] == {"late-1": 1}
    assert "adopted into a job already dead-lettered" in w.log()


def test_pending_write_never_overwrites_the_final_record(redis_server, r, tmpdir_path, fake_s3,
                                                         workers):
    """The runner records its task in Redis first and writes the pending record after,
    create-if-absent (If-None-Match: *): when the pending write is slow and the task's
    finalization (its callback, a fast poll) lands first, the store keeps the final
    record."""
    fake = FakeKie(tmpdir_path, task_ms=150, create_limit=0, query_limit=0)
    try:
        # the first PUT of each record is held 3 s by the store: the pending one
        fake_s3.config(put_delay_ms=3000, put_delay_prefix="kie-tasks/")
        port = free_port()
        workers(redis_server.url, fake.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
                KIE_CALLBACK_URL=f"http://127.0.0.1:{port}/api/kie/callback",
                KIE_HTTP_TIMEOUT_MS=8000, **fake_s3.env())
        wait_listening(port)
        r.lpush(f"{PREFIX}:queue", raw_job("race-1", "a yellow hat"))
        ev = wait_events(r, 1, timeout=30)[0]
        assert ev["status"] == "completed"
        key = f"kie-tasks/{ev['taskId']}.json"
        wait_for(lambda: fake_s3.stats()["puts_held"] >= 1, 10, what="the held write done")
        rec = json.loads(fake_s3.object(key))
        assert rec["status"] == "completed", rec
        assert rec["resultUrls"] == ev["resultUrls"] and rec["prompt"] == "a yellow hat", rec
        assert rec["type"] == "raw" and rec["taskId"] == ev["taskId"], rec
        assert fake_s3.stats()["put_precondition_failed"] == 1
    finally:
        fake.stop()


def test_an_encoded_jobid_inside_another_parameter_is_not_read_as_one(redis_server, r,
                                                                     fake_kie, workers):
    """KIE's record of the request carries the callBackUrl the worker gave it: a base URL
    with x=%26jobId%3Devil, then jobId=<the job>. The consumer splits the query before it
    decodes, so it reads the job's own id (decoding first read "evil", refused the job's
    own callback, and the window's policy created the job again)."""
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
                KIE_CALLBACK_URL=f"http://127.0.0.1:{port}/api/kie/callback?x=%26jobId%3Devil",
                KIE_UNCERTAIN_WINDOW_MS=5000)
    wait_listening(port)
    fake_kie.config(fail_next_create_http500=1)  # answered 500 after KIE made the task
    r.lpush(f"{PREFIX}:queue", raw_job("enc-1", "a blue bag [fake:slow=500]"))
    ev = wait_events(r, 1, timeout=30)[0]
    assert ev["jobId"] == "enc-1" and ev["status"] == "completed", ev
    # (a refused callback would leave the job to the window's policy, which creates it
    # again before any event: the count is final once the event is there)
    assert fake_kie.stats()["creates_by_job"] == {"enc-1": 1}
    assert "task adopted from its callback" in w.log()
    assert not r.exists(f"{PREFIX}:job:evil")
