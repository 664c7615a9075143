"""TLS to Redis (rediss://, REDIS_TLS_*): Debian's redis-server with only a TLS port and a
throwaway CA made by the openssl CLI; kie-worker and kie through it, certificates that
must not be trusted, a client certificate, and a descriptor over 1 MiB read by
rconn_bulk_bounded through TLS. Counts are taken at the KIE fake."""
import json
import os
import subprocess

import pytest

from conftest import BIN, base_env, free_port, run_kie, stop_proc, wait_for

PREFIX = "kie"
INPUT = {"prompt": "a red coat on a mannequin", "imageUrls": ["https://img.example.com/c.png"]}


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    """A self-signed CA in d: name.key, name.crt."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def make_cert(d, name, ca, san, client=False):
    """name.key, name.crt signed by ca, for the subjectAltName san."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = os.path.join(d, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\n"
                f"extendedKeyUsage={'clientAuth' if client else 'serverAuth'}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f"{name}.crt", cwd=d)


@pytest.fixture
def pki(tmpdir_path):
    d = os.path.join(tmpdir_path, "pki")
    os.makedirs(d)
    make_ca(d, "ca")
    make_ca(d, "other-ca")  # trusted by nobody here
    make_cert(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    make_cert(d, "client", "ca", "DNS:kie-worker", client=True)
    return d


class TlsRedis:
    """redis-server with no plain port, a TLS port, the server certificate of pki."""

    def __init__(self, tmp, pki, auth_clients=False, cert="server"):
        self.dir = tmp
        self.pki = pki
        self.port = free_port()
        self.auth_clients = auth_clients
        args = ["redis-server", "--port", "0", "--tls-port", str(self.port),
                "--bind", "127.0.0.1", "--dir", tmp, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", os.path.join(tmp, "redis.log"),
                "--tls-cert-file", os.path.join(pki, f"{cert}.crt"),
                "--tls-key-file", os.path.join(pki, f"{cert}.key"),
                "--tls-ca-cert-file", os.path.join(pki, "ca.crt"),
                "--tls-auth-clients", "yes" if auth_clients else "no"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server (TLS) exited early: " +
                                     open(os.path.join(tmp, "redis.log")).read()[-2000:])
            try:
                return self.client().ping()
            except Exception:
                return False
        wait_for(up, 15, what="redis-server on its TLS port")

    def client(self):
        import redis
        kw = {}
        if self.auth_clients:
            kw = {"ssl_certfile": os.path.join(self.pki, "client.crt"),
                  "ssl_keyfile": os.path.join(self.pki, "client.key")}
        # 127.0.0.1: the certificate names it too
        return redis.Redis(host="127.0.0.1", port=self.port, ssl=True,
                           ssl_ca_certs=os.path.join(self.pki, "ca.crt"),
                           decode_responses=True, socket_timeout=10, **kw)

    @property
    def url(self):
        return f"rediss://localhost:{self.port}/0"

    def stop(self):
        stop_proc(self.proc)


@pytest.fixture
def tls_redis(tmpdir_path, pki):
    d = os.path.join(tmpdir_path, "redis-tls")
    os.makedirs(d)
    srv = TlsRedis(d, pki)
    yield srv
    srv.stop()


def descriptor(job_id, pad=0):
    """A valid raw job; pad bytes of JSON white space make it as big as wanted."""
    return ('{"v":1,"id":"%s",%s"type":"raw","input":%s}'
            % (job_id, " " * pad, json.dumps(INPUT)))


def events(r):
    return [json.loads(e) for e in r.lrange(f"{PREFIX}:results", 0, -1)]


def wait_done(r, n, timeout=60):
    return wait_for(lambda: len(events(r)) >= n and events(r), timeout,
                    what=lambda: f"{n} completion event(s); have {events(r)}, queue "
                    f"{r.llen(PREFIX + ':queue')}, dead {r.lrange(PREFIX + ':dead', 0, -1)}")


def tls_env(pki, ca="ca"):
    return {"REDIS_TLS_CA_FILE": os.path.join(pki, f"{ca}.crt")}


def test_a_job_completes_over_tls(tls_redis, pki, fake_kie, workers):
    r = tls_redis.client()
    w = workers(tls_redis.url, fake_kie.url, **tls_env(pki))
    r.lpush(f"{PREFIX}:queue", descriptor("tls-1"))
    ev = wait_done(r, 1)[0]
    assert ev["jobId"] == "tls-1" and ev["status"] == "completed", ev
    stats = fake_kie.stats()
    assert stats["creates_total"] == 1, stats
    assert stats["creates_by_job"] == {"tls-1": 1}, stats
    # no TLS connection failed on the way (the runners idle in BLMOVE, reads time out)
    assert w.proc.poll() is None
    assert "unreachable" not in w.log() and "connection lost" not in w.log(), w.log()[-3000:]
    # the worker's connections are TLS ones: the server has no plain port to take them


def test_a_big_descriptor_streams_through_tls(tls_redis, pki, fake_kie, workers):
    r = tls_redis.client()
    pad = (1 << 20) + 300_000  # 1.3 MiB: read by rconn_bulk_bounded, kept (under the cap)
    big = descriptor("tls-big", pad)
    assert (1 << 20) < len(big) < 4 << 20
    workers(tls_redis.url, fake_kie.url, KIE_JOB_MAX_BYTES=4 << 20, **tls_env(pki))
    r.lpush(f"{PREFIX}:queue", big)
    r.lpush(f"{PREFIX}:queue", descriptor("tls-after"))
    evs = wait_done(r, 2)
    assert {e["jobId"]: e["status"] for e in evs} == {"tls-big": "completed",
                                                      "tls-after": "completed"}, evs
    assert r.llen(f"{PREFIX}:dead") == 0
    assert fake_kie.stats()["creates_by_job"] == {"tls-big": 1, "tls-after": 1}


def test_a_descriptor_over_the_cap_is_hashed_through_tls(tls_redis, pki, fake_kie, workers):
    """Over KIE_JOB_MAX_BYTES: streamed and hashed, never held, through TLS too."""
    import hashlib
    r = tls_redis.client()
    big = descriptor("tls-huge", 3 << 20)
    workers(tls_redis.url, fake_kie.url, KIE_JOB_MAX_BYTES=1 << 20, **tls_env(pki))
    r.lpush(f"{PREFIX}:queue", big)
    dead = wait_for(lambda: r.lrange(f"{PREFIX}:dead", 0, -1), 60, what="the dead letter")
    e = json.loads(dead[0])
    assert e["size"] == len(big)
    assert e["sha256"] == hashlib.sha256(big.encode()).hexdigest()
    assert fake_kie.stats()["creates_total"] == 0


@pytest.mark.parametrize("ca,extra,needle", [
    ("other-ca", {}, "not trusted for localhost"),
    # the right CA, but not the name the certificate carries
    ("ca", {"REDIS_TLS_SERVER_NAME": "redis.example.com"}, "not trusted for redis.example.com"),
])
def test_an_untrusted_server_is_refused(tls_redis, pki, fake_kie, workers, ca, extra, needle):
    r = tls_redis.client()
    r.lpush(f"{PREFIX}:queue", descriptor("tls-refused"))
    url = tls_redis.url
    w = workers(url, fake_kie.url, **tls_env(pki, ca), **extra)
    wait_for(lambda: needle in w.log(), 20, what=lambda: f"'{needle}' in {w.log()[-2000:]}")
    assert w.proc.poll() is None  # it keeps retrying, with backoff, as for any outage
    assert r.llen(f"{PREFIX}:queue") == 1  # no job taken
    assert fake_kie.stats()["creates_total"] == 0
    # the CLI says the same and exits 8 (Redis unreachable)
    env = base_env(url, fake_kie.url, **tls_env(pki, ca), **extra)
    p = run_kie(["pause", "--reason", "x"], env, timeout=30)
    assert p.returncode == 8, (p.returncode, p.stderr)
    assert needle in p.stderr, p.stderr
    assert r.get(f"{PREFIX}:pause") is None


def test_the_cli_over_tls(tls_redis, pki, fake_kie):
    r = tls_redis.client()
    env = base_env(tls_redis.url, fake_kie.url, **tls_env(pki))
    p = run_kie(["pause", "--reason", "tls maintenance"], env)
    assert p.returncode == 0, p.stderr
    pause = json.loads(r.get(f"{PREFIX}:pause"))
    assert pause["kind"] == "operator" and pause["reason"] == "tls maintenance", pause
    p = run_kie(["resume"], env)
    assert p.returncode == 0, p.stderr
    assert r.get(f"{PREFIX}:pause") is None


def test_a_client_certificate(tmpdir_path, pki, fake_kie, workers):
    d = os.path.join(tmpdir_path, "redis-mtls")
    os.makedirs(d)
    srv = TlsRedis(d, pki, auth_clients=True)
    try:
        r = srv.client()
        # without a client certificate the server refuses the worker
        w1 = workers(srv.url, fake_kie.url, **tls_env(pki))
        wait_for(lambda: "unreachable" in w1.log(), 20, what=lambda: w1.log()[-2000:])
        r.lpush(f"{PREFIX}:queue", descriptor("mtls-1"))
        w1.stop()
        assert r.llen(f"{PREFIX}:queue") == 1 and fake_kie.stats()["creates_total"] == 0
        # with one it works
        workers(srv.url, fake_kie.url, **tls_env(pki),
                REDIS_TLS_CERT_FILE=os.path.join(pki, "client.crt"),
                REDIS_TLS_KEY_FILE=os.path.join(pki, "client.key"))
        ev = wait_done(r, 1)[0]
        assert ev["jobId"] == "mtls-1" and ev["status"] == "completed", ev
        assert fake_kie.stats()["creates_by_job"] == {"mtls-1": 1}
    finally:
        srv.stop()


@pytest.mark.parametrize("env,needle", [
    ({"REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, "REDIS_TLS_CA_FILE: cannot read "
     "/nonexistent/ca.pem"),
    ({"REDIS_TLS_CERT_FILE": "{pki}/client.crt"}, "REDIS_TLS_CERT_FILE is set without "
     "REDIS_TLS_KEY_FILE"),
    ({"REDIS_TLS_CERT_FILE": "{pki}/client.crt", "REDIS_TLS_KEY_FILE": "{pki}/server.key"},
     "REDIS_TLS_KEY_FILE: {pki}/server.key is not the key of"),
    ({"REDIS_TLS_CA_FILE": "{pki}/ca.srl"}, "REDIS_TLS_CA_FILE: {pki}/ca.srl holds no CA "
     "certificate"),
    ({"REDIS_TLS_KEY_FILE": "{pki}/nothing.key", "REDIS_TLS_CERT_FILE": "{pki}/client.crt"},
     "REDIS_TLS_KEY_FILE: cannot read {pki}/nothing.key"),
    ({"REDIS_URL": "redis://127.0.0.1:1/0", "REDIS_TLS_CA_FILE": "{pki}/ca.crt"},
     "REDIS_TLS_CA_FILE is set but no Redis connection uses TLS"),
    ({"REDIS_SENTINEL_TLS": "1"}, "REDIS_SENTINEL_TLS=1 without REDIS_SENTINELS"),
])
def test_bad_tls_settings_stop_start_up(tmpdir_path, pki, env, needle):
    env = {k: v.format(pki=pki) for k, v in env.items()}
    needle = needle.format(pki=pki)
    full = base_env("rediss://localhost:1/0", "http://127.0.0.1:9", tmpdir_path, **env)
    p = subprocess.run([os.path.join(BIN, "kie-worker")],
                       env=full, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr, p.stderr
    q = run_kie(["pause"], full)
    assert q.returncode != 0 and needle in q.stderr, q.stderr


def test_sentinel_over_tls_names_a_tls_primary(tmpdir_path, pki, tls_redis, fake_kie, workers):
    """A sentinel on a TLS port only (REDIS_SENTINEL_TLS=1) monitoring a TLS primary
    (rediss://): the worker asks it over TLS, then reaches the primary it names over TLS,
    the certificate checked against the address the sentinel gave (127.0.0.1)."""
    import redis
    d = os.path.join(tmpdir_path, "sentinel-tls")
    os.makedirs(d)
    port = free_port()
    conf = os.path.join(d, "sentinel.conf")
    with open(conf, "w") as f:
        f.write(f"port 0\ntls-port {port}\nbind 127.0.0.1\ndir {d}\n"
                f"logfile {os.path.join(d, 'sentinel.log')}\n"
                f"tls-cert-file {pki}/server.crt\ntls-key-file {pki}/server.key\n"
                f"tls-ca-cert-file {pki}/ca.crt\ntls-auth-clients no\ntls-replication yes\n"
                f"sentinel monitor mymaster 127.0.0.1 {tls_redis.port} 1\n")
    proc = subprocess.Popen(["redis-sentinel", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        s = redis.Redis(host="127.0.0.1", port=port, ssl=True,
                        ssl_ca_certs=os.path.join(pki, "ca.crt"), decode_responses=True,
                        socket_timeout=5)

        def named():
            if proc.poll() is not None:
                raise AssertionError("redis-sentinel exited early")
            try:
                return s.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster")
            except Exception:
                return None
        assert wait_for(named, 15, what="the TLS sentinel") == ["127.0.0.1", str(tls_redis.port)]
        r = tls_redis.client()
        env = {"REDIS_SENTINELS": f"127.0.0.1:{port}", **tls_env(pki)}
        # the sentinel over plain TCP: it only speaks TLS, so nothing is reached
        w1 = workers("rediss://sentinel-mode/0", fake_kie.url, **env)
        wait_for(lambda: "unreachable" in w1.log(), 20, what=lambda: w1.log()[-2000:])
        w1.stop()
        r.lpush(f"{PREFIX}:queue", descriptor("sentinel-tls-1"))
        w = workers("rediss://sentinel-mode/0", fake_kie.url, REDIS_SENTINEL_TLS=1, **env)
        ev = wait_done(r, 1)[0]
        assert ev["jobId"] == "sentinel-tls-1" and ev["status"] == "completed", ev
        assert fake_kie.stats()["creates_by_job"] == {"sentinel-tls-1": 1}
        assert f"Redis primary for mymaster is 127.0.0.1:{tls_redis.port}" in w.log()
    finally:
        stop_proc(proc)
