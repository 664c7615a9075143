"""The README's run command (scripts/demo.sh, what `make demo` runs after building) and the
compose file users start the pool with."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, ROOT, SAN_ENV


def test_demo_runs_every_type_to_a_completed_record(tmpdir_path):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIE_", "R2_", "REDIS_"))}  # embedded defaults only
    env.update(SAN_ENV, KIE_BIN_DIR=BIN, KIE_METADATA_DIR=os.path.join(tmpdir_path, "data"))
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "demo.sh")], env=env,
                       capture_output=True, text=True, timeout=180)
    out = p.stdout
    assert p.returncode == 0, out + p.stderr
    assert "DEMO MODE" in out and "throwaway redis-server" in out
    events = [json.loads(l) for l in out.splitlines() if l.startswith('{') and '"event"' in l]
    assert sorted(e["type"] for e in events) == sorted(
        ["generate_image", "model_pose", "extract_clothing", "outfit_change_v2", "raw"]), out
    assert {e["status"] for e in events} == {"completed"}, out
    for e in events:
        with open(os.path.join(tmpdir_path, "data", "kie-tasks", f"{e['taskId']}.json")) as f:
            rec = json.load(f)
        assert rec["status"] == "completed" and rec["resultUrls"] == e["resultUrls"]
        assert rec["jobId"] == e["jobId"]
        assert f"--- {e['taskId']}.json" in out


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose absent")
def test_compose_file_is_valid_and_demands_the_token(tmpdir_path):
    compose = os.path.join(ROOT, "docker-compose.yml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIE_", "R2_"))}
    ok = subprocess.run(["docker-compose", "-f", compose, "config"], capture_output=True,
                        text=True, env=dict(env, KIE_API_TOKEN="sk-test"), timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "redis-server" in ok.stdout and "KIE_API_TOKEN: sk-test" in ok.stdout
    missing = subprocess.run(["docker-compose", "-f", compose, "config", "-q"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert missing.returncode != 0
    assert "set KIE_API_TOKEN" in missing.stderr
