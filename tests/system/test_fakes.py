"""The stand-ins must be able to fail: the KIE fake enforces kie-api.md's rules and the
S3 fake refuses bad SigV4 signatures, with botocore's own signer as the oracle."""
import base64
import hashlib
import hmac
import json
import http.client
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import TOKEN, FakeKie, wait_for


def call(url, method="GET", body=None, token=TOKEN, ua="kie-tests"):
    headers = {"Content-Type": "application/json"}
    if ua:
        headers["User-Agent"] = ua
    if token:
        headers["Authorization"] = "Bearer " + token
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def create(fake, prompt="a coat", images=("https://a.b/c.png",), **inp):
    body = {"model": "google/nano-banana-edit",
            "input": {"prompt": prompt, "image_urls": list(images), **inp}}
    status, raw = call(fake.url + "/api/v1/jobs/createTask", "POST", body)
    return status, json.loads(raw) if raw.startswith(b"{") and raw.endswith(b"}") else raw


def test_kie_fake_auth_user_agent_and_validation(fake_kie):
    st, raw = call(fake_kie.url + "/api/v1/chat/credit", token="wrong")
    assert st == 401 and json.loads(raw)["code"] == 401
    import http.client  # urllib would add its own User-Agent
    c = http.client.HTTPConnection("127.0.0.1", fake_kie.port, timeout=10)
    c.request("GET", "/api/v1/chat/credit", headers={"Authorization": "Bearer " + TOKEN})
    resp = c.getresponse()
    assert resp.status == 403 and resp.read() == b"error code: 1010"
    assert create(fake_kie, "x" * 5001)[1]["code"] == 422
    assert create(fake_kie, "衣" * 5000)[1]["code"] == 200  # characters, not bytes
    assert create(fake_kie, images=())[1]["code"] == 422
    assert create(fake_kie, images=[f"https://a.b/{i}" for i in range(11)])[1]["code"] == 422
    assert create(fake_kie, aspect_ratio="7:5")[1]["code"] == 422
    assert create(fake_kie, "[fake:400] x")[1]["code"] == 400


def test_kie_fake_task_progression_and_result_file(fake_kie):
    fake_kie.config(task_ms=300)
    tid = create(fake_kie)[1]["data"]["taskId"]
    def state():
        _, raw = call(fake_kie.url + f"/api/v1/jobs/recordInfo?taskId={tid}")
        return json.loads(raw)["data"]
    assert state()["state"] == "waiting"
    # two queries a poll, four polls a second: under KIE's 10 recordInfo calls/s
    done = wait_for(lambda: state()["state"] == "success" and state(), 5, interval=0.25,
                    what="success")
    assert isinstance(done["param"], str) and json.loads(done["param"])["model"]
    urls = json.loads(done["resultJson"])["resultUrls"]  # resultJson is a JSON string
    st, png = call(urls[0])
    assert st == 200 and png.startswith(b"\x89PNG")


def test_kie_fake_rate_limit_500s_and_malformed(fake_kie):
    fake_kie.config(create_limit=2, create_window_s=60)
    codes = [create(fake_kie)[1]["code"] for _ in range(3)]
    assert codes == [200, 200, 429]
    assert fake_kie.stats()["creates_refused_429"] == 1
    fake_kie.config(create_limit=0, fail_next_create_http500=2)
    before = fake_kie.stats()["creates_total"]
    assert create(fake_kie)[0] == 500 and create(fake_kie)[0] == 500
    assert fake_kie.stats()["creates_total"] == before + 1  # one of two was created
    fake_kie.config(malformed_next=1)
    st, raw = create(fake_kie)
    assert st == 200 and raw == b'{"code":200,"data":'


def query(fake, tid):
    st, raw = call(fake.url + f"/api/v1/jobs/recordInfo?taskId={tid}")
    return st, json.loads(raw)


def epoch_ms():
    return int(time.time() * 1000)


def test_kie_fake_query_limit_refuses_and_counts(fake_kie):
    tid = create(fake_kie)[1]["data"]["taskId"]
    # KIE's own limit, 10 recordInfo calls per second (the fixture lifts it)
    fake_kie.config(query_limit=10, query_window_s=1)
    before = epoch_ms()
    answers = [query(fake_kie, tid) for _ in range(25)]
    assert all(st == 200 for st, _ in answers)  # HTTP 200: the body code is the verdict
    refused = [b for _, b in answers if b["code"] == 429]
    assert refused and refused[0] == {"code": 429, "msg": "rate limited"}
    s = fake_kie.stats(brief=False)
    assert s["record_info_total"] == 25
    assert s["record_info_refused_429"] == len(refused)
    assert s["max_queries_in_any_second"] == 10
    times = s["record_info_times_ms"]
    assert len(times) == 25 - len(refused) and times == sorted(times)
    assert before - 5 <= times[0] and times[-1] <= epoch_ms() + 5

    # a window long enough that nothing slides out: exactly the limit gets through
    fake_kie.reset()
    tid = create(fake_kie)[1]["data"]["taskId"]
    fake_kie.config(query_limit=5, query_window_s=60)
    codes = [query(fake_kie, tid)[1]["code"] for _ in range(8)]
    assert codes == [200] * 5 + [429] * 3
    s = fake_kie.stats()
    assert (s["record_info_refused_429"], s["max_queries_in_any_second"]) == (3, 5)

    # the log slides: once the oldest call is older than the window, one more gets in
    fake_kie.config(query_limit=2, query_window_s=0.3)
    wait_for(lambda: query(fake_kie, tid)[1]["code"] == 200, 5, interval=0.05,
             what="a query after the window slid")
    assert query(fake_kie, tid)[1]["code"] == 200
    assert query(fake_kie, tid)[1]["code"] == 429
    wait_for(lambda: query(fake_kie, tid)[1]["code"] == 200, 5, interval=0.05,
             what="the window to slide again")

    # 0 turns it off; then the max can exceed any limit (it measures, it does not assume)
    fake_kie.config(query_limit=0, query_window_s=60)
    assert all(query(fake_kie, tid)[1]["code"] == 200 for _ in range(12))
    assert fake_kie.stats()["max_queries_in_any_second"] >= 12
    st, raw = call(fake_kie.url + "/_fake/config", "POST", {"query_limit": "10"})
    assert st == 400 and b"query_limit" in raw


def test_kie_fake_forced_create_refusals(fake_kie):
    t0 = epoch_ms()
    fake_kie.config(refuse_creates_until_ms=t0 + 60000, refuse_code=455)
    st, body = create(fake_kie)
    assert st == 200 and body["code"] == 455 and "maintenance" in body["msg"]
    fake_kie.config(refuse_code=429)
    assert create(fake_kie)[1]["code"] == 429
    s = fake_kie.stats(brief=False)
    assert (s["creates_refused_455"], s["creates_refused_429"], s["creates_total"]) == (1, 1, 0)
    assert len(s["create_refused_times_ms"]) == 2 and s["create_times_ms"] == []
    assert all(t0 - 5 <= t <= epoch_ms() + 5 for t in s["create_refused_times_ms"])
    # the period ends by itself
    until = epoch_ms() + 300
    fake_kie.config(refuse_creates_until_ms=until)
    assert create(fake_kie)[1]["code"] == 429
    wait_for(lambda: create(fake_kie)[1]["code"] == 200, 5, interval=0.05,
             what="createTask accepted after the refusal period")
    s = fake_kie.stats(brief=False)
    assert s["creates_total"] == 1 and len(s["create_times_ms"]) == 1
    assert s["create_times_ms"][0] >= until - 5
    # only 429 and 455 are refusal codes
    st, raw = call(fake_kie.url + "/_fake/config", "POST", {"refuse_code": 500})
    assert st == 400 and b"refuse_code" in raw


def test_kie_fake_max_creates_in_any_window(fake_kie):
    fake_kie.config(create_limit=3, create_window_s=60)
    codes = [create(fake_kie)[1]["code"] for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    s = fake_kie.stats(brief=False)
    assert s["max_creates_in_any_window"] == 3
    assert len(s["create_times_ms"]) == 3 and len(s["create_refused_times_ms"]) == 2
    assert s["create_times_ms"] == sorted(s["create_times_ms"])
    # with the limit off the same window holds more, and the stat says so
    fake_kie.config(create_limit=0)
    assert all(create(fake_kie)[1]["code"] == 200 for _ in range(4))
    assert fake_kie.stats()["max_creates_in_any_window"] == 7
    # a short window: the count restarts once calls slide out
    fake_kie.reset()
    fake_kie.config(create_limit=0, create_window_s=0.2)
    create(fake_kie)
    first = fake_kie.stats(brief=False)["create_times_ms"][0]
    wait_for(lambda: epoch_ms() > first + 300, 5, interval=0.05, what="the window to pass")
    create(fake_kie)
    assert fake_kie.stats()["max_creates_in_any_window"] == 1


def test_kie_fake_out_of_credits_refuses_creates_only(fake_kie):
    tid = create(fake_kie)[1]["data"]["taskId"]
    fake_kie.config(credits=0)
    st, body = create(fake_kie)
    assert st == 200 and body["code"] == 402
    assert fake_kie.stats()["creates_refused_402"] == 1
    st, body = query(fake_kie, tid)
    assert st == 200 and body["code"] == 200 and body["data"]["taskId"] == tid
    st, raw = call(fake_kie.url + "/api/v1/chat/credit")
    assert st == 200 and json.loads(raw) == {"code": 200, "msg": "success", "data": 0}


def test_kie_fake_answers_500_requests_per_second(fake_kie):
    """The worker tests must meet KIE's limits, not the fake's speed."""
    fake_kie.config(query_limit=0)
    tid = create(fake_kie)[1]["data"]["taskId"]
    h = {"Authorization": "Bearer " + TOKEN, "User-Agent": "kie-tests"}
    n, counts = 1000, [0, 0]

    def loop(i):
        c = http.client.HTTPConnection("127.0.0.1", fake_kie.port, timeout=10)
        for _ in range(n // 2):
            c.request("GET", f"/api/v1/jobs/recordInfo?taskId={tid}", headers=h)
            if json.loads(c.getresponse().read())["code"] == 200:
                counts[i] += 1
        c.close()
    ts = [threading.Thread(target=loop, args=(i,)) for i in range(2)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    rate = n / (time.monotonic() - t0)
    assert sum(counts) == n
    assert rate >= 500, f"{rate:.0f} requests/s"


def test_kie_fake_signed_callbacks(tmpdir_path):
    got = []

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass
    srv = HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    fake = FakeKie(tmpdir_path, task_ms=100, hmac_key="whk")
    try:
        cb = f"http://127.0.0.1:{srv.server_address[1]}/cb?jobId=j-1"
        body = {"model": "google/nano-banana-edit", "callBackUrl": cb,
                "input": {"prompt": "x", "image_urls": ["https://a.b/c.png"]}}
        call(fake.url + "/api/v1/jobs/createTask", "POST", body)
        body["input"]["prompt"] = "[fake:fail] x"
        call(fake.url + "/api/v1/jobs/createTask", "POST", body)
        wait_for(lambda: len(got) == 2, 10, what="two callbacks")
        assert fake.stats()["creates_by_job"] == {"j-1": 2}
        for path, headers, payload in got:
            assert path == "/cb?jobId=j-1"
            ts, tid = headers["X-Webhook-Timestamp"], payload["data"]["taskId"]
            expect = base64.b64encode(hmac.new(b"whk", f"{tid}.{ts}".encode(),
                                               hashlib.sha256).digest()).decode()
            assert headers["X-Webhook-Signature"] == expect
        states = sorted((p["code"], p["data"]["state"]) for _, _, p in got)
        assert states == [(200, "success"), (501, "fail")]
    finally:
        fake.stop()
        srv.shutdown()


def s3_request(fake_s3, method, key, body=b"", secret=None, tamper=False):
    url = f"{fake_s3.url}/{fake_s3.BUCKET}/{key}"
    req = AWSRequest(method=method, url=url, data=body)
    S3SigV4Auth(Credentials(fake_s3.ACCESS_KEY, secret or fake_s3.SECRET_KEY), "s3",
                "auto").add_auth(req)
    headers = dict(req.headers)
    if tamper:
        body = body + b"!"
    r = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                               headers=headers)
    try:
        with urllib.request.urlopen(r, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_s3_fake_accepts_botocore_signatures_and_refuses_bad_ones(fake_s3):
    assert s3_request(fake_s3, "PUT", "a/b.json", b'{"x":1}')[0] == 200
    st, body = s3_request(fake_s3, "GET", "a/b.json")
    assert st == 200 and body == b'{"x":1}'
    st, body = s3_request(fake_s3, "GET", "a/b.json", secret="wrong")
    assert st == 403 and b"<Code>SignatureDoesNotMatch</Code>" in body
    st, body = s3_request(fake_s3, "PUT", "a/c.json", b"data", tamper=True)
    assert st == 400 and b"XAmzContentSHA256Mismatch" in body
    st, body = call(f"{fake_s3.url}/{fake_s3.BUCKET}/a/b.json", token=None)
    assert st == 403 and b"AccessDenied" in body
    req = urllib.request.Request(f"{fake_s3.url}/{fake_s3.BUCKET}/a/b.json",
                                 headers={"Authorization": "AWS AK:sig"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert b"SigV2 authorization is not supported" in e.value.read()


def test_s3_fake_accepts_curl_sigv4_like_the_c_client(fake_s3):
    """curl's command line signs with the same code as libcurl's CURLOPT_AWS_SIGV4."""
    body = b'{"hello":"r2"}'
    url = f"{fake_s3.url}/{fake_s3.BUCKET}/kie-tasks/curl.json"
    auth = ["--aws-sigv4", "aws:amz:auto:s3", "--user",
            f"{fake_s3.ACCESS_KEY}:{fake_s3.SECRET_KEY}"]
    put = subprocess.run(["curl", "-sS", "-f", "-X", "PUT", *auth, "-H",
                          "x-amz-content-sha256: " + hashlib.sha256(body).hexdigest(),
                          "--data-binary", "@-", url], input=body, capture_output=True,
                         timeout=20)
    assert put.returncode == 0, put.stderr
    get = subprocess.run(["curl", "-sS", "-f", *auth, "-H",
                          "x-amz-content-sha256: " + hashlib.sha256(b"").hexdigest(), url],
                         capture_output=True, timeout=20)
    assert get.returncode == 0 and get.stdout == body
    bad = subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:auto:s3", "--user",
                          f"{fake_s3.ACCESS_KEY}:nope", "-H",
                          "x-amz-content-sha256: " + hashlib.sha256(b"").hexdigest(), url],
                         capture_output=True, timeout=20)
    assert b"SignatureDoesNotMatch" in bad.stdout
