"""test_acl.py — the Redis ACL users docs/deploy.md gives ("Who may write to Redis") are
read from that file and applied to a real redis-server: a worker under its user runs a
job to its end, the app's user enqueues and reads its reply, and cannot delete the queue
or touch a job hash."""
import json
import os
import re

import urllib.request

import pytest
import redis

from conftest import ROOT, free_port, wait_for

PASSWORDS = {"app": "app-secret", "kie-worker": "worker-secret"}


def acl_lines():
    with open(os.path.join(ROOT, "docs", "deploy.md")) as f:
        text = f.read()
    lines = re.findall(r"^ACL SETUSER .*$", text, re.M)
    assert {l.split()[2] for l in lines} == {"app", "kie-worker"}, lines
    return lines


def test_the_documented_acl_users_run_a_job(redis_server, r, fake_kie, workers, tmpdir_path):
    admin = redis.Redis(port=redis_server.port)
    for line in acl_lines():
        assert admin.execute_command(*line.split()) in (b"OK", "OK", True)
    admin.execute_command("ACL", "SETUSER", "default", "off")  # nobody else gets in
    pw = os.path.join(tmpdir_path, "redis-password")
    with open(pw, "w") as f:
        f.write(PASSWORDS["kie-worker"])
    url = f"redis://kie-worker@127.0.0.1:{redis_server.port}/0"
    ops = free_port()
    w = workers(url, fake_kie.url, REDIS_PASSWORD_FILE=pw, KIE_OPS_ADDR=f"127.0.0.1:{ops}")
    app = redis.Redis(port=redis_server.port, username="app", password=PASSWORDS["app"],
                      decode_responses=True)
    job = {"v": 1, "id": "acl-1", "type": "raw", "replyTo": "app:replies:u1",
           "input": {"prompt": "a hat", "imageUrl": "https://cdn.example.com/a.png"}}
    app.lpush("kie:queue", json.dumps(job))
    ev = wait_for(lambda: app.brpop("app:replies:u1", 1), 30, what=lambda: w.log()[-3000:])
    assert json.loads(ev[1])["status"] == "completed"
    assert fake_kie.stats()["creates_by_job"] == {"acl-1": 1}
    for cmd in (("DEL", "kie:queue"), ("HSET", "kie:job:acl-1", "state", "queued"),
                ("LPUSH", "kie:callbacks", "x")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*cmd)
    # the app's one-command reads and cancel (docs/protocol.md section 3a)
    keys = ["kie:job:acl-1", "kie:cancel:acl-1", "kie:sched:default:ready",
            "kie:sched:default:delayed", "kie:sched:default:items", "kie:sched:default:state",
            "kie:sched:default:gcount", "kie:stats", "kie:results", "kie:sched:default:parked",
            "app:replies:u1"]
    pos = json.loads(app.execute_command("FCALL_RO", "kie_position", 11, *keys, "acl-1"))
    assert pos["state"] == "completed"
    with pytest.raises(redis.exceptions.ResponseError):  # a cancel writes: not the app's
        app.execute_command("FCALL", "kie_cancel", 11, *keys, "acl-1")
    wk = redis.Redis(port=redis_server.port, username="kie-worker",
                     password=PASSWORDS["kie-worker"], decode_responses=True)
    out = json.loads(wk.execute_command("FCALL", "kie_cancel", 11, *keys, "acl-1"))
    assert out["result"] == "finished"
    metrics = wait_for(lambda: urllib.request.urlopen(
        f"http://127.0.0.1:{ops}/metrics", timeout=5).read().decode(), 10)
    assert "kie_redis_up 1" in metrics  # the pool's gauges were read under the ACL
    assert "NOPERM" not in w.log()
    assert w.stop() == 0
