"""Issue 16, the parsers end to end: every duration and count the CLI, the page and the
settings take refuses NaN, fractions, negatives and overflow with a message naming the
option (a purge meant to select nothing never selects everything, a pause always ends
when it was given an end); settings whose values libcurl would read otherwise than we
check are refused at start-up; a long pose-tweak line is read whole."""
import json
import os
import subprocess

import pytest

from conftest import BIN, base_env, run_kie
from test_web import ADMIN_TOKEN, dead_entry, desc, http, start_page_worker

GOOD = {"Content-Type": "application/json", "Authorization": "Bearer " + ADMIN_TOKEN}


def three_fresh_dead_letters(r):
    for i in range(3):
        r.lpush("kie:dead", dead_entry(f"d-{i}", "KIE refused the job: no", desc(f"d-{i}"),
                                       ago_s=5))


def test_dead_purge_with_a_bad_duration_is_refused(redis_server, r):
    three_fresh_dead_letters(r)
    env = base_env(redis_server.url)
    for value in ("nan", "999999999999d", "1.5h", "-1s", "+5s", " 5s", "1e3s", "inf"):
        p = run_kie(["dead", "purge", "--older-than", value], env)
        assert p.returncode == 2, (value, p.returncode, p.stdout, p.stderr)
        assert "--older-than must be a duration" in p.stderr, p.stderr
        assert r.llen("kie:dead") == 3, value  # before: nan, 999999999999d purged them all
    # a purge meant to select nothing selects nothing
    p = run_kie(["dead", "purge", "--older-than", "1d"], env)
    assert p.returncode == 0, p.stderr
    assert r.llen("kie:dead") == 3


CLI_BAD_COUNTS = [
    (["dead", "list", "--limit", "1.5"], "--limit"),
    (["dead", "list", "--limit", "nan"], "--limit"),
    (["dead", "list", "--limit", " 5"], "--limit"),
    (["dead", "list", "--offset", "-1"], "--offset"),
    (["dead", "purge", "--all", "--limit", "0.5"], "--limit"),
    (["pause", "--for", "0.5"], "--for"),  # a duration (issue 17): its own sentence
    (["pause", "--for", " 500"], "--for"),
    (["pause", "--for", "+500"], "--for"),
    (["pause", "--for", "99999999999999"], "--for"),
    (["pause", "--for", "nan"], "--for"),
    (["pause", "--for", "-5m"], "--for"),
    (["pause", "--for", "367d"], "--for"),
    (["wait", "task-1", "--attempts", "1.5"], "--attempts"),
    (["wait", "task-1", "--interval-ms", "99999999999"], "--interval-ms"),
]


def test_cli_counts_refuse_fractions_spaces_and_overflow(redis_server, r):
    three_fresh_dead_letters(r)
    env = base_env(redis_server.url, "http://127.0.0.1:9", KIE_WAIT_ATTEMPTS=1)
    for args, option in CLI_BAD_COUNTS:
        p = run_kie(args, env)
        assert p.returncode == 2, (args, p.returncode, p.stdout, p.stderr)
        must = " must be a duration" if option == "--for" else " must be a whole number"
        assert option + must in p.stderr, p.stderr
        assert r.llen("kie:dead") == 3 and r.get("kie:pause") is None, args


def test_page_refuses_bad_numbers_and_durations(workers, redis_server, r, fake_kie):
    w, base = start_page_worker(workers, redis_server, fake_kie)
    three_fresh_dead_letters(r)
    # the inputs: a purge of every entry, a pause that never ends
    for body, field in ((b'{"olderThan":"nan"}', "olderThan"),
                        (b'{"olderThan":"999999999999d"}', "olderThan"),
                        (b'{"olderThan":"1d","limit":0.5}', "limit"),
                        (b'{"all":true,"limit":-1}', "limit"),
                        (b'{"type":"raw","dryRun":"true"}', "dryRun")):
        st, _, b = http("POST", base + "api/dead/purge", body, GOOD)
        assert st == 400 and field in json.loads(b)["error"], (body, st, b)
    assert r.llen("kie:dead") == 3
    for body in (b'{"forMs":0.5}', b'{"forMs":-5}', b'{"forMs":1e300}', b'{"forMs":"60000"}'):
        st, _, b = http("POST", base + "api/pause", body, GOOD)
        assert st == 400 and "forMs" in json.loads(b)["error"], (body, st, b)
        assert r.get("kie:pause") is None
    # a good timed pause has an end
    assert http("POST", base + "api/pause", b'{"forMs":60000}', GOOD)[0] == 200
    assert 0 < r.pttl("kie:pause") <= 60000
    # the reads' counts: refused, not clamped or defaulted
    for q in ("limit=abc", "limit=1.5", "limit=0", "limit=501", "offset=-1", "limit=%205"):
        st, _, b = http("GET", base + "api/dead?" + q)
        assert st == 400 and "must be a whole number" in json.loads(b)["error"], (q, st, b)
    assert http("GET", base + "api/completions?limit=nan")[0] == 400
    assert http("GET", base + "api/dead?limit=2")[0] == 200
    assert w.stop() == 0


@pytest.mark.parametrize("name, value, says", [  # each started and ran before
    ("KIE_CALLBACK_URL", "https://a%dd.example/cb", "KIE_CALLBACK_URL has the host"),
    ("KIE_WORKER_CONCURRENCY", " 4", "KIE_WORKER_CONCURRENCY: \" 4\" is not a whole number"),
    ("KIE_COPY_ALLOW_PRIVATE", "yes", "KIE_COPY_ALLOW_PRIVATE: \"yes\" is not an IP"),
])
def test_worker_refuses_settings_at_start(redis_server, fake_kie, tmpdir_path, name, value,
                                          says):
    env = base_env(redis_server.url, fake_kie.url, tmpdir_path, **{name: value})
    p = subprocess.run([os.path.join(BIN, "kie-worker")], env=env, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr[-2000:])
    assert says in p.stderr, p.stderr[-2000:]


def test_a_long_pose_tweak_line_is_read_whole(tmpdir_path):
    d = os.path.join(tmpdir_path, "prompts")
    os.makedirs(d)
    line = "x" + "é" * 700  # byte 1023 is inside a character
    with open(os.path.join(d, "pose_tweaks.txt"), "w", encoding="utf-8") as f:
        f.write(line + "\n")
    env = base_env(KIE_PROMPTS_DIR=d)
    p = run_kie(["prompt", "outfit-change-v2", "--clothing-image", "https://a.example/c.png",
                 "--model-image", "https://a.example/m.png", "--pose-tweak"], env)
    assert p.returncode == 0, (p.returncode, p.stderr)  # before: 3, "not valid UTF-8"
    assert p.stdout.rstrip("\n").endswith(" " + line), p.stdout[-200:]
