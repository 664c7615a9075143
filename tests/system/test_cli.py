"""The kie CLI and the C client against the KIE fake (every error class and exit code),
and the r2 metadata store against the SigV4-verifying S3 fake."""
import json
import os

import pytest

from conftest import TOKEN, base_env, free_port, run_kie

SEED_CALLBACK = {"code": 200, "msg": "success", "data": {
    "taskId": "kie-task-123", "state": "success",
    "resultJson": "{\"resultUrls\":[\"https://cdn.example.com/kie/task123.png\"]}",
    "consumeCredits": 3, "costTime": 18.4, "createTime": 1731571200000,
    "completeTime": 1731571218000, "updateTime": 1731571218000,
    "model": "google/nano-banana-edit", "param": "...", "remainedCredits": 997}}


@pytest.fixture
def env(fake_kie, tmpdir_path):
    return base_env(None, fake_kie.url, tmpdir_path, KIE_WAIT_INTERVAL_MS=100,
                    KIE_WAIT_ATTEMPTS=100, KIE_HTTP_TIMEOUT_MS=3000)


def test_create_and_wait_for_the_result_url(env, fake_kie, tmpdir_path):
    p = run_kie(["create", "generate-image", "--description", "淡紫色丝绒短外套",
                 "--image", "https://img.example.com/m.png", "--white-mask", "--wait",
                 "--job-id", "cli-1", "--callback-url", "http://127.0.0.1:9/cb"], env)
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["success"] is True and res["state"] == "success"
    assert res["resultUrls"][0].startswith(fake_kie.url + "/files/")
    assert isinstance(res["costTime"], (int, float))
    rec = json.load(open(os.path.join(tmpdir_path, "meta", "kie-tasks",
                                      res["taskId"] + ".json")))
    assert rec["status"] == "completed" and rec["jobId"] == "cli-1"
    assert rec["type"] == "generate_image" and "淡紫色丝绒短外套" in rec["prompt"]
    assert rec["resultUrls"] == res["resultUrls"] and rec["ratio"] == "9:16"
    assert fake_kie.stats()["creates_by_job"] == {"cli-1": 1}


def test_create_then_status_then_wait(env):
    p = run_kie(["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"], env)
    assert p.returncode == 0, p.stderr
    tid = json.loads(p.stdout)["taskId"]
    s = run_kie(["status", tid], env)
    assert s.returncode == 0 and json.loads(s.stdout)["state"] in ("waiting", "generating")
    w = run_kie(["wait", tid, "--interval-ms", "100"], env)
    assert w.returncode == 0 and json.loads(w.stdout)["success"] is True


def test_dry_run_bodies_for_every_operation(env):
    def body(*args):
        p = run_kie(["create", *args, "--dry-run"], env)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)
    b = body("extract-clothing", "--image", "https://a.b/c.png", "--recommend-matches",
             "--ratio", "1:1")
    assert b["input"]["aspect_ratio"] == "1:1" and b["model"] == "google/nano-banana-edit"
    assert "image_size" not in b["input"] and "callBackUrl" not in b
    b = body("outfit-change-v2", "--clothing-image", "https://a.b/c.png", "--model-image",
             "https://a.b/m.png", "--pose-tweak", "--seed", "2", "--job-id", "j-1",
             "--callback-url", "http://h/cb?x=1")
    assert b["input"]["image_urls"] == ["https://a.b/c.png", "https://a.b/m.png"]
    b2 = body("outfit-change-v2", "--clothing-image", "https://a.b/c.png", "--model-image",
              "https://a.b/m.png", "--pose-tweak", "--seed", "2")
    assert b["input"]["prompt"] == b2["input"]["prompt"]  # same seed, same tweak
    p = run_kie(["create", "model-pose", "--image", "https://a.b/c.png", "--job-id", "bad id",
                 "--dry-run"], env)
    assert p.returncode == 3 and "id must be" in p.stderr
    b = body("model-pose", "--image", "https://a.b/c.png", "--pose", "sitting",
             "--format", "jpeg", "--ratio", "3:4", "--callback-url", "http://h/cb?x=1",
             "--job-id", "pose-1")
    assert "sitting" in b["input"]["prompt"] and b["input"]["output_format"] == "jpeg"
    assert b["callBackUrl"] == "http://h/cb?x=1&jobId=pose-1"


@pytest.mark.parametrize("args,fault,code,needle", [
    (["status", "task_does_not_exist"], {}, 3, "KIE code 404"),
    (["create", "raw", "--prompt", "[fake:400] x", "--image", "https://a.b/c.png"], {}, 3,
     "class=permanent"),
    (["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"],
     {"create_limit": 1, "create_window_s": 60}, 4, "KIE code 429"),
    (["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"],
     {"fail_next_create_http500": 1}, 6, "class=ambiguous"),
    (["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"],
     {"malformed_next": 1}, 6, "not a JSON object"),
    (["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"],
     {"hang_next_ms": 5000}, 6, "request was sent, no answer"),
    (["status", "task_x"], {"fail_next_record_info_http500": 1}, 4, "class=retryable"),
    (["credits"], {"token": "rotated"}, 5, "class=account"),
])
def test_error_classes_and_exit_codes(env, fake_kie, args, fault, code, needle):
    fake_kie.config(**fault)
    if fault.get("create_limit"):  # use up the window's one create
        assert run_kie(["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"],
                       env).returncode == 0
    p = run_kie(args, env)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert needle in p.stderr, p.stderr
    assert TOKEN not in p.stderr + p.stdout


def test_connection_refused_is_retryable_and_not_sent(env):
    env["KIE_BASE_URL"] = f"http://127.0.0.1:{free_port()}"
    p = run_kie(["create", "raw", "--prompt", "x", "--image", "https://a.b/c.png"], env)
    assert p.returncode == 4 and "request was not sent" in p.stderr


def test_failed_task_exit_1_and_credits(env):
    p = run_kie(["create", "raw", "--prompt", "[fake:fail] x", "--image", "https://a.b/c.png",
                 "--wait"], env)
    assert p.returncode == 1
    res = json.loads(p.stdout)
    assert res["success"] is False and res["state"] == "fail" and res["error"]
    c = run_kie(["credits"], env)
    assert c.returncode == 0 and isinstance(json.loads(c.stdout)["credits"], (int, float))


def test_callback_normalization_of_the_seed_example(env):
    p = run_kie(["callback"], env, input=json.dumps(SEED_CALLBACK))
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res == {"taskId": "kie-task-123", "success": True, "state": "success",
                   "resultUrls": ["https://cdn.example.com/kie/task123.png"], "error": None,
                   "credits": 3, "costTime": 18400, "updateTime": 1731571218000}
    fail = {"code": 501, "msg": "failed", "data": {"task_id": "t-2", "state": "fail",
            "failCode": "501", "failMsg": "nsfw", "creditsConsumed": 0}}
    p = run_kie(["callback"], env, input=json.dumps(fail))
    assert p.returncode == 1
    res = json.loads(p.stdout)
    assert res["taskId"] == "t-2" and res["error"] == "nsfw" and res["credits"] == 0


def test_prompt_overrides_from_a_directory(env, tmpdir_path):
    d = os.path.join(tmpdir_path, "prompts")
    os.makedirs(d)
    with open(os.path.join(d, "model_pose.txt"), "w") as f:
        f.write("OVERRIDDEN: {{pose}}\n")
    env["KIE_PROMPTS_DIR"] = d
    p = run_kie(["prompt", "model-pose", "--image", "https://a.b/c.png", "--pose", "jump"], env)
    assert p.returncode == 0 and p.stdout.strip() == "OVERRIDDEN: jump"
    with open(os.path.join(d, "extract_clothing.txt"), "wb") as f:
        f.write(b"\xff\xfe bad")
    p = run_kie(["prompt", "model-pose", "--image", "https://a.b/c.png"], env)
    assert p.returncode == 2 and "extract_clothing.txt is not valid UTF-8" in p.stderr


def test_help_everywhere_and_config_errors(env):
    for args in (["--help"], ["create", "--help"], ["status", "--help"], ["wait", "--help"],
                 ["credits", "--help"], ["callback", "--help"], ["prompt", "--help"],
                 ["metadata", "--help"], ["config", "--help"]):
        p = run_kie(args, env)
        assert p.returncode == 0 and "usage" in (p.stdout + p.stderr).lower() or \
            "KIE_API_TOKEN" in p.stdout, args
    p = run_kie(["config"], env)
    assert "KIE_API_TOKEN=(set)" in p.stdout and TOKEN not in p.stdout
    env["KIE_HTTP_TIMEOUT_MS"] = "5s"
    p = run_kie(["status", "t"], env)
    assert p.returncode == 2 and "KIE_HTTP_TIMEOUT_MS" in p.stderr
    del env["KIE_API_TOKEN"]
    env["KIE_HTTP_TIMEOUT_MS"] = "3000"
    p = run_kie(["status", "t"], env)
    assert p.returncode == 2 and "KIE_API_TOKEN is not set" in p.stderr
    p = run_kie(["frobnicate"], env)
    assert p.returncode == 2 and "unknown command" in p.stderr


def test_r2_round_trip_through_the_verifying_endpoint(env, fake_s3):
    env.update(fake_s3.env())
    p = run_kie(["create", "extract-clothing", "--image", "https://a.b/c.png", "--wait",
                 "--character", "mia"], env)
    assert p.returncode == 0, p.stderr
    tid = json.loads(p.stdout)["taskId"]
    g = run_kie(["metadata", "get", tid], env)
    assert g.returncode == 0, g.stderr
    rec = json.loads(g.stdout)
    assert rec["status"] == "completed" and rec["character"] == "mia" and rec["ratio"] == "1:1"
    stats = fake_s3.stats()
    assert stats["accepted"] >= 3 and stats["rejected_by_code"] == {}
    u = run_kie(["metadata", "update", tid, '{"note":"kept"}'], env)
    assert u.returncode == 0
    rec2 = json.loads(run_kie(["metadata", "get", tid], env).stdout)
    assert rec2["note"] == "kept" and rec2["status"] == "completed"  # merged, rest kept
    assert run_kie(["metadata", "get", "task_missing"], env).returncode == 1


def test_r2_wrong_secret_fails_clearly(env, fake_s3):
    env.update(fake_s3.env(secret="not-the-secret"))
    p = run_kie(["metadata", "get", "task_x"], env)
    assert p.returncode == 7
    assert "SignatureDoesNotMatch" in p.stderr and "R2_SECRET_ACCESS_KEY" in p.stderr
    assert "not-the-secret" not in p.stderr
    assert fake_s3.stats()["rejected_by_code"] == {"SignatureDoesNotMatch": 1}
    env.update(fake_s3.env())
    del env["R2_BUCKET_NAME"]
    p = run_kie(["metadata", "get", "task_x"], env)
    assert p.returncode == 2 and "R2_BUCKET_NAME is not set" in p.stderr
