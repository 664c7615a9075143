"""The operator page (/admin/) of kie-worker's HTTP server: its JSON API over plain HTTP
(read-only without a token; actions need the token, same origin and JSON) and the page
itself in headless Chromium (Debian's chromium + chromium-driver, through selenium).
KIE_SCREENSHOT=path saves a screenshot of the page (scripts/screenshot.sh)."""
import datetime
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
import json
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.request

import pytest

from conftest import free_port, wait_for

ADMIN_TOKEN = "op-token-0123456789abcdef"


def desc(job_id, type_="raw", prompt="a red coat"):
    return json.dumps({"v": 1, "id": job_id, "type": type_, "maxAttempts": 1,
                       "input": {"prompt": prompt, "imageUrl": "https://example.com/a.png"}})


def dead_entry(job_id, reason, raw, source="kie", ago_s=600):
    at = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=ago_s)
    return json.dumps({"v": 1, "jobId": job_id, "reason": reason, "source": source,
                       "raw": raw, "attempts": 1, "workerId": "host:123:ab12cd34#0",
                       "failedAt": at.strftime("%Y-%m-%dT%H:%M:%S.000Z")})


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def start_page_worker(workers, redis_server, fake_kie, token=ADMIN_TOKEN, **extra):
    port = free_port()
    env = {"KIE_HTTP_ADDR": f"127.0.0.1:{port}", "KIE_ADMIN_PAGE": "on", **extra}
    if token:
        env["KIE_ADMIN_TOKEN"] = token
    w = workers(redis_server.url, fake_kie.url, **env)
    base = f"http://127.0.0.1:{port}/admin/"

    def up():
        try:
            return http("GET", base + "api/stats")[0] == 200
        except OSError:
            return False
    wait_for(up, 20, what="the operator page")
    return w, base


def test_api_reads_and_guarded_actions(workers, redis_server, r, fake_kie):
    w, base = start_page_worker(workers, redis_server, fake_kie)
    r.lpush("kie:dead", dead_entry("w-1", "KIE refused the job: no", desc("w-1")))
    r.hset("kie:job:w-1", mapping={"state": "dead", "attempts": "1"})

    st, h, body = http("GET", base + "api/stats")
    s = json.loads(body)
    assert st == 200 and s["depths"]["dead"] == 1 and s["actions"] is True
    assert h["Content-Type"] == "application/json"
    assert "script-src 'self'" in h["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
    assert h["X-Content-Type-Options"] == "nosniff" and h["Cache-Control"] == "no-store"
    assert h["X-Frame-Options"] == "DENY"
    st, h, body = http("GET", base)
    assert st == 200 and b'<script src="app.js"' in body and b"<script>" not in body
    assert http("GET", base + "app.js")[1]["Content-Type"].startswith("text/javascript")
    assert http("GET", base + "nope.js")[0] == 404
    d = json.loads(http("GET", base + "api/dead?reason=kie_rejected")[2])
    assert [e["jobId"] for e in d["entries"]] == ["w-1"]
    # the scheduling structure, and one job's place (issue 19; the page shows it later)
    sc = json.loads(http("GET", base + "api/schedule")[2])
    assert sc["ready"] == 0 and sc["topGroups"] == [] and sc["oldestWaitMs"] is None
    assert json.loads(http("GET", base + "api/schedule?id=w-1")[2])["state"] == "dead"
    assert http("GET", base + "api/schedule?id=bad%20id")[0] == 400
    assert http("GET", base + "api/dead?reason=bogus")[0] == 400
    j = http("GET", base + "api/job?id=w-1")
    assert j[0] == 200 and json.loads(j[2])["state"] == "dead"
    assert http("GET", base + "api/job?id=nobody")[0] == 404
    assert http("GET", base + "api/job?id=%3Cx%3E")[0] == 400
    # the callback endpoint is still there, with its own answers
    assert http("GET", base.replace("/admin/", "/api/kie/callback"))[0] == 405

    url = base + "api/dead/retry"
    body = json.dumps({"ref": "w-1"}).encode()
    good = {"Content-Type": "application/json", "Authorization": "Bearer " + ADMIN_TOKEN}
    # no token: 401; a wrong one: 401
    assert http("POST", url, body, {"Content-Type": "application/json"})[0] == 401
    assert http("POST", url, body, {**good, "Authorization": "Bearer wrong-token-xyz"})[0] == 401
    # with the token, cross-site: 403 (Origin, Sec-Fetch-Site)
    assert http("POST", url, body, {**good, "Origin": "http://evil.example"})[0] == 403
    assert http("POST", url, body, {**good, "Sec-Fetch-Site": "cross-site"})[0] == 403
    # a form's content type: refused
    assert http("POST", url, b"ref=w-1",
                {**good, "Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    assert http("POST", url, body, {**good, "Content-Type": "text/plain"})[0] == 415
    # GET on an action: not one
    assert http("GET", url)[0] == 404
    assert r.llen("kie:dead") == 1 and r.llen("kie:queue") == 0  # nothing changed so far
    # dry run, then the real one (same origin, as the page sends it)
    origin = base[:-len("/admin/")]
    st, _, b = http("POST", url, json.dumps({"ref": "w-1", "dryRun": True}).encode(),
                    {**good, "Origin": origin, "Sec-Fetch-Site": "same-origin"})
    assert st == 200 and json.loads(b)["results"][0]["outcome"] == "would_retry"
    assert r.llen("kie:dead") == 1
    st, _, b = http("POST", url, body, {**good, "Origin": origin, "Sec-Fetch-Site": "same-origin"})
    assert st == 200 and json.loads(b)["results"][0]["outcome"] == "retried"
    wait_for(lambda: r.hget("kie:job:w-1", "state") == "completed", 20, what="w-1 completed")
    assert fake_kie.stats()["creates_by_job"].get("w-1") == 1
    # pause and resume
    st, _, b = http("POST", base + "api/pause", b'{"reason":"maintenance"}', good)
    assert st == 200 and json.loads(b)["pause"]["reason"] == "maintenance"
    assert json.loads(r.get("kie:pause"))["kind"] == "operator"
    assert http("POST", base + "api/resume", b"{}", good)[0] == 200
    assert r.get("kie:pause") is None
    assert http("POST", base + "api/dead/purge", b"{}", good)[0] == 400  # no selection
    log = w.log()
    assert ADMIN_TOKEN not in log and "wrong-token-xyz" not in log
    assert w.stop() == 0


def test_actions_off_without_a_token_and_page_off_by_default(workers, redis_server, r,
                                                             fake_kie):
    w, base = start_page_worker(workers, redis_server, fake_kie, token=None)
    st, _, b = http("POST", base + "api/resume", b"{}",
                    {"Content-Type": "application/json", "Authorization": "Bearer x"})
    assert st == 403 and b"KIE_ADMIN_TOKEN" in b
    assert json.loads(http("GET", base + "api/stats")[2])["actions"] is False
    assert w.stop() == 0
    port = free_port()
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{port}")
    wait_for(lambda: "callback endpoint listening" in w.log(), 20, what="the endpoint")
    assert http("GET", f"http://127.0.0.1:{port}/admin/api/stats")[0] == 404
    assert w.stop() == 0
    # a short token stops start-up, naming the variable (and not the token)
    w = workers(redis_server.url, fake_kie.url, KIE_HTTP_ADDR=f"127.0.0.1:{free_port()}",
                KIE_ADMIN_PAGE="on", KIE_ADMIN_TOKEN="short-secret")
    assert w.wait(20) == 2  # a configuration error: restarting would not fix it
    assert "KIE_ADMIN_TOKEN is shorter" in w.log() and "short-secret" not in w.log()
    # the page asked for without the HTTP server it needs: refused the same way
    w = workers(redis_server.url, fake_kie.url, KIE_ADMIN_PAGE="on")
    assert w.wait(20) == 2
    assert "KIE_ADMIN_PAGE=on needs KIE_HTTP_ADDR" in w.log()


@pytest.fixture
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromium-driver are needed (scripts/install-deps.sh)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="kie-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}",
              "--window-size=1280,1400"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def text_of(browser, id_):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    try:
        return browser.find_element(By.ID, id_).text
    except WebDriverException:
        return None


def test_page_in_headless_chromium(workers, redis_server, r, fake_kie, browser, tmpdir_path):
    from selenium.webdriver.common.by import By
    # a CDN in front of the store (R2_PUBLIC_BASE_URL): a static server on the fs store's
    # folder, so the page's thumbnails are our stored copies, not KIE's links
    meta = os.path.join(tmpdir_path, "meta")
    os.makedirs(meta, exist_ok=True)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=meta)
    handler.log_message = lambda *a: None
    cdn = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=cdn.serve_forever, daemon=True).start()
    cdn_base = f"http://127.0.0.1:{cdn.server_address[1]}"
    w, base = start_page_worker(workers, redis_server, fake_kie, R2_PUBLIC_BASE_URL=cdn_base)
    for i in range(3):
        r.lpush("kie:queue", desc(f"c-{i}", prompt=f"look {i}"))
    wait_for(lambda: all(r.hget(f"kie:job:c-{i}", "state") == "completed" for i in range(3)),
             20, what="completed jobs")
    # paused: new jobs wait in the queue
    r.set("kie:pause", json.dumps({"kind": "operator", "reason": "on-call check",
                                   "since": "2026-11-26T03:00:00.000Z", "by": "test"}))
    for i in range(4):
        r.lpush("kie:queue", desc(f"q-{i}"))
    # a dead job whose reason and type try to inject markup, and one to retry
    xss_raw = json.dumps({"v": 1, "id": "xss-1", "type": "<script>window.__xss=1</script>",
                          "input": {}})
    r.lpush("kie:dead", dead_entry(
        "xss-1", "bad <img src=x onerror=\"window.__xss=2\"> <script>window.__xss=3</script>",
        xss_raw, source="parse"))
    r.lpush("kie:dead", dead_entry("retry-me", "gave up after 1 attempts; last error: "
                                   "connection refused", desc("retry-me"), source="kie"))
    r.hset("kie:job:retry-me", mapping={"state": "dead", "attempts": "1"})

    browser.get(base)
    try:
        wait_for(lambda: text_of(browser, "depth-queue") == "4", 15, interval=0.2,
                 what="queue depth on the page")
    except AssertionError:
        raise AssertionError(browser.page_source[:3000] + str(browser.get_log("browser")))
    assert browser.find_element(By.ID, "depth-dead").text == "2"
    # thumbnails of the completed jobs (on the overview): the stored copies, loaded
    def thumbs_loaded():
        imgs = browser.find_elements(By.CSS_SELECTOR, "#completions img")
        return len(imgs) >= 3 and all(
            browser.execute_script("return arguments[0].complete && "
                                   "arguments[0].naturalWidth > 0", i) for i in imgs)
    wait_for(thumbs_loaded, 15, interval=0.2, what="thumbnails loaded")
    srcs = [i.get_attribute("src") for i in browser.find_elements(By.CSS_SELECTOR,
                                                                   "#completions img")]
    events = [json.loads(e) for e in r.lrange("kie:results", 0, -1)]
    expected = {e["storedUrls"][0] for e in events}
    assert all(u.startswith(cdn_base + "/kie-results/") for u in expected), expected
    assert set(srcs) == expected
    if os.environ.get("KIE_SCREENSHOT"):
        browser.save_screenshot(os.environ["KIE_SCREENSHOT"])
    # the dead letters' view
    browser.find_element(By.CSS_SELECTOR, 'nav a[data-view="dead"]').click()
    wait_for(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#dead tbody tr")) == 2, 15,
             interval=0.2, what="dead rows")
    assert not browser.find_element(By.ID, "pause").get_attribute("hidden")
    assert "on-call check" in browser.find_element(By.ID, "pause-reason").text
    # the markup is shown as text, never run
    rows = {tr.get_attribute("data-job"): tr
            for tr in browser.find_elements(By.CSS_SELECTOR, "#dead tbody tr")}
    assert "<img src=x onerror=" in rows["xss-1"].text and "<script>" in rows["xss-1"].text
    assert browser.find_elements(By.CSS_SELECTOR, "#dead img, #dead script") == []
    assert browser.execute_script("return window.__xss") is None
    # the retry button: token entered, the job goes back to the queue
    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
    btn = rows["retry-me"].find_element(By.CSS_SELECTOR, "button.retry")
    btn.click()
    # back in the queue, and routed from there into the scheduling structure (paused)
    wait_for(lambda: desc("retry-me") in r.lrange("kie:queue", 0, -1) or
             r.hget("kie:job:retry-me", "state") == "queued", 10, interval=0.1,
             what="retry-me back in the queue")
    assert all("retry-me" not in e for e in r.lrange("kie:dead", 0, -1))
    wait_for(lambda: "retried" in browser.find_element(By.ID, "message").text, 10,
             interval=0.2, what="the page's answer")
    # resume from the page; the retried job completes
    browser.find_element(By.ID, "btn-resume").click()
    wait_for(lambda: r.hget("kie:job:retry-me", "state") == "completed", 20,
             what="retry-me completed")
    assert fake_kie.stats()["creates_by_job"].get("retry-me") == 1
    assert w.stop() == 0


def test_admin_token_is_a_secret(workers, redis_server, r, fake_kie, tmpdir_path):
    import subprocess
    from conftest import BIN, base_env
    # never on the command line
    p = subprocess.run([os.path.join(BIN, "kie-worker"), "--admin-token", ADMIN_TOKEN],
                       env=base_env(redis_server.url, fake_kie.url), capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2 and "KIE_ADMIN_TOKEN" in p.stderr
    assert ADMIN_TOKEN not in p.stdout + p.stderr
    # from a file; never printed
    path = os.path.join(tmpdir_path, "admin-token")
    with open(path, "w") as f:
        f.write(ADMIN_TOKEN + "\n")
    p = subprocess.run([os.path.join(BIN, "kie-worker"), "--print-config"],
                       env=base_env(redis_server.url, fake_kie.url, KIE_ADMIN_TOKEN_FILE=path),
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and "KIE_ADMIN_TOKEN" in p.stdout
    assert ADMIN_TOKEN not in p.stdout + p.stderr
    w, base = start_page_worker(workers, redis_server, fake_kie, token=None,
                                KIE_ADMIN_TOKEN_FILE=path)
    good = {"Content-Type": "application/json", "Authorization": "Bearer " + ADMIN_TOKEN}
    assert http("POST", base + "api/resume", b"{}", good)[0] == 200
    assert w.stop() == 0
    assert ADMIN_TOKEN not in w.log()
