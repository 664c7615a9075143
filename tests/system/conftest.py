"""Fixtures for the system tests: a real redis-server, the KIE fake, the S3 fake and the
real binaries, each on a free loopback port in a temporary directory, waited for by
polling and stopped at the end of the test."""
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("KIE_BIN_DIR", os.path.join(ROOT, "build"))
# the Redis scripts, one file per atomic step, beside the module that owns each
LUA_FILES = sorted(glob.glob(os.path.join(ROOT, "common", "*", "lua", "*.lua")))


def lua_path(name):
    """The file of the script <name>.lua, wherever in common/*/lua/ it lives."""
    for f in LUA_FILES:
        if os.path.basename(f) == name + ".lua":
            return f
    raise FileNotFoundError(f"no script {name}.lua in common/*/lua/")


def lua_expanded(path):
    """A script's bytes as scripts/embed-lua.sh embeds them: each line that is exactly
    `--#include NAME.lua` replaced by NAME.lua of the lib/ folder beside the script, or of
    any common/*/lua/lib/."""
    with open(path, "rb") as f:
        data = f.read()
    if b"\n--#include " not in b"\n" + data:
        return data
    out = []
    for line in data.split(b"\n"):
        if line.startswith(b"--#include "):
            name = line[len(b"--#include "):].decode()
            here = os.path.join(os.path.dirname(path), "lib", name)
            found = [here] if os.path.isfile(here) else sorted(
                glob.glob(os.path.join(ROOT, "common", "*", "lua", "lib", name)))
            if not found:
                raise FileNotFoundError(f"{path}: no lib/{name} to include")
            with open(found[0], "rb") as f:
                lib = f.read()
            out.append(lib[:-1] if lib.endswith(b"\n") else lib)
        else:
            out.append(line)
    return b"\n".join(out)


def task_finalized(r, prefix, task_id, job_id=None):
    """Whether the worker finalized task_id: its trimmed task hash says so (a task without a
    job, a job's duplicate, a dead job's task), or — a job's own task, whose hash goes with
    its finalization (docs/protocol.md section 2) — its job hash is final and names it."""
    def s(v):
        return v.decode() if isinstance(v, bytes) else v
    if r.hget(f"{prefix}:task:{task_id}", "finalizedAt"):
        return True
    if not job_id:
        return False
    st, tid = r.hmget(f"{prefix}:job:{job_id}", "state", "taskId")
    return s(st) in ("completed", "failed") and s(tid) == task_id


def keyed_call_problems(text):
    """Every keyed redis.call's first argument is KEYS[n], a local assigned from KEYS, or
    a parameter of a local function that every call passes such a value at that position
    (the included functions take their keys as parameters)."""
    code = "\n".join(re.sub(r"\s--.*$", "", ln) for ln in text.split("\n")
                     if not ln.lstrip().startswith("--"))
    fns = {m.group(1): [a.strip() for a in m.group(2).split(",")]
           for m in re.finditer(r"local function (\w+)\(([^)]*)\)", code)}

    def calls(fn):
        out = []
        for m in re.finditer(rf"(?<!function )\b{fn}\(", code):
            depth, i, args, cur = 1, m.end(), [], ""
            while depth:
                ch = code[i]
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                if depth == 1 and ch == ",":
                    args.append(cur.strip())
                    cur = ""
                elif depth:
                    cur += ch
                i += 1
            args.append(cur.strip())
            out.append(args)
        return out

    def keyed(expr, seen=frozenset()):
        expr = expr.strip()
        if re.fullmatch(r"KEYS\[\d+\]", expr) or expr == "nil":
            return True
        if re.fullmatch(r"KEYS\[[^\]]+\]", expr):
            return True  # KEYS[8 + 2 * i]: test_lua.py checks the header declares the range
        if re.match(r"KEYS\[\d+\]\s*\.\.", expr):
            return True  # a key named by data: test_lua.py checks it is KEYS[i] .. <one value>
        parts = re.split(r"\s+or\s+", expr)
        if len(parts) > 1:
            return all(keyed(p, seen) for p in parts)
        if not re.fullmatch(r"[A-Za-z_]\w*", expr):
            return False
        if expr in seen:
            return True
        seen = seen | {expr}
        if re.search(rf"for _, {expr} in ipairs\(\{{KEYS", code):
            return True
        for lhs, rhs in re.findall(r"^\s*(?:local\s+)?(\w+(?:\s*,\s*\w+)+)\s*=(?!=)\s*(.+?)\s*$",
                                   code, re.M):  # local a, b = KEYS[1], KEYS[2]
            names = [n.strip() for n in lhs.split(",")]
            vals = [v.strip() for v in rhs.split(",")]
            if expr in names and len(vals) == len(names):
                return keyed(vals[names.index(expr)], seen | {expr})
        sources = [m.group(1) for m in
                   re.finditer(rf"^\s*(?:local\s+)?{expr}\s*=(?!=)\s*(.+?)\s*$", code, re.M)]
        for fn, params in fns.items():
            if expr in params:
                pos = params.index(expr)
                cs = calls(fn)
                if not cs:  # never called here: it touches nothing
                    sources.append("nil")
                sources += [a[pos] if len(a) > pos else "?" for a in cs]
        return bool(sources) and all(keyed(x, seen) for x in sources)

    probs = []
    for cmd, first in re.findall(r"redis\.p?call\(\s*'([A-Za-z]+)'\s*,\s*([^,)]+)", code):
        if cmd.upper() not in ("TIME", "PUBLISH") and not keyed(first.strip()):
            probs.append(f"{cmd} on {first.strip()!r}, not taken from KEYS")
    return probs


def lua_text(name_or_path):
    """The script as the binaries embed it and Redis knows it (its SHA1 is over this), as
    text: lua_expanded() of a script named or given by path."""
    path = name_or_path if os.sep in name_or_path else lua_path(name_or_path)
    return lua_expanded(path).decode("utf-8")
PY = "/usr/bin/python3"
TOKEN = "test-token"

# Sanitized binaries: report errors, do not fail on leaks of threads killed at exit.
SAN_ENV = {
    "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1:exitcode=98",
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "long: a run at KIE's real rates (minutes); left out unless -m selects "
        "it: `make check-long` runs them with -m long")


def pytest_collection_modifyitems(config, items):
    """Tests marked long are deselected unless a -m expression decides (make check-long
    passes -m long); make test runs the same properties at short windows."""
    if config.getoption("markexpr"):
        return
    long_ = [i for i in items if i.get_closest_marker("long")]
    if long_:
        config.hook.pytest_deselected(items=long_)
        items[:] = [i for i in items if not i.get_closest_marker("long")]


def wait_for(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls pred() until it returns a truthy value; fails the test after timeout.
    what may be a callable, evaluated only for the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            what = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# Ports. The system tests run in parallel (pytest-xdist: one process per worker, gw0,
# gw1, ...), and sessions of other checkouts may run on the same machine. Servers that can
# bind port 0 and say which port they got do so (the fakes write a --port-file). The
# others (redis-server, sentinels, the worker's KIE_HTTP_ADDR, a port where nothing may
# listen) take one from free_port(): binding port 0 and releasing it raced — between the
# release and the server's bind, the kernel could give the same port to another process's
# bind(0) or outgoing connection. Instead each process holds blocks of PORT_BLOCK ports
# below the kernel's ephemeral range (where bind(0) and connect() never pick a port), each
# block under an flock of its own (released when the process ends, however it ends), so no
# two processes share a block; within its blocks a process hands each port out once, after
# checking that nothing is bound to it.
PORT_RANGE = (20000, 32000)  # cut short where the ephemeral range starts lower
PORT_BLOCK = 100
_port_locks = {}  # first port of each block this process holds -> its open lock file
_port_next = []   # ports of the current block not yet handed out


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _take_port_block():
    import fcntl
    lo, hi = PORT_RANGE[0], min(PORT_RANGE[1], _ephemeral_low())
    if hi - lo < 10 * PORT_BLOCK:
        raise RuntimeError(f"the kernel's ephemeral ports start at {_ephemeral_low()}: too "
                           f"few ports left below them for the tests (PORT_RANGE, conftest.py)")
    d = os.path.join(tempfile.gettempdir(), f"kie-test-ports-{os.getuid()}")
    os.makedirs(d, exist_ok=True)
    blocks = (hi - lo) // PORT_BLOCK
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    first = int(worker[2:]) if worker[2:].isdigit() else 0
    for k in range(blocks):  # from the worker's own block on, the first one free
        base = lo + (first + k) % blocks * PORT_BLOCK
        if base in _port_locks:
            continue
        f = open(os.path.join(d, f"block-{base}.lock"), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        _port_locks[base] = f
        _port_next.extend(range(base, base + PORT_BLOCK))
        return
    raise RuntimeError(f"every block of ports in {lo}-{hi} is held by another process")


def _port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port():
    """A loopback port nothing is bound to, handed out once in this session: for a
    server the test starts, or for an address where nothing may listen."""
    while True:
        if not _port_next:
            _take_port_block()
        port = _port_next.pop(0)
        if _port_is_free(port):
            return port


def read_port_file(path, proc, what):
    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited early with {proc.returncode}")
        try:
            with open(path) as f:
                return int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0
    return wait_for(ready, 15, what=f"{what} to listen")


def stop_proc(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class RedisServer:
    """A real redis-server; restart() keeps its port and (with aof) its data."""

    def __init__(self, tmp, aof=False):
        self.dir = tmp
        self.port = free_port()
        self.aof = aof
        self.proc = None
        self.start()

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis
        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited early")
            try:
                return redis.Redis(port=self.port).ping()
            except Exception:
                return False
        wait_for(up, 10, what="redis-server")

    def stop(self):
        stop_proc(self.proc)

    def restart(self):
        self.stop()
        self.start()

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis
        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def tmpdir_path():
    with tempfile.TemporaryDirectory(prefix="kie-test-") as d:
        yield d


@pytest.fixture
def redis_server(tmpdir_path):
    d = os.path.join(tmpdir_path, "redis")
    os.makedirs(d)
    srv = RedisServer(d)
    yield srv
    srv.stop()


@pytest.fixture
def r(redis_server):
    return redis_server.client()


class FakeKie:
    def __init__(self, tmp, **opts):
        port_file = os.path.join(tmp, "fake-kie.port")
        args = [PY, os.path.join(ROOT, "tests", "fake_kie.py"), "--port", "0",
                "--port-file", port_file, "--token", TOKEN]
        for k, v in opts.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.log = open(os.path.join(tmp, "fake-kie.log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = read_port_file(port_file, self.proc, "fake KIE")
        self.url = f"http://127.0.0.1:{self.port}"

    def _req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "User-Agent": "kie-tests"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def stats(self, brief=True):
        return self._req("GET", "/_fake/stats" + ("?brief=1" if brief else ""))

    def config(self, **kw):
        return self._req("POST", "/_fake/config", kw)

    def reset(self):
        return self._req("POST", "/_fake/reset", {})

    def stop(self):
        stop_proc(self.proc)
        self.log.close()


@pytest.fixture
def fake_kie(tmpdir_path):
    f = FakeKie(tmpdir_path, task_ms=300, create_limit=0, query_limit=0)
    yield f
    f.stop()


def base_env(redis_url=None, kie_url=None, tmp=None, **extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("KIE_", "R2_", "REDIS_"))}
    env.update(SAN_ENV)
    # the fakes serve result files from 127.0.0.1, which result copies refuse by default
    # (docs/protocol.md, "Result copies"); test_copies.py sets it back where it tests that
    env["KIE_COPY_ALLOW_PRIVATE"] = "1"
    if redis_url:
        env["REDIS_URL"] = redis_url
    if kie_url:
        env["KIE_BASE_URL"] = kie_url
        env["KIE_API_TOKEN"] = TOKEN
    if tmp:
        env["KIE_METADATA_DIR"] = os.path.join(tmp, "meta")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run_kie(args, env, timeout=60, input=None):
    """Runs build/kie; returns CompletedProcess with text stdout/stderr."""
    return subprocess.run([os.path.join(BIN, "kie")] + list(args), env=env, input=input,
                          capture_output=True, text=True, timeout=timeout)


class Worker:
    """One kie-worker process; logs go to a file read back by .log()."""
    FAST = {
        "KIE_POLL_INITIAL_MS": 100, "KIE_POLL_MAX_MS": 500,
        "KIE_HEARTBEAT_TTL_MS": 1500, "KIE_RECOVERY_INTERVAL_MS": 300,
        "KIE_RETRY_BASE_MS": 100, "KIE_SHUTDOWN_GRACE_MS": 10000,
        "KIE_WORKER_CONCURRENCY": 4, "KIE_WORKER_POLLERS": 2,
        # a poll's lease is the HTTP timeout + 5 s + the copy timeout + the HTTP timeout:
        # the task of a poller that died (or whose reply a Redis restart lost) waits 20 s
        # at these, not 75 s at the 60-s default copy timeout; the fakes answer and serve
        # files within milliseconds
        "KIE_HTTP_TIMEOUT_MS": 5000, "KIE_COPY_TIMEOUT_MS": 5000,
        # the account's limits (KIE's 20 per 10 s, 10 recordInfo/s) are the defaults; tests
        # that are not about them lift them, the limiter tests set them back
        "KIE_CREATE_LIMIT": 100000, "KIE_CREATE_WINDOW_MS": 1000, "KIE_POLL_RATE": 10000,
        "KIE_RATE_BACKOFF_MS": 200, "KIE_CREDIT_PROBE_MS": 300,
        # no callback reaches these workers (port 9): a createTask of unknown outcome waits
        # this long, then KIE_UNCERTAIN_POLICY=auto creates it again
        "KIE_UNCERTAIN_WINDOW_MS": 3000,
        # KIE learns the job id only through callBackUrl; nothing listens on port 9,
        # so the fake's callbacks fail (and polling finalizes), as when a callback is lost
        "KIE_CALLBACK_URL": "http://127.0.0.1:9/api/kie/callback",
    }
    count = 0

    def __init__(self, tmp, redis_url, kie_url, args=(), **extra):
        Worker.count += 1
        env = base_env(redis_url, kie_url, tmp, **{**self.FAST, **extra})
        self.logpath = os.path.join(tmp, f"worker-{Worker.count}.log")
        self.logf = open(self.logpath, "w")
        self.proc = subprocess.Popen([os.path.join(BIN, "kie-worker")] + list(args), env=env,
                                     stdout=self.logf, stderr=subprocess.STDOUT)

    def log(self):
        with open(self.logpath) as f:
            return f.read()

    def stop(self, timeout=30):
        stop_proc(self.proc, timeout)
        self.logf.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def wait(self, timeout=60):
        rc = self.proc.wait(timeout)
        self.logf.close()
        return rc


@pytest.fixture
def workers(tmpdir_path):
    started = []

    def start(redis_url, kie_url, args=(), **extra):
        w = Worker(tmpdir_path, redis_url, kie_url, args, **extra)
        started.append(w)
        return w
    yield start
    # all at once: SIGTERM; a worker still busy after 3 s (its Redis stopped by the test,
    # say) gets the second signal, which ends its wait for Redis; SIGKILL after 10 s
    alive = [w for w in started if w.proc.poll() is None]
    for w in alive:
        w.proc.send_signal(signal.SIGTERM)
    for limit, then in ((3, signal.SIGTERM), (7, signal.SIGKILL)):
        end = time.monotonic() + limit
        for w in alive:
            try:
                w.proc.wait(max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        alive = [w for w in alive if w.proc.poll() is None]
        for w in alive:
            w.proc.send_signal(then)
    for w in started:
        w.proc.wait()
        if not w.logf.closed:
            w.logf.close()
    # a sanitizer report in any worker log fails the test that started it
    for w in started:
        text = open(w.logpath).read()
        assert "ERROR: AddressSanitizer" not in text, text[-4000:]
        assert "runtime error:" not in text, text[-4000:]


class FakeS3:
    ACCESS_KEY = "AKIAKIETEST"
    SECRET_KEY = "kie-test-secret"
    BUCKET = "kie-test"

    def __init__(self, tmp):
        port_file = os.path.join(tmp, "fake-s3.port")
        self.log = open(os.path.join(tmp, "fake-s3.log"), "w")
        self.proc = subprocess.Popen(
            [PY, os.path.join(ROOT, "tests", "fake_s3.py"), "--port", "0", "--port-file",
             port_file, "--access-key", self.ACCESS_KEY, "--secret-key", self.SECRET_KEY,
             "--bucket", self.BUCKET], stdout=self.log, stderr=subprocess.STDOUT)
        self.port = read_port_file(port_file, self.proc, "fake S3")
        self.url = f"http://127.0.0.1:{self.port}"

    def env(self, secret=None):
        return {"KIE_METADATA_STORE": "r2", "R2_ENDPOINT": self.url,
                "R2_ACCESS_KEY_ID": self.ACCESS_KEY,
                "R2_SECRET_ACCESS_KEY": secret or self.SECRET_KEY,
                "R2_BUCKET_NAME": self.BUCKET}

    def stats(self):
        with urllib.request.urlopen(self.url + "/_fake/stats", timeout=10) as resp:
            return json.loads(resp.read())

    def config(self, **kw):
        req = urllib.request.Request(self.url + "/_fake/config", data=json.dumps(kw).encode(),
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def object(self, key):
        """The stored bytes of key, or None."""
        q = urllib.parse.urlencode({"key": key})
        try:
            with urllib.request.urlopen(self.url + "/_fake/object?" + q, timeout=10) as resp:
                return resp.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise

    def stop(self):
        stop_proc(self.proc)
        self.log.close()


@pytest.fixture
def fake_s3(tmpdir_path):
    f = FakeS3(tmpdir_path)
    yield f
    f.stop()


class SentinelSet:
    """A primary redis-server, one replica and three sentinels (quorum 2) watching them
    as MASTER, each on a free loopback port in its own directory of tmp (a sentinel
    rewrites its config file). Ready when every sentinel knows the replica and the two
    other sentinels. .env is REDIS_SENTINELS; .primary() is the node the sentinels name
    now (a RedisServer), .failover() forces a failover through the first sentinel."""
    MASTER = "mymaster"

    def __init__(self, tmp):
        self.nodes, self.procs, self.ports = [], [], []
        try:
            self._start(tmp)
        except BaseException:
            self.stop()  # nothing started is left running when start-up fails
            raise

    def _start(self, tmp):
        import redis
        for name in ("primary", "replica"):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            self.nodes.append(RedisServer(d))
        first, second = self.nodes
        second.client().execute_command("REPLICAOF", "127.0.0.1", str(first.port))
        wait_for(lambda: second.client().info("replication").get("master_link_status") == "up",
                 15, what="the replica to sync")
        for i in range(3):
            d = os.path.join(tmp, f"sentinel-{i}")
            os.makedirs(d)
            port = free_port()
            conf = os.path.join(d, "sentinel.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {d}\n"
                        f"logfile {os.path.join(d, 'sentinel.log')}\n"
                        "sentinel resolve-hostnames no\n"
                        f"sentinel monitor {self.MASTER} 127.0.0.1 {first.port} 2\n"
                        f"sentinel down-after-milliseconds {self.MASTER} 1000\n"
                        f"sentinel failover-timeout {self.MASTER} 5000\n")
            self.procs.append(subprocess.Popen(["redis-sentinel", conf],
                                               stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
            self.ports.append(port)
        self.clients = [redis.Redis(port=p, decode_responses=True, socket_timeout=5)
                        for p in self.ports]

        seen = {}

        def ready():
            for i, (p, c) in enumerate(zip(self.procs, self.clients)):
                if p.poll() is not None:
                    raise AssertionError(f"redis-sentinel exited early with {p.returncode}")
                try:
                    reps = c.execute_command("SENTINEL", "REPLICAS", self.MASTER)
                    others = c.execute_command("SENTINEL", "SENTINELS", self.MASTER)
                except Exception as e:
                    seen[i] = repr(e)
                    return False
                flags = [dict(zip(x[::2], x[1::2]))["flags"] for x in reps]
                seen[i] = (flags, len(others))
                if flags != ["slave"] or len(others) != 2:
                    return False
            return True
        wait_for(ready, 30, interval=0.1, what=lambda: "three sentinels that know the replica "
                 f"and each other (replica flags, other sentinels known: {seen})")

    @property
    def env(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def primary_addr(self, sentinel=0):
        host, port = self.clients[sentinel].execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.MASTER)
        return host, int(port)

    def primary(self, sentinel=0):
        _, port = self.primary_addr(sentinel)
        return next(n for n in self.nodes if n.port == port)

    def failover(self):
        return self.clients[0].execute_command("SENTINEL", "FAILOVER", self.MASTER)

    def stop(self):
        for p in self.procs:
            stop_proc(p)
        for n in self.nodes:
            n.stop()


@pytest.fixture
def sentinels(tmpdir_path):
    s = SentinelSet(tmpdir_path)
    yield s
    s.stop()
