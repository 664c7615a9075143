"""System tests of secrets: the Redis password (in REDIS_URL or REDIS_PASSWORD_FILE) and the
KIE token never shown by --print-config, `kie config`, start-up errors or the worker's log;
secrets refused on the command line; <NAME>_FILE secrets end to end against a real
redis-server started with --requirepass and the KIE fake."""
import json
import os
import subprocess
import urllib.parse

import pytest

from conftest import BIN, FakeKie, RedisServer, base_env, run_kie, wait_for

PREFIX = "kie"
# Distinctive values, each with characters a URL must percent-encode.
PASSWORD = "Pw-hunter2@x/y:z"
PASSWORD_ENC = urllib.parse.quote(PASSWORD, safe="")
KIE_TOKEN = "sk-kie-S3cretT0ken-for-tests"
SECRETS = (PASSWORD, PASSWORD_ENC, "hunter2", KIE_TOKEN)


def assert_no_secret(text, what):
    for s in SECRETS:
        assert s not in text, f"{what} holds {s!r}:\n{text[-3000:]}"


class PasswordRedis(RedisServer):
    """A real redis-server that wants a password (requirepass)."""

    def start(self):
        import redis
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--requirepass", PASSWORD, "--logfile", os.path.join(self.dir, "redis.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited early")
            try:
                return redis.Redis(port=self.port, password=PASSWORD).ping()
            except Exception:
                return False
        wait_for(up, 10, what="redis-server (requirepass)")

    @property
    def url(self):
        """REDIS_URL without the password (it comes from REDIS_PASSWORD_FILE)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def url_with_password(self):
        return f"redis://:{PASSWORD_ENC}@127.0.0.1:{self.port}/0"

    def client(self):
        import redis
        return redis.Redis(port=self.port, password=PASSWORD, decode_responses=True)


@pytest.fixture
def pw_redis(tmpdir_path):
    d = os.path.join(tmpdir_path, "redis-pw")
    os.makedirs(d)
    srv = PasswordRedis(d)
    yield srv
    srv.stop()


@pytest.fixture
def kie_fake(tmpdir_path):
    """The KIE fake, accepting only KIE_TOKEN."""
    f = FakeKie(tmpdir_path, task_ms=300, create_limit=0, token=KIE_TOKEN)
    yield f
    f.stop()


def write_secret(tmp, name, value):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(value + "\n")  # as `echo value > file` writes it
    os.chmod(path, 0o600)
    return path


def job(job_id):
    return json.dumps({"v": 1, "id": job_id, "type": "raw",
                       "input": {"prompt": "a red coat on a mannequin",
                                 "imageUrls": ["https://img.example.com/c.png"]}})


def wait_completed(r, n, timeout=60):
    def done():
        evs = [json.loads(e) for e in r.lrange(f"{PREFIX}:results", 0, -1)]
        return len(evs) >= n and evs
    evs = wait_for(done, timeout, what=f"{n} completion events")
    assert all(e["status"] == "completed" for e in evs), evs
    return evs


def run_worker(args, env, timeout=20):
    return subprocess.run([os.path.join(BIN, "kie-worker")] + list(args), env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_print_config_and_kie_config_mask_the_redis_password(pw_redis, tmpdir_path):
    url = f"redis://alice:{PASSWORD_ENC}@127.0.0.1:{pw_redis.port}/0"
    env = base_env(url, None, tmpdir_path, KIE_API_TOKEN=KIE_TOKEN,
                   KIE_CALLBACK_URL=f"https://cb:{PASSWORD_ENC}@hooks.example/kie")
    want = f"REDIS_URL=redis://alice:***@127.0.0.1:{pw_redis.port}/0\n"
    p = run_worker(["--print-config"], env)
    assert p.returncode == 0, p.stderr
    assert want in p.stdout
    assert "KIE_API_TOKEN=(set)\n" in p.stdout
    assert "KIE_CALLBACK_URL=https://cb:***@hooks.example/kie\n" in p.stdout
    assert_no_secret(p.stdout + p.stderr, "kie-worker --print-config")
    k = run_kie(["config"], env)
    assert k.returncode == 0, k.stderr
    assert want in k.stdout
    assert_no_secret(k.stdout + k.stderr, "kie config")
    # a lone user part is the password, as redis-cli reads it: masked whole
    env["REDIS_URL"] = f"redis://{PASSWORD_ENC}@127.0.0.1:{pw_redis.port}/0"
    p = run_worker(["--print-config"], env)
    assert f"REDIS_URL=redis://***@127.0.0.1:{pw_redis.port}/0\n" in p.stdout
    assert_no_secret(p.stdout + p.stderr, "kie-worker --print-config")


@pytest.mark.parametrize("url, says", [
    (f"redis://:{PASSWORD_ENC}@127.0.0.1:0/0", "port 0 is not 1..65535"),
    (f"redis://:{PASSWORD_ENC}@127.0.0.1:70000/0", "port is not a number"),
    (f"redis://:{PASSWORD_ENC}@/0", "has no host"),
    (f"redis://:{PASSWORD_ENC}@127.0.0.1:6379/1001", "not a number 0..1000"),
    (f"rediss://:{PASSWORD_ENC}@127.0.0.1:0/0", "port 0 is not 1..65535"),
    (f"redis://:{PASSWORD}@127.0.0.1:6379/0", "REDIS_URL"),  # not encoded: not a URL
    (f"redis://:{PASSWORD_ENC}@127.0.0.1:6379/0?password={PASSWORD_ENC}", "no query"),
    (f"http://:{PASSWORD_ENC}@127.0.0.1:6379/0", "must start with redis://"),
])
def test_bad_redis_url_start_up_error_never_quotes_the_password(url, says, tmpdir_path):
    env = base_env(url, None, tmpdir_path, KIE_API_TOKEN=KIE_TOKEN)
    p = run_worker([], env)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "REDIS_URL" in p.stderr and says in p.stderr, p.stderr
    assert_no_secret(p.stdout + p.stderr, "the start-up error")
    k = run_kie(["config"], env)
    assert k.returncode == 2 and "REDIS_URL" in k.stderr, k.stderr
    assert_no_secret(k.stdout + k.stderr, "kie config's error")
    # --print-config reads the settings first: the same error, the same silence
    p = run_worker(["--print-config"], env)
    assert p.returncode == 2
    assert_no_secret(p.stdout + p.stderr, "kie-worker --print-config's error")


def proc_cmdlines(marker):
    """The command lines of the processes whose environment holds marker (this test's
    directory: what the test started, and their children, wherever they were reparented).
    Not every process on the machine: the system tests run in parallel, and another case
    of the same test may be running its refused worker at this instant."""
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker.encode() not in f.read():
                        continue
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    out.append(f.read().decode(errors="replace"))
            except OSError:
                pass
    return out


@pytest.mark.parametrize("args, says", [
    (["--token", KIE_TOKEN], "--token: secrets are not taken on the command line"),
    ([f"--token={KIE_TOKEN}"], "set KIE_API_TOKEN or KIE_API_TOKEN_FILE"),
    (["--KIE_API_TOKEN", KIE_TOKEN], "set KIE_API_TOKEN or KIE_API_TOKEN_FILE"),
    (["--webhook-hmac-key", KIE_TOKEN], "set KIE_WEBHOOK_HMAC_KEY or KIE_WEBHOOK_HMAC_KEY_FILE"),
    (["--R2_SECRET_ACCESS_KEY", KIE_TOKEN], "R2_SECRET_ACCESS_KEY_FILE"),
    (["--redis-url", f"redis://:{PASSWORD_ENC}@127.0.0.1:6379/0"], "REDIS_PASSWORD_FILE"),
    (["--drain", "--redis-url", f"redis://{PASSWORD_ENC}@127.0.0.1:6379/0"],
     "a Redis password is not taken on the command line"),
])
def test_secret_on_the_command_line_is_refused(args, says, tmpdir_path):
    env = base_env("redis://127.0.0.1:6379/0", None, tmpdir_path,
                   KIE_API_TOKEN="from-the-environment",
                   REDIS_PASSWORD_FILE=write_secret(tmpdir_path, "redis-pw", PASSWORD))
    p = run_worker(args, env)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert says in p.stderr, p.stderr
    assert "/proc/<pid>/cmdline" in p.stderr
    assert "starting" not in p.stdout + p.stderr  # refused before start-up
    assert_no_secret(p.stdout + p.stderr, "the refusal")
    # it stopped before start-up: nothing it started holds the secret in its command line
    for cmd in proc_cmdlines(tmpdir_path):
        assert KIE_TOKEN not in cmd and PASSWORD_ENC not in cmd, cmd


def test_worker_log_never_holds_the_password_or_token(pw_redis, kie_fake, workers,
                                                      tmpdir_path):
    """REDIS_URL with the password in it, debug logs: while the worker runs, while Redis is
    down and after it comes back, the log holds neither the password nor the token."""
    w = workers(pw_redis.url_with_password, kie_fake.url, KIE_API_TOKEN=KIE_TOKEN,
                KIE_LOG_LEVEL="debug", KIE_HEARTBEAT_TTL_MS=5000)
    r = pw_redis.client()
    for i in range(3):
        r.lpush(f"{PREFIX}:queue", job(f"log-{i}"))
    wait_completed(r, 3)
    assert "starting" in w.log()
    pw_redis.stop()
    wait_for(lambda: "unreachable" in w.log(), 20, what="the worker to see Redis down")
    pw_redis.start()
    wait_for(lambda: "reconnected to Redis" in w.log(), 30, what="the worker to reconnect")
    r = pw_redis.client()
    r.lpush(f"{PREFIX}:queue", job("log-after"))
    wait_completed(r, 1)
    assert w.stop() == 0
    log = w.log()
    assert " debug " in log, log[-2000:]  # debug lines were written
    assert_no_secret(log, "the worker log")


def test_wrong_redis_password_is_logged_without_it(pw_redis, kie_fake, workers, tmpdir_path):
    wrong = "wrong-hunter2-pw"
    # (it retries as for a Redis that is down: SIGTERM then waits out the grace period)
    w = workers(f"redis://:{wrong}@127.0.0.1:{pw_redis.port}/0", kie_fake.url,
                KIE_API_TOKEN=KIE_TOKEN, KIE_LOG_LEVEL="debug", KIE_SHUTDOWN_GRACE_MS=300)
    wait_for(lambda: "AUTH failed" in w.log(), 20, what="the AUTH failure in the log")
    w.stop()
    log = w.log()
    assert wrong not in log
    assert_no_secret(log, "the worker log")


def test_secret_files_end_to_end(pw_redis, kie_fake, workers, tmpdir_path):
    """KIE_API_TOKEN_FILE and REDIS_PASSWORD_FILE (REDIS_URL without a password): the worker
    authenticates to a password-protected Redis and to KIE, and completes jobs."""
    token_file = write_secret(tmpdir_path, "kie-token", KIE_TOKEN)
    pw_file = write_secret(tmpdir_path, "redis-password", PASSWORD)
    # base_env sets KIE_API_TOKEN; empty counts as unset, so the file is the only source
    w = workers(pw_redis.url, kie_fake.url, KIE_API_TOKEN="", KIE_API_TOKEN_FILE=token_file,
                REDIS_PASSWORD_FILE=pw_file, KIE_LOG_LEVEL="debug")
    r = pw_redis.client()
    for i in range(4):
        r.lpush(f"{PREFIX}:queue", job(f"file-{i}"))
    evs = wait_completed(r, 4)
    assert sorted(e["jobId"] for e in evs) == [f"file-{i}" for i in range(4)]
    assert kie_fake.stats()["creates_total"] == 4  # KIE took the token from the file
    assert w.stop() == 0
    assert_no_secret(w.log(), "the worker log")
    # --print-config shows the paths, not the contents
    env = base_env(pw_redis.url, kie_fake.url, tmpdir_path, KIE_API_TOKEN="",
                   KIE_API_TOKEN_FILE=token_file, REDIS_PASSWORD_FILE=pw_file)
    p = run_worker(["--print-config"], env)
    assert p.returncode == 0, p.stderr
    assert f"KIE_API_TOKEN_FILE={token_file}\n" in p.stdout
    assert f"REDIS_PASSWORD_FILE={pw_file}\n" in p.stdout
    assert "KIE_API_TOKEN=(set)\n" in p.stdout
    assert_no_secret(p.stdout + p.stderr, "kie-worker --print-config")


def test_password_file_with_an_acl_user(pw_redis, kie_fake, workers, tmpdir_path):
    """With REDIS_PASSWORD_FILE, REDIS_URL's lone user part is the ACL user name."""
    user_pw = "acl-hunter2-" + "x" * 8
    pw_redis.client().execute_command("ACL", "SETUSER", "kieworker", "on", ">" + user_pw,
                                      "~*", "&*", "+@all")
    w = workers(f"redis://kieworker@127.0.0.1:{pw_redis.port}/0", kie_fake.url,
                KIE_API_TOKEN=KIE_TOKEN,
                REDIS_PASSWORD_FILE=write_secret(tmpdir_path, "acl-pw", user_pw))
    r = pw_redis.client()
    r.lpush(f"{PREFIX}:queue", job("acl-1"))
    wait_completed(r, 1)
    users = {c["user"] for c in r.client_list()}
    assert "kieworker" in users, users
    assert w.stop() == 0
    assert user_pw not in w.log()


@pytest.mark.parametrize("content, says", [
    ("", "is empty"),
    ("\n", "is empty"),
    ("two\nlines\n", "has more than one line"),
])
def test_bad_secret_file_stops_start_up_naming_variable_and_path(content, says, tmpdir_path):
    path = os.path.join(tmpdir_path, "token-file")
    with open(path, "w") as f:
        f.write(content)
    env = base_env("redis://127.0.0.1:1/0", None, tmpdir_path, KIE_API_TOKEN_FILE=path)
    p = run_worker([], env)
    assert p.returncode == 2
    assert f"KIE_API_TOKEN_FILE: {path} {says}" in p.stderr, p.stderr
    env["KIE_API_TOKEN_FILE"] = os.path.join(tmpdir_path, "missing")
    p = run_worker([], env)
    assert p.returncode == 2 and "KIE_API_TOKEN_FILE: cannot read " in p.stderr, p.stderr
    env["KIE_API_TOKEN_FILE"] = write_secret(tmpdir_path, "tok", KIE_TOKEN)
    env["KIE_API_TOKEN"] = KIE_TOKEN
    p = run_worker([], env)
    assert p.returncode == 2
    assert "KIE_API_TOKEN and KIE_API_TOKEN_FILE are both set" in p.stderr, p.stderr
    assert_no_secret(p.stdout + p.stderr, "the start-up error")
