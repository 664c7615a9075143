"""Issue 17, point 5: the kie tool (and what the worker shows operators) does what its help,
man page and docs say: settings as flags, --json on pause and resume, one unit for
durations, compact JSON, dead list counts, job show's states, ISO-8601 times, the exit
code of a short admin token, the metrics of a malformed job, the favicon, capped replyTo
lists, a whole task id in recordInfo's query. Each test runs the real binaries."""
import datetime
import http.client
import json
import os
import re
import subprocess

from conftest import ROOT, base_env, free_port, run_kie, wait_for

P = "kie"


def desc(job_id, type_="raw", **kw):
    d = {"v": 1, "id": job_id, "type": type_, "maxAttempts": 1,
         "input": {"prompt": "a red coat", "imageUrl": "https://example.com/a.png"}}
    d.update(kw)
    return json.dumps(d)


def get(port, path, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers={"User-Agent": "kie-tests", "Host": f"127.0.0.1:{port}"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start_http_worker(workers, redis_server, fake_kie, **extra):
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}", **extra)

    def up():
        if w.proc.poll() is not None:
            raise AssertionError(f"worker exited {w.proc.returncode}:\n{w.log()[-3000:]}")
        try:
            return get(port, "/healthz")[0] == 200
        except OSError:
            return False
    wait_for(up, 20, what="the worker's HTTP server")
    return w, port


# --- any setting as --flag VALUE, on any command that reads settings ---

def test_settings_as_flags_on_every_command(redis_server, r):
    # the environment points at nothing: only the flag can reach this Redis
    env = base_env(f"redis://127.0.0.1:{free_port()}/0")
    r.lpush(f"{P}x:queue", desc("f-1"))
    for args in (["stats", "--redis-url", redis_server.url, "--prefix", "kiex"],
                 ["stats", f"--redis-url={redis_server.url}", "--KIE_REDIS_PREFIX=kiex"],
                 ["stats", "--json", "--redis-url", redis_server.url, "--prefix", "kiex"]):
        p = run_kie(args, env)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        assert "queue 1" in p.stdout or '"queue":1' in p.stdout, p.stdout
    p = run_kie(["job", "show", "f-1", "--redis-url", redis_server.url, "--prefix", "kiex"], env)
    assert p.returncode == 0 and "queued" in p.stdout, (p.stdout, p.stderr)
    p = run_kie(["dead", "list", "--redis-url", redis_server.url], env)
    assert p.returncode == 0, p.stderr
    # kie config shows the flags over the environment
    p = run_kie(["config", "--concurrency", "7", "--log-level", "debug"], env)
    assert p.returncode == 0 and "KIE_WORKER_CONCURRENCY=7" in p.stdout, p.stderr
    assert "KIE_LOG_LEVEL=debug" in p.stdout
    # a setting's bounds, a secret, a password in a URL, an ambiguous prefix: refused, exit 2
    for args, said in ((["stats", "--concurrency", "0"], "KIE_WORKER_CONCURRENCY"),
                       (["stats", "--token", "x"], "secrets are not taken"),
                       (["stats", "--redis-url", "redis://:pw@127.0.0.1:1/0"], "password"),
                       (["stats", "--redis", "x"], "ambiguous"),
                       (["stats", "--no-such-thing", "x"], "unrecognized option")):
        p = run_kie(args, env)
        assert p.returncode == 2 and said in p.stderr, (args, p.returncode, p.stderr)


def test_worker_takes_settings_by_flag_and_refuses_an_ambiguous_prefix():
    env = base_env()
    exe = os.path.join(os.environ.get("KIE_BIN_DIR", os.path.join(ROOT, "build")), "kie-worker")
    p = subprocess.run([exe, "--concurrency", "3", "--KIE_WORKER_POLLERS=5", "--print-config"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "KIE_WORKER_CONCURRENCY=3" in p.stdout and "KIE_WORKER_POLLERS=5" in p.stdout
    # "--redis" is the start of eight settings' names: it must not pick one
    p = subprocess.run([exe, "--redis", "redis://127.0.0.1:1/0", "--print-config"], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "ambiguous" in p.stderr, (p.returncode, p.stdout, p.stderr)


# --- pause and resume take --json; one unit for durations ---

def test_pause_resume_json_and_durations(redis_server, r):
    env = base_env(redis_server.url)
    p = run_kie(["pause", "--json", "--reason", "deploy", "--for", "15m"], env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("\n") == 1
    out = json.loads(p.stdout)
    assert out == {"paused": True, "kind": "operator", "reason": "deploy", "remainingMs": 900000}
    assert 890000 < r.pttl(f"{P}:pause") <= 900000
    p = run_kie(["resume", "--json"], env)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"resumed": True,
                                    "was": {"kind": "operator", "reason": "deploy"}}
    assert json.loads(run_kie(["resume", "--json"], env).stdout) == {"resumed": False,
                                                                     "was": None}
    # a plain number is seconds, as for --older-than (it was milliseconds)
    p = run_kie(["pause", "--for", "90"], env)
    assert p.returncode == 0 and "paused for 90s (until 20" in p.stdout, p.stdout
    assert 80000 < r.pttl(f"{P}:pause") <= 90000
    p = run_kie(["pause", "--for", "500ms", "--json"], env)
    assert json.loads(p.stdout)["remainingMs"] == 500 and 0 < r.pttl(f"{P}:pause") <= 500
    for bad in ("nan", "1.5h", "-1m", "0", "367d", "99999999999999999999", "1e3"):
        p = run_kie(["pause", "--for", bad], env)
        assert p.returncode == 2 and "--for must be a duration" in p.stderr, (bad, p.stderr)


def test_page_pause_takes_the_same_durations(workers, redis_server, r, fake_kie):
    token = "op-token-0123456789abcdef"
    w, port = start_http_worker(workers, redis_server, fake_kie, KIE_ADMIN_PAGE="on",
                                KIE_ADMIN_TOKEN=token)

    def post(body):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("POST", "/admin/api/pause", body=json.dumps(body),
                         headers={"Host": f"127.0.0.1:{port}", "Content-Type": "application/json",
                                  "Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()
    st, body = post({"reason": "x", "for": "2h"})
    assert st == 200, body
    assert 7190000 < r.pttl(f"{P}:pause") <= 7200000
    st, body = post({"for": "45"})  # seconds
    assert st == 200 and 40000 < r.pttl(f"{P}:pause") <= 45000
    for bad in ({"for": "nan"}, {"for": "1.5h"}, {"for": 90}, {"for": "1m", "forMs": 60000}):
        st, body = post(bad)
        assert st == 400 and "for" in body["error"], (bad, st, body)
    st, _ = post({"forMs": 60000})  # the millisecond field scripts may use stays
    assert st == 200 and 50000 < r.pttl(f"{P}:pause") <= 60000


# --- dead list says shown, matching and total apart ---

def test_dead_list_counts_shown_matching_and_total(redis_server, r):
    env = base_env(redis_server.url)
    at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for i in range(137):
        t = "raw" if i % 2 else "model_pose"
        r.lpush(f"{P}:dead", json.dumps({"v": 1, "jobId": f"d-{i}", "reason": "KIE refused "
                                         "the job: no", "source": "kie", "raw": desc(f"d-{i}", t),
                                         "failedAt": at}))
    p = run_kie(["dead", "list", "--limit", "3"], env)
    assert p.returncode == 0 and p.stdout.startswith("3 shown of 137 dead letters\n"), p.stdout
    p = run_kie(["dead", "list", "--limit", "3", "--type", "raw"], env)
    assert p.stdout.startswith("3 shown of 68 matching (of 137 dead letters)\n"), p.stdout
    p = run_kie(["dead", "list", "--limit", "3", "--offset", "67", "--type", "raw"], env)
    assert p.stdout.startswith("1 shown of 68 matching (of 137 dead letters)\n"), p.stdout
    # --json: JSON Lines, one entry a line, the counts on stderr
    p = run_kie(["dead", "list", "--limit", "3", "--type", "model_pose", "--json"], env)
    lines = p.stdout.splitlines()
    assert p.returncode == 0 and len(lines) == 3, p.stdout
    assert [json.loads(ln)["type"] for ln in lines] == ["model_pose"] * 3
    assert p.stderr == "3 shown of 69 matching (of 137 dead letters)\n"


# --- job show tells queued, in flight, uncertain, dead, finished and unknown apart ---

def test_job_show_tells_every_state_apart(redis_server, r):
    env = base_env(redis_server.url)
    rt = r.time()
    now = rt[0] * 1000 + rt[1] // 1000
    r.lpush(f"{P}:queue", desc("in-queue"))                      # pushed, no hash yet
    r.zadd(f"{P}:delayed", {desc("in-delayed"): now + 60000})   # delayed, no hash
    r.hset(f"{P}:job:retrying", mapping={"state": "retry_wait", "retryAt": now + 5000,
                                         "attempts": 1, "createdAt": 1700000000000})
    r.hset(f"{P}:job:claimed", mapping={"state": "queued", "owner": "w#0",
                                        "lease": now + 10000})
    r.hset(f"{P}:job:creating", mapping={"state": "creating", "owner": "w#1", "attempts": 1,
                                         "lease": now + 10000})
    r.hset(f"{P}:job:polling", mapping={"state": "polling", "taskId": "task-9"})
    r.hset(f"{P}:job:unsure", mapping={"state": "uncertain", "uncertainUntil": now + 240000})
    r.hset(f"{P}:job:gone", mapping={"state": "dead", "error": "KIE refused the job: no"})
    r.hset(f"{P}:job:done", mapping={"state": "completed", "taskId": "task-1"})
    want = {"in-queue": ("queued", "in the queue, waiting to be claimed"),
            "in-delayed": ("queued", "waiting for a retry, due 20"),
            "retrying": ("queued", "waiting for a retry, due 20"),
            "claimed": ("in_flight", "claimed by w#0"),
            "creating": ("in_flight", "creating its task (attempt 1) on w#1"),
            "polling": ("in_flight", "its task task-9 is polled"),
            "unsure": ("uncertain", "left in its window (until 20"),
            "gone": ("dead", "in the dead letters: KIE refused the job: no"),
            "done": ("finished", "completed, task task-1")}
    for job, (status, text) in want.items():
        p = run_kie(["job", "show", job, "--json"], env)
        assert p.returncode == 0 and p.stdout.count("\n") == 1, (job, p.stdout, p.stderr)
        assert json.loads(p.stdout)["status"] == status, (job, p.stdout)
        p = run_kie(["job", "show", job], env)
        first = p.stdout.splitlines()[0]
        assert p.returncode == 0 and text in first, (job, first)
    left = json.loads(run_kie(["job", "show", "unsure", "--json"], env).stdout)["uncertainLeftMs"]
    assert 200000 < left <= 240000
    # times for people are ISO-8601 UTC, not epoch milliseconds
    p = run_kie(["job", "show", "retrying"], env)
    assert re.search(r"createdAt\s+2023-11-14T22:13:20\.000Z", p.stdout), p.stdout
    assert "1700000000000" not in p.stdout
    # an id that never existed is not a queued job
    p = run_kie(["job", "show", "never-was"], env)
    assert p.returncode == 9 and "unknown job never-was" in p.stderr, p.stderr
    assert json.loads(run_kie(["job", "show", "never-was", "--json"], env).stdout)["status"] == \
        "unknown"


# --- --json is compact: one object, or one object a line for a list ---

def test_json_output_is_compact(redis_server, r):
    env = base_env(redis_server.url)
    r.lpush(f"{P}:queue", desc("c-1"))
    for args in (["stats"], ["job", "show", "c-1"], ["pause"], ["resume"]):
        p = run_kie(args + ["--json"], env)
        assert p.returncode == 0 and p.stdout.count("\n") == 1, (args, p.stdout)
        json.loads(p.stdout)


# --- the man page gives the exit code the worker uses for a short admin token ---

def test_short_admin_token_exit_code_is_the_documented_one(workers, redis_server, fake_kie):
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{free_port()}",
                KIE_ADMIN_PAGE="on", KIE_ADMIN_TOKEN="short")
    rc = w.wait(30)
    assert rc == 2 and "KIE_ADMIN_TOKEN is shorter than 16 bytes" in w.log()
    with open(os.path.join(ROOT, "man", "kie-worker.1")) as f:
        page = f.read()
    para = page[page.index(r"\fBKIE_ADMIN_TOKEN\fR, \fB\-\-admin\-token"):]
    para = para[:para.index(".TP")]
    assert "exit\nstatus 2" in para or "exit status 2" in para, para


# --- a malformed job whose type was readable is counted under its type ---

def test_malformed_job_is_counted_under_its_type(workers, redis_server, r, fake_kie):
    w, port = start_http_worker(workers, redis_server, fake_kie)
    # strict JSON, a known type, a missing field
    r.lpush(f"{P}:queue", json.dumps({"v": 1, "id": "m-1", "type": "generate_image",
                                      "input": {}}))
    wait_for(lambda: r.llen(f"{P}:dead") == 1, 20, what="the dead letter")
    ev = json.loads(r.lrange(f"{P}:results", 0, 0)[0])
    assert ev["jobId"] == "m-1" and ev["type"] == "generate_image", ev

    def sample(text, name, labels):
        m = re.search(rf"^{name}\{{{labels}\}} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None
    metrics = get(port, "/metrics")[1].decode()
    assert sample(metrics, "kie_jobs_total", 'type="generate_image",outcome="dead"') == 1, \
        re.findall(r"^kie_jobs_total.*dead.*$", metrics, re.M)
    assert sample(metrics, "kie_jobs_total", 'type="unknown",outcome="dead"') == 0


# --- the favicon, and a 404 warning that names its path ---

def test_favicon_answers_204_and_a_404_names_its_path(workers, redis_server, fake_kie):
    w, port = start_http_worker(workers, redis_server, fake_kie, KIE_ADMIN_PAGE="on")
    st, body = get(port, "/favicon.ico")
    assert st == 204 and body == b""
    st, body = get(port, "/no/such%1bpath")
    assert st == 404 and json.loads(body) == {"code": 404, "msg": "not found"}, body
    wait_for(lambda: 'not found: GET \\"/no/such?path\\"' in w.log() or
             'not found: GET "/no/such?path"' in w.log(), 10, what=lambda: w.log()[-2000:])
    assert "favicon" not in w.log()
    assert "\x1b" not in w.log()


# --- replyTo lists are capped and expire ---

def test_reply_lists_are_capped_and_expire(workers, redis_server, r, fake_kie):
    reply = f"{P}:replies:user-1"
    workers(redis_server.url, fake_kie.url, KIE_REPLY_MAX=2, KIE_REPLY_TTL_S=120)
    for i in range(3):
        r.lpush(f"{P}:queue", desc(f"rp-{i}", replyTo=reply))
    r.lpush(f"{P}:queue", desc("rp-bad", "generate_image", replyTo=reply, input={}))
    wait_for(lambda: r.llen(f"{P}:results") == 4, 60, what="four events")
    assert r.llen(reply) == 2
    assert 0 < r.ttl(reply) <= 120


# --- the task id in recordInfo's query is encoded whole ---

def test_record_info_task_id_is_encoded_whole(fake_kie):
    env = base_env(None, fake_kie.url)
    tid = "/ +&=?#%" * 128  # 1024 bytes, every one percent-encoded: 3072 bytes
    p = run_kie(["status", tid], env)
    assert p.returncode == 3, (p.returncode, p.stderr)  # KIE: no such task
    assert fake_kie.stats()["record_info_last_task_id"] == tid
