"""System tests of result copies (docs/protocol.md section 5, "Result copies"): the fake
serves real PNG and JPEG files (and an oversized one, one whose declared type lies, one
that is no image, downloads that fail with 500); the worker copies them into the fs store
or the fake S3 (SigV4-checked) and names them in storedUrls. Bytes are compared by SHA-256
with what the fake served; every job creates exactly one task (counted at the fake)."""
import hashlib
import io
import json
import os

import botocore.config
import botocore.session
import pytest

from conftest import FakeKie, free_port, wait_for

PREFIX = "kie"
CDN = "https://cdn.example.com/assets/"


def job(job_id, markers):
    return json.dumps({"v": 1, "id": job_id, "type": "raw",
                       "input": {"prompt": f"a red coat {markers}",
                                 "imageUrls": ["https://img.example.com/c.png"]}})


def events(r):
    return {e["jobId"]: e for e in (json.loads(x) for x in r.lrange(f"{PREFIX}:results", 0, -1))}


def wait_event(r, job_id, timeout=60):
    return wait_for(lambda: events(r).get(job_id), timeout, what=f"the event of {job_id}")


def one_task_each(fake_kie, *job_ids):
    by_job = fake_kie.stats()["creates_by_job"]
    for j in job_ids:
        assert by_job.get(j) == 1, (j, by_job)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def assert_real_image(data, fmt):
    from PIL import Image  # python3-pil (scripts/install-deps.sh)
    im = Image.open(io.BytesIO(data))
    assert im.format == fmt
    im.verify()


def s3_client(s3):
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=s3.url, region_name="auto", aws_access_key_id=s3.ACCESS_KEY,
        aws_secret_access_key=s3.SECRET_KEY,
        config=botocore.config.Config(s3={"addressing_style": "path"}))


def test_fs_store_holds_the_exact_bytes_and_types(redis_server, r, fake_kie, workers,
                                                  tmpdir_path):
    workers(redis_server.url, fake_kie.url)
    r.lpush(f"{PREFIX}:queue", job("cp-fs", "[fake:results=png,jpeg]"))
    ev = wait_event(r, "cp-fs")
    assert ev["status"] == "completed", ev
    tid = ev["taskId"]
    root = os.path.join(tmpdir_path, "meta")
    want = [os.path.join(root, "kie-results", tid, "0.png"),
            os.path.join(root, "kie-results", tid, "1.jpg")]
    assert ev["storedUrls"] == want, ev
    assert ev["copyErrors"] == []
    served = fake_kie.stats()["files_sha256"]
    data = [open(p, "rb").read() for p in want]
    assert sha(data[0]) == served["png"]
    assert sha(data[1]) == served["jpeg"]
    assert_real_image(data[0], "PNG")
    assert_real_image(data[1], "JPEG")
    with open(os.path.join(root, "kie-tasks", f"{tid}.json")) as f:
        rec = json.load(f)
    assert rec["storedUrls"] == want and rec["copyErrors"] == [], rec
    assert rec["resultUrls"] == ev["resultUrls"]
    one_task_each(fake_kie, "cp-fs")


def test_s3_store_with_public_base_url(redis_server, r, fake_kie, fake_s3, workers):
    # a 3 MB file too: a signed PUT of a body over curl's 100-continue threshold
    fake_kie.config(big_file_bytes=3000000)
    workers(redis_server.url, fake_kie.url, R2_PUBLIC_BASE_URL=CDN, **fake_s3.env())
    r.lpush(f"{PREFIX}:queue", job("cp-s3", "[fake:results=jpeg,png,big]"))
    ev = wait_event(r, "cp-s3")
    assert ev["status"] == "completed", ev
    tid = ev["taskId"]
    keys = [f"kie-results/{tid}/0.jpg", f"kie-results/{tid}/1.png", f"kie-results/{tid}/2.png"]
    assert ev["storedUrls"] == ["https://cdn.example.com/assets/" + k for k in keys], ev
    assert ev["copyErrors"] == []
    served = fake_kie.stats()["files_sha256"]
    s3 = s3_client(fake_s3)
    for key, kind, ctype, fmt in ((keys[0], "jpeg", "image/jpeg", "JPEG"),
                                  (keys[1], "png", "image/png", "PNG"),
                                  (keys[2], "big", "image/png", "PNG")):
        obj = s3.get_object(Bucket=fake_s3.BUCKET, Key=key)
        body = obj["Body"].read()
        assert sha(body) == served[kind], key
        assert obj["ContentType"] == ctype
        assert_real_image(body, fmt)
    rec = json.loads(s3.get_object(Bucket=fake_s3.BUCKET,
                                   Key=f"kie-tasks/{tid}.json")["Body"].read())
    assert rec["storedUrls"] == ev["storedUrls"], rec
    one_task_each(fake_kie, "cp-s3")


def test_s3_store_urls_without_public_base(redis_server, r, fake_kie, fake_s3, workers):
    workers(redis_server.url, fake_kie.url, **fake_s3.env())
    r.lpush(f"{PREFIX}:queue", job("cp-s3-own", "[fake:results=png]"))
    ev = wait_event(r, "cp-s3-own")
    key = f"kie-results/{ev['taskId']}/0.png"
    assert ev["storedUrls"] == [f"{fake_s3.url}/{fake_s3.BUCKET}/{key}"], ev
    body = s3_client(fake_s3).get_object(Bucket=fake_s3.BUCKET, Key=key)["Body"].read()
    assert sha(body) == fake_kie.stats()["files_sha256"]["png"]
    one_task_each(fake_kie, "cp-s3-own")


def test_oversized_lying_and_non_images_are_refused_with_reasons(redis_server, r, fake_kie,
                                                                 workers, tmpdir_path):
    fake_kie.config(big_file_bytes=300000)
    workers(redis_server.url, fake_kie.url, KIE_COPY_MAX_BYTES=100000)
    r.lpush(f"{PREFIX}:queue", job("cp-bad", "[fake:results=png,big,bignolen,liar,notimage]"))
    ev = wait_event(r, "cp-bad")
    assert ev["status"] == "completed", ev
    tid = ev["taskId"]
    root = os.path.join(tmpdir_path, "meta", "kie-results", tid)
    assert ev["storedUrls"] == [os.path.join(root, "0.png"), None, None, None, None], ev
    why = {e["index"]: e["reason"] for e in ev["copyErrors"]}
    assert sorted(why) == [1, 2, 3, 4], ev
    assert "larger than KIE_COPY_MAX_BYTES (100000 bytes)" in why[1]
    assert "larger than KIE_COPY_MAX_BYTES (100000 bytes)" in why[2]  # no Content-Length
    assert "declared Content-Type image/png but the bytes are image/jpeg" in why[3]
    assert "not a PNG, JPEG, WebP or GIF image" in why[4]
    assert os.listdir(root) == ["0.png"]
    # refused for good: each file was asked for once, never again
    assert fake_kie.stats()["file_downloads"] == 5
    one_task_each(fake_kie, "cp-bad")


def test_transient_500s_are_retried_without_holding_up_other_jobs(redis_server, r, fake_kie,
                                                                  workers, tmpdir_path):
    # one poller: if it slept through the backoff, the other jobs would wait behind it
    workers(redis_server.url, fake_kie.url, KIE_WORKER_POLLERS=1, KIE_COPY_RETRY_MS=500)
    r.lpush(f"{PREFIX}:queue", job("cp-slow", "[fake:results=png][fake:file500=4]"))
    wait_for(lambda: fake_kie.stats()["file_downloads_500"] >= 1, 30, what="a first 500")
    others = [f"cp-other-{i}" for i in range(3)]
    for j in others:
        r.lpush(f"{PREFIX}:queue", job(j, "[fake:results=jpeg]"))
    for j in others:
        assert wait_event(r, j)["storedUrls"][0].endswith("/0.jpg")
    # 4 failed downloads take 0.5 + 1 + 2 + 4 s of backoff: the others finished first
    assert "cp-slow" not in events(r), "the retried job was expected to finish last"
    ev = wait_event(r, "cp-slow")
    assert ev["copyErrors"] == [], ev
    data = open(ev["storedUrls"][0], "rb").read()
    stats = fake_kie.stats()
    assert sha(data) == stats["files_sha256"]["png"]
    assert stats["file_downloads_500"] == 4  # four rounds (copyTries goes with the task hash)
    one_task_each(fake_kie, "cp-slow", *others)


def test_copy_deadline_sends_the_event_with_the_failures(redis_server, r, fake_kie, workers):
    workers(redis_server.url, fake_kie.url, KIE_COPY_RETRY_MS=100, KIE_COPY_DEADLINE_MS=1500)
    r.lpush(f"{PREFIX}:queue", job("cp-never", "[fake:results=png,jpeg][fake:file500=1000]"))
    ev = wait_event(r, "cp-never")
    assert ev["status"] == "completed" and ev["storedUrls"] == [None, None], ev
    assert [e["index"] for e in ev["copyErrors"]] == [0, 1]
    for e in ev["copyErrors"]:
        assert "HTTP 500" in e["reason"] and "gave up: KIE_COPY_DEADLINE_MS" in e["reason"], e
    one_task_each(fake_kie, "cp-never")


def test_copies_off(redis_server, r, fake_kie, workers, tmpdir_path):
    workers(redis_server.url, fake_kie.url, KIE_COPY_RESULTS=0)
    r.lpush(f"{PREFIX}:queue", job("cp-off", "[fake:results=png,jpeg]"))
    ev = wait_event(r, "cp-off")
    assert ev["status"] == "completed" and len(ev["resultUrls"]) == 2, ev
    assert "storedUrls" not in ev and "copyErrors" not in ev
    with open(os.path.join(tmpdir_path, "meta", "kie-tasks", f"{ev['taskId']}.json")) as f:
        assert "storedUrls" not in json.load(f)
    assert not os.path.exists(os.path.join(tmpdir_path, "meta", "kie-results"))
    assert fake_kie.stats()["file_downloads"] == 0
    one_task_each(fake_kie, "cp-off")


def test_failed_task_has_no_copies(redis_server, r, fake_kie, workers):
    workers(redis_server.url, fake_kie.url)
    r.lpush(f"{PREFIX}:queue", job("cp-fail", "[fake:fail]"))
    ev = wait_event(r, "cp-fail")
    assert ev["status"] == "failed" and "storedUrls" not in ev, ev
    one_task_each(fake_kie, "cp-fail")


@pytest.mark.parametrize("signed", [True, False], ids=["verified", "unverified"])
def test_callback_success_goes_through_the_same_copy_step(redis_server, r, workers,
                                                          tmpdir_path, signed):
    key = "whk-copies-test"
    fk = FakeKie(tmpdir_path, task_ms=300, create_limit=0, query_limit=0,
                 **({"hmac_key": key} if signed else {}))
    try:
        port = free_port()
        # polling would first look after a minute: the callback is what ends the task
        workers(redis_server.url, fk.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}",
                KIE_CALLBACK_URL=f"http://127.0.0.1:{port}/api/kie/callback",
                KIE_POLL_INITIAL_MS=60000, KIE_POLL_MAX_MS=60000,
                **({"KIE_WEBHOOK_HMAC_KEY": key} if signed else {}))
        r.lpush(f"{PREFIX}:queue", job("cp-cb", "[fake:results=png,jpeg][fake:file500=1]"))
        ev = wait_event(r, "cp-cb", timeout=40)
        stats = fk.stats()
        assert stats["callbacks_sent"] >= 1
        # the URLs copied come from recordInfo, asked once: by the callback consumer to
        # confirm an unverified callback, by a poller for a verified one (its body is not
        # signed); the copy rounds after that call nothing
        assert stats["record_info_total"] == 1, stats
        assert ev["copyErrors"] == [] and len(ev["storedUrls"]) == 2, ev
        assert sha(open(ev["storedUrls"][0], "rb").read()) == stats["files_sha256"]["png"]
        assert sha(open(ev["storedUrls"][1], "rb").read()) == stats["files_sha256"]["jpeg"]
        assert stats["file_downloads_500"] == 1
        assert stats["creates_by_job"] == {"cp-cb": 1}
    finally:
        fk.stop()


def test_script_flush_after_a_paid_create_and_mid_copy(redis_server, r, fake_kie, workers):
    """SCRIPT FLUSH (a restart or failover's empty script cache) right after a paid
    createTask, and again while a copy waits for its retry: the recording, polling and
    finalizing steps meet NOSCRIPT, send their script with EVAL and go on. One task, each
    file stored once, one event."""
    fake_kie.config(latency_ms=1500)
    workers(redis_server.url, fake_kie.url, KIE_WORKER_CONCURRENCY=1, KIE_COPY_RETRY_MS=300)
    r.lpush(f"{PREFIX}:queue", job("sf-1", "[fake:results=png,jpeg][fake:file500=2]"))
    wait_for(lambda: r.hget(f"{PREFIX}:job:sf-1", "state") == "creating", 20,
             what="createTask in flight")
    r.script_flush()
    wait_for(lambda: r.hget(f"{PREFIX}:job:sf-1", "taskId"), 20, what="the task recorded")
    task = r.hget(f"{PREFIX}:job:sf-1", "taskId")
    wait_for(lambda: r.hexists(f"{PREFIX}:task:{task}", "copyResult"), 20,
             what="the copies begun")
    r.script_flush()
    wait_for(lambda: "sf-1" in events(r), 30, what="the completion event")
    ev = events(r)["sf-1"]
    assert ev["status"] == "completed" and not ev.get("copyErrors")
    assert len(ev["storedUrls"]) == 2 and all(ev["storedUrls"])
    st = fake_kie.stats()
    assert st["creates_by_job"] == {"sf-1": 1}
    # each file served once (the two 500s are counted apart): never fetched twice
    assert st["file_downloads"] == 2 and st["file_downloads_500"] == 2
    assert r.llen(f"{PREFIX}:results") == 1 and r.llen(f"{PREFIX}:dead") == 0


def record_of(tmpdir_path, tid):
    """The metadata record's bytes, decoded as strict UTF-8 (a bad byte fails the test)."""
    with open(os.path.join(tmpdir_path, "meta", "kie-tasks", f"{tid}.json"), "rb") as f:
        return json.loads(f.read().decode("utf-8", errors="strict"))


@pytest.fixture
def fake_kie_127_0_0_2(tmpdir_path):
    """The KIE fake whose resultUrls name a second listener on 127.0.0.2."""
    d = os.path.join(tmpdir_path, "fake2")
    os.makedirs(d)
    f = FakeKie(d, task_ms=300, create_limit=0, query_limit=0, files_host="127.0.0.2")
    yield f
    f.stop()


def test_redirects_to_loopback_and_link_local_are_refused_after_dns(
        redis_server, r, fake_kie_127_0_0_2, workers, tmpdir_path):
    # issue 16: copies followed URLs and redirects anywhere. 127.0.0.2 is allowed by the
    # list; its redirects to 127.0.0.1 and to 169.254.169.254 (cloud metadata) are not
    fk = fake_kie_127_0_0_2
    workers(redis_server.url, fk.url, KIE_COPY_ALLOW_PRIVATE="127.0.0.2",
            KIE_COPY_RETRY_MS=100, KIE_COPY_DEADLINE_MS=4000, KIE_CONNECT_TIMEOUT_MS=1000)
    r.lpush(f"{PREFIX}:queue", job("cp-ssrf", "[fake:results=png,redirlo,redirmeta]"))
    ev = wait_event(r, "cp-ssrf")
    assert ev["status"] == "completed", ev
    tid = ev["taskId"]
    assert ev["resultUrls"][0].startswith("http://127.0.0.2:"), ev
    assert ev["storedUrls"][0] == os.path.join(tmpdir_path, "meta", "kie-results", tid, "0.png")
    assert ev["storedUrls"][1:] == [None, None], ev
    why = {e["index"]: e["reason"] for e in ev["copyErrors"]}
    assert sorted(why) == [1, 2], ev
    assert "refused: 127.0.0.1 is a loopback address (not allowed by " \
           "KIE_COPY_ALLOW_PRIVATE)" in why[1], why
    assert "refused: 169.254.169.254 is a link-local address" in why[2], why
    for w in why.values():
        assert "gave up" not in w, why  # refused for good at once, not retried to the deadline
    rec = record_of(tmpdir_path, tid)
    assert rec["storedUrls"] == ev["storedUrls"], rec
    assert {e["index"]: e["reason"] for e in rec["copyErrors"]} == why
    st = fk.stats()
    assert st["file_redirects"] == 2, st        # each asked once: not retried
    assert st["file_downloads"] == 1, st        # 127.0.0.1 never served the redirect's file
    one_task_each(fk, "cp-ssrf")


def test_the_first_url_is_checked_too(redis_server, r, fake_kie_127_0_0_2, workers,
                                      tmpdir_path):
    # the default, 0: public addresses only; 127.0.0.2 is loopback
    fk = fake_kie_127_0_0_2
    workers(redis_server.url, fk.url, KIE_COPY_ALLOW_PRIVATE="0")
    r.lpush(f"{PREFIX}:queue", job("cp-first", "[fake:results=png]"))
    ev = wait_event(r, "cp-first")
    assert ev["status"] == "completed" and ev["storedUrls"] == [None], ev
    assert "refused: 127.0.0.2 is a loopback address" in ev["copyErrors"][0]["reason"], ev
    assert fk.stats()["file_downloads"] == 0
    one_task_each(fk, "cp-first")


def test_5xx_with_an_error_page_over_the_cap_is_retried(redis_server, r, fake_kie, workers,
                                                       tmpdir_path):
    # issue 16: the size was checked before the status, so a 503 whose page is larger
    # than KIE_COPY_MAX_BYTES was refused for good
    workers(redis_server.url, fake_kie.url, KIE_COPY_MAX_BYTES=1024, KIE_COPY_RETRY_MS=100)
    r.lpush(f"{PREFIX}:queue", job("cp-503", "[fake:results=bigerr]"))
    ev = wait_event(r, "cp-503")
    assert ev["copyErrors"] == [], ev
    assert ev["storedUrls"][0].endswith("/0.png"), ev
    st = fake_kie.stats()
    assert (st["file_downloads_503"], st["file_downloads"]) == (1, 1), st
    one_task_each(fake_kie, "cp-503")


def test_content_type_that_is_not_utf8_stays_out_of_the_record(redis_server, r, fake_kie,
                                                              workers, tmpdir_path):
    # issue 16: the result host's Content-Type went into copyErrors (and the record) as
    # it came, and a byte that is not UTF-8 made kie-tasks/<id>.json invalid
    workers(redis_server.url, fake_kie.url)
    r.lpush(f"{PREFIX}:queue", job("cp-ctype", "[fake:results=badtype]"))
    ev = wait_event(r, "cp-ctype")
    assert ev["storedUrls"] == [None], ev
    rec = record_of(tmpdir_path, ev["taskId"])  # strict UTF-8
    reason = rec["copyErrors"][0]["reason"]
    assert "declared Content-Type image/?png but the bytes are image/png" in reason, reason
    one_task_each(fake_kie, "cp-ctype")
