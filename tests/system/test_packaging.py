"""The README's run command (scripts/demo.sh, what `make demo` runs after building), and
what operators deploy with: `make install` (PREFIX, DESTDIR), the systemd unit and its env
file example, the man pages (checked against --help), the Dockerfile and the compose file
(checked by Debian's docker-compose: there is no Docker engine here, so `config` is what
can be checked)."""
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


# --- make install / uninstall ------------------------------------------------------------

INSTALLED = {  # path under DESTDIR (PREFIX=/usr) -> mode
    "usr/bin/kie": 0o755,
    "usr/bin/kie-worker": 0o755,
    "usr/share/man/man1/kie.1": 0o644,
    "usr/share/man/man1/kie-worker.1": 0o644,
    "usr/lib/systemd/system/kie-worker@.service": 0o644,
    "usr/share/doc/kie-worker/examples/kie-worker.env.example": 0o644,
    "usr/share/doc/kie-worker/LICENSE": 0o644,
}


def make_args():
    """The make variables that build what BIN holds (build/ or build/san/)."""
    b = os.path.realpath(BIN)
    if b == os.path.realpath(os.path.join(ROOT, "build")):
        return []
    if b == os.path.realpath(os.path.join(ROOT, "build", "san")):
        return ["SANITIZER=address,undefined"]
    pytest.skip(f"KIE_BIN_DIR={BIN} is not one of the Makefile's build directories")


def files_under(root):
    out = {}
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = os.stat(p).st_mode & 0o777
    return out


@pytest.fixture
def installed(tmpdir_path):
    dest = os.path.join(tmpdir_path, "dest")
    p = subprocess.run(["make", "-C", ROOT, "--no-print-directory", *make_args(), "install",
                        f"DESTDIR={dest}", "PREFIX=/usr"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return dest


def test_make_install_puts_exactly_the_expected_files_under_destdir(installed):
    assert files_under(installed) == INSTALLED
    for prog in ("kie", "kie-worker"):
        p = subprocess.run([os.path.join(installed, "usr/bin", prog), "--help"],
                           capture_output=True, text=True, env=dict(os.environ, **SAN_ENV),
                           timeout=30)
        assert p.returncode == 0 and "usage:" in p.stdout and "REDIS_URL" in p.stdout, \
            p.stdout + p.stderr
    with open(os.path.join(installed, "usr/lib/systemd/system/kie-worker@.service")) as f:
        unit = f.read()
    assert re.search(r"^ExecStart=/usr/bin/kie-worker$", unit, re.M), unit


def test_make_install_writes_nothing_outside_destdir(tmpdir_path):
    """Every destination of every command `make install` would run is under DESTDIR."""
    dest = os.path.join(tmpdir_path, "d")
    p = subprocess.run(["make", "-C", ROOT, "--no-print-directory", *make_args(), "-n",
                        "install", f"DESTDIR={dest}", "PREFIX=/opt/kie"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    cmds = [l.strip() for l in p.stdout.replace("\\\n", " ").splitlines()
            if re.match(r"\s*(install|sed|chmod|mv)\b", l.strip())]
    assert len(cmds) >= 6, p.stdout
    checked = 0
    for c in cmds:
        words = c.split()
        if words[0] == "install" and "-d" in words:
            targets = [w for w in words[1:] if not w.startswith("-")]
        elif words[0] == "sed":
            targets = [words[words.index(">") + 1]]
        else:
            targets = [words[-1]]
        for t in targets:
            assert t.startswith(dest + "/opt/kie/"), c
            checked += 1
    assert checked >= 8


def test_make_uninstall_removes_what_install_put(installed):
    p = subprocess.run(["make", "-C", ROOT, "--no-print-directory", *make_args(), "uninstall",
                        f"DESTDIR={installed}", "PREFIX=/usr"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert files_under(installed) == {}


# --- the systemd unit and the env file example --------------------------------------------

UNIT = os.path.join(ROOT, "scripts", "systemd", "kie-worker@.service")
ENV_EXAMPLE = os.path.join(ROOT, "scripts", "systemd", "kie-worker.env.example")


def help_text(prog, *args):
    p = subprocess.run([os.path.join(BIN, prog), *args, "--help"], capture_output=True,
                       text=True, env=dict(os.environ, **SAN_ENV), timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


def help_settings(text):
    """{env name: (flag or None, default)} of a --help settings table."""
    out = {}
    for m in re.finditer(r'^  ([A-Z][A-Z0-9_]+)\s+(--[a-z0-9-]+)?\s*default "(.*?)"', text,
                         re.M):
        out[m.group(1)] = (m.group(2), m.group(3))
    assert len(out) > 40, text
    return out


def test_unit_hands_secrets_over_as_credentials_the_worker_reads():
    with open(UNIT) as f:
        unit = f.read()
    settings = help_settings(help_text("kie-worker"))
    directives = dict()
    for line in unit.splitlines():
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            directives.setdefault(m.group(1), []).append(m.group(2))
    for key, want in [("DynamicUser", "yes"), ("ProtectSystem", "strict"),
                      ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                      ("NoNewPrivileges", "yes"), ("KillSignal", "SIGTERM"),
                      ("Restart", "on-failure"), ("StateDirectory", "kie-worker")]:
        assert directives.get(key) == [want], key
    assert "@system-service" in directives["SystemCallFilter"]
    assert directives["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    # stop timeout covers the worker's default grace period, with a margin for giving back
    grace_s = int(settings["KIE_SHUTDOWN_GRACE_MS"][1]) / 1000
    assert int(directives["TimeoutStopSec"][0]) >= grace_s + 5
    # every credential (in the unit, or in the drop-in its comment shows) is loaded under
    # an id that a *_FILE setting of the worker points at, as %d/<id>
    text = unit.replace("#   ", "")
    loaded = re.findall(r"^LoadCredential=([a-z0-9_]+):/etc/kie-worker/credentials/\1$", text,
                        re.M)
    pointed = dict(re.findall(r"^Environment=([A-Z0-9_]+_FILE)=%d/([a-z0-9_]+)$", text, re.M))
    assert sorted(loaded) == sorted(pointed.values()) and len(loaded) == 6, (loaded, pointed)
    # the secrets: each *_FILE of a secret setting has its credential, and the TLS key
    text_help = help_text("kie-worker")
    for name in re.findall(r"^  ([A-Z][A-Z0-9_]+) .*\n .*\[secret", text_help, re.M):
        assert f"{name}_FILE" in pointed, name
    assert "REDIS_TLS_KEY_FILE" in pointed
    for var in pointed:
        assert var in settings, var
    assert "kie_api_token" in re.findall(r"^LoadCredential=([a-z_]+):", unit, re.M)
    # nothing secret is set in the unit itself
    for secret in ("KIE_API_TOKEN", "R2_SECRET_ACCESS_KEY", "KIE_WEBHOOK_HMAC_KEY",
                   "KIE_ADMIN_TOKEN"):
        assert not re.search(rf"^Environment={secret}=", unit, re.M)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze absent")
def test_installed_unit_passes_systemd_analyze_verify(installed, tmpdir_path):
    """systemd-analyze verify needs ExecStart to exist: the copy points at the DESTDIR binary.
    It also runs `man` on Documentation=, found through MANPATH in DESTDIR."""
    with open(os.path.join(installed, "usr/lib/systemd/system/kie-worker@.service")) as f:
        unit = f.read().replace("ExecStart=/usr/bin/kie-worker",
                                f"ExecStart={installed}/usr/bin/kie-worker")
    d = os.path.join(tmpdir_path, "units")
    os.makedirs(d)
    for name in ("kie-worker@.service", "kie-worker@1.service"):
        with open(os.path.join(d, name), "w") as f:
            f.write(unit)
        p = subprocess.run(["systemd-analyze", "verify", os.path.join(d, name)],
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, MANPATH=os.path.join(installed, "usr/share/man"),
                                    SYSTEMD_LOG_LEVEL="notice"))
        assert p.returncode == 0 and p.stderr.strip() == "", p.stdout + p.stderr


def test_env_example_lists_every_setting_with_its_default_and_no_secret():
    with open(ENV_EXAMPLE) as f:
        example = f.read()
    text = help_text("kie-worker")
    settings = help_settings(text)
    # every setting --help marks secret (its description, on the next line, says so)
    secrets = set(re.findall(r"^  ([A-Z][A-Z0-9_]+) .*\n .*\[secret", text, re.M))
    assert {"KIE_API_TOKEN", "R2_SECRET_ACCESS_KEY", "KIE_WEBHOOK_HMAC_KEY",
            "KIE_ADMIN_TOKEN"} <= secrets, secrets
    listed = dict(re.findall(r"^#([A-Z][A-Z0-9_]+)=(.*)$", example, re.M))
    for name, (_, default) in settings.items():
        if name in secrets:
            assert name not in listed and name in example, name
        else:
            assert listed.get(name) == default, (name, listed.get(name), default)
    assert not re.search(r"^[A-Z]", example, re.M), "an uncommented assignment"


# --- man pages match --help ---------------------------------------------------------------

def man_source(name):
    """The man page's words: roff font escapes and requests gone, \\- read as -."""
    with open(os.path.join(ROOT, "man", name)) as f:
        src = f.read()
    src = re.sub(r"^\.\\\".*$", "", src, flags=re.M)       # comments
    src = re.sub(r"\\f[BIRP]", "", src)
    src = re.sub(r"^\.[A-Z]+ ?", "", src, flags=re.M)
    return src.replace("\\-", "-").replace("\\e", "\\").replace('"', "")


def has_word(text, word):
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
PLACEHOLDERS = {"--flag"}  # "(environment variable, or --flag VALUE where one is shown)"


def missing_from_man(man, helps):
    missing = []
    for text in helps:
        for opt in set(OPTION.findall(text)) - PLACEHOLDERS:
            if not has_word(man, opt):
                missing.append(opt)
        for name in help_settings(text) if "Settings (" in text else {}:
            if not has_word(man, name):
                missing.append(name)
    return sorted(set(missing))


def kie_commands(text):
    """[(command, [subcommands])] from the Commands: block of `kie --help`."""
    block = text.split("Commands:", 1)[1].split("\nConfiguration", 1)[0]
    out = []
    for m in re.finditer(r"^  ([a-z][a-z0-9-]*)((?: [a-z][a-z0-9|-]*)?)", block, re.M):
        subs = m.group(2).strip().split("|") if m.group(2).strip() else []
        out.append((m.group(1), subs))
    assert len(out) >= 8, block
    return out


@pytest.mark.parametrize("page", ["kie-worker.1", "kie.1"])
def test_man_page_renders_without_warnings(page):
    p = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(ROOT, "man", page)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr


def test_kie_worker_man_page_has_every_option_and_setting_of_its_help():
    man = man_source("kie-worker.1")
    text = help_text("kie-worker")
    assert {"--drain", "--print-config", "--help"} <= set(OPTION.findall(text))
    assert missing_from_man(man, [text]) == []


def test_kie_man_page_has_every_command_operation_and_option_of_its_help():
    man = man_source("kie.1")
    main = help_text("kie")
    helps = [main]
    missing = []
    for cmd, subs in kie_commands(main):
        # each command (and subcommand) heads an entry: a line of its own that starts with it
        if not re.search(rf"^{cmd}(?![\w-])", man, re.M):
            missing.append(cmd)
        for sub in subs:
            if not re.search(rf"^{cmd}\s+{sub}(?![\w-])", man, re.M):
                missing.append(f"{cmd} {sub}")
        helps.append(help_text("kie", cmd))
        for sub in subs:
            p = subprocess.run([os.path.join(BIN, "kie"), cmd, sub, "--help"],
                               capture_output=True, text=True,
                               env=dict(os.environ, **SAN_ENV), timeout=30)
            helps.append(p.stdout + p.stderr)
    # operations of kie create (the rows of its "Operations" block)
    ops = help_text("kie", "create").split("Operations", 1)[1].split("Common options", 1)[0]
    for op in re.findall(r"^  ([a-z][a-z0-9-]+) ", ops, re.M):
        if not has_word(man, op):
            missing.append(op)
    assert missing + missing_from_man(man, helps) == []


def test_the_man_check_fails_on_a_missing_option():
    """The check itself: an option or setting absent from the page is reported."""
    text = help_text("kie-worker")
    man = man_source("kie-worker.1")
    assert missing_from_man(man.replace("--drain", "--dr"), [text]) == ["--drain"]
    assert missing_from_man(man.replace("KIE_POLL_RATE", "KIE_PR"), [text]) == ["KIE_POLL_RATE"]


# --- Dockerfile and docker-compose --------------------------------------------------------
# There is no Docker engine on the test machines: the images are not built here. What can be
# checked is the Dockerfile's text, its HEALTHCHECK command (run here against a stand-in
# server) and the compose files as Debian's docker-compose reads them (`config`).

def dockerfile():
    with open(os.path.join(ROOT, "Dockerfile")) as f:
        return f.read().replace("\\\n", "")


def test_dockerfile_runs_as_a_fixed_non_root_uid_and_stops_with_sigterm():
    src = dockerfile()
    stages = re.findall(r"^FROM .*$", src, re.M)
    assert len(stages) == 2 and " AS build" in stages[0], stages
    runtime = src[src.rindex("\nFROM "):]
    user = re.findall(r"^USER (\d+)(?::(\d+))?$", runtime, re.M)
    assert user and int(user[-1][0]) >= 1000, user
    assert re.search(r"^STOPSIGNAL SIGTERM$", runtime, re.M)
    assert re.search(r"^EXPOSE 8080$", runtime, re.M)
    assert re.search(r"KIE_HTTP_ADDR=:8080", runtime)
    assert "build-essential" not in runtime          # no toolchain in the runtime image
    assert re.search(r"^COPY \. \.$", src, re.M)      # new source folders need no edit here
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        ignored = f.read().split()
    assert {".git", "build", ".env"} <= set(ignored)


def test_dockerfile_healthcheck_asks_healthz_and_fails_on_anything_but_200(tmpdir_path):
    import http.server
    import threading
    cmd = json.loads(re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", dockerfile(), re.M).group(1))
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        status = 200

        def do_GET(self):
            seen.append(self.path)
            self.send_response(Handler.status)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = dict(os.environ, KIE_HTTP_ADDR=f":{srv.server_address[1]}")
    try:
        assert subprocess.run(cmd, env=env, timeout=10).returncode == 0
        Handler.status = 503
        assert subprocess.run(cmd, env=env, timeout=10).returncode != 0
        # with KIE_OPS_ADDR set, /healthz is there (KIE_HTTP_ADDR serves callbacks only)
        Handler.status = 200
        env = dict(os.environ, KIE_HTTP_ADDR=":9", KIE_OPS_ADDR=f"127.0.0.1:{srv.server_address[1]}")
        assert subprocess.run(cmd, env=env, timeout=10).returncode == 0
    finally:
        srv.shutdown()
        srv.server_close()
    assert seen == ["/healthz", "/healthz", "/healthz"]
    # nobody listening: unhealthy
    assert subprocess.run(cmd, env=env, timeout=10, stderr=subprocess.DEVNULL).returncode != 0


def compose_config(*args, env_file=None, extra_env=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIE_", "R2_", "COMPOSE_", "FAKE_"))}
    env.update(extra_env or {})
    cmd = ["docker-compose"] + (["--env-file", env_file] if env_file else []) + ["config", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)


compose_needed = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                    reason="docker-compose absent (scripts/install-deps.sh)")


@compose_needed
def test_compose_pool_has_aof_healthchecks_and_a_scalable_worker():
    import yaml
    p = compose_config(extra_env={"KIE_API_TOKEN": "sk-test"})
    assert p.returncode == 0, p.stderr
    cfg = yaml.safe_load(p.stdout)
    svc = cfg["services"]
    assert set(svc) == {"redis", "worker"}
    cmd = svc["redis"]["command"]
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") or ":/data:" in v for v in svc["redis"]["volumes"])
    w = svc["worker"]
    # --scale: no fixed name, no host port
    assert "container_name" not in w and "ports" not in w, w
    assert w["environment"]["KIE_API_TOKEN"] == "sk-test"
    assert w["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert w["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "/healthz" in " ".join(w["healthcheck"]["test"])
    assert svc["redis"]["healthcheck"]["test"]
    assert w["stop_signal"] == "SIGTERM"
    # the stop grace covers the worker's own grace period
    grace_ms = int(help_settings(help_text("kie-worker"))["KIE_SHUTDOWN_GRACE_MS"][1])
    assert int(w["stop_grace_period"].rstrip("s")) * 1000 > grace_ms


@compose_needed
def test_compose_demands_the_token_and_bakes_no_secret_in():
    p = compose_config("-q")
    assert p.returncode != 0 and "set KIE_API_TOKEN" in p.stderr
    for name in ("docker-compose.yml", "docker-compose.local.yml", "Dockerfile"):
        with open(os.path.join(ROOT, name)) as f:
            src = f.read()
        for secret in ("KIE_API_TOKEN", "R2_SECRET_ACCESS_KEY", "KIE_WEBHOOK_HMAC_KEY",
                   "KIE_ADMIN_TOKEN"):
            for m in re.finditer(rf"(?<![\w{{]){secret}[:=]\s*(\S+)", src):
                assert m.group(1).startswith(("${", '"${')), (name, m.group(0))


@compose_needed
def test_compose_local_stack_runs_the_fakes_and_points_the_worker_at_them():
    import yaml
    p = compose_config(env_file="compose.local.env")
    assert p.returncode == 0, p.stderr
    svc = yaml.safe_load(p.stdout)["services"]
    assert set(svc) == {"redis", "worker", "fake-kie", "s3"}
    w = svc["worker"]
    assert w["environment"]["KIE_BASE_URL"] == "http://fake-kie:8080"
    assert w["environment"]["R2_ENDPOINT"] == "http://s3:9000"
    assert w["environment"]["KIE_METADATA_STORE"] == "r2"
    assert {"redis", "fake-kie", "s3"} <= set(w["depends_on"])
    assert all(d["condition"] == "service_healthy" for d in w["depends_on"].values())
    assert "container_name" not in w and "ports" not in w
    kie = svc["fake-kie"]["command"]
    assert kie[1].endswith("fake_kie.py") and "--private-network" in kie
    assert kie[kie.index("--token") + 1] == w["environment"]["KIE_API_TOKEN"]
    s3 = svc["s3"]["command"]
    assert s3[1].endswith("fake_s3.py")
    assert s3[s3.index("--bucket") + 1] == w["environment"]["R2_BUCKET_NAME"]
    assert s3[s3.index("--access-key") + 1] == w["environment"]["R2_ACCESS_KEY_ID"]
    assert s3[s3.index("--secret-key") + 1] == w["environment"]["R2_SECRET_ACCESS_KEY"]
    for name in ("fake-kie", "s3", "redis", "worker"):
        assert svc[name]["healthcheck"]["test"], name


def test_fakes_bind_beyond_loopback_only_when_told(tmpdir_path):
    """--private-network is what lets the compose stack's fakes listen on its network."""
    for script, extra in (("fake_kie.py", []),
                          ("fake_s3.py", ["--access-key", "a", "--secret-key", "b"])):
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", script),
                            "--host", "192.0.2.1", *extra], capture_output=True, text=True,
                           timeout=30)
        assert p.returncode != 0 and "refusing to bind a non-loopback" in p.stderr, p.stderr
