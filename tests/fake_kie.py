#!/usr/bin/python3
"""fake_kie.py — a local fake of KIE.ai's jobs API that follows ../shared/kie-api.md,
for the tests, the demo and the benchmarks. Loopback by default; stdlib only (asyncio).

  /usr/bin/python3 tests/fake_kie.py [--port 0] [--port-file F] [--token T] [--task-ms 300]
      [--hmac-key K] [--create-limit 20] [--create-window-s 10]
      [--query-limit 10] [--query-window-s 1] [--credits 1000000] [--private-network]

API (kie-api.md): POST /api/v1/jobs/createTask, GET /api/v1/jobs/recordInfo,
GET /api/v1/chat/credit, POST /api/v1/common/download-url, callbacks to callBackUrl
(HMAC-signed when --hmac-key is set), result files under /files/. Loopback only, for
itself and the callbacks it sends, unless --private-network (docker-compose.yml's local
stack, where the fake and the workers share a network of their own).

Control (no auth): GET /_fake/stats[?brief=1], POST /_fake/config {...}, POST
/_fake/reset, GET /_fake/health. Config keys: task_ms, latency_ms,
create_http500_rate (0..1, with seed: that share of createTask calls answered 500, every
other one after creating the task), task_id_style (plain | slash | long: ids KIE may
return that are unsafe as file names or over 200 bytes),
fail_next_create_http500 (every other one creates the task first: "may exist and be
charged"), fail_next_record_info_http500, malformed_next, hang_next_ms, create_limit,
create_window_s, query_limit, query_window_s, refuse_creates_until_ms, refuse_code,
credits, token, drop_next_create (that many createTask calls create their task and then
close the connection without a byte of answer, as a KIE restart or a load balancer
dropping a kept-alive connection would: counted in creates_dropped),
callback_retry_ms (first wait before a callback that was not answered 200 is sent again:
200 ms, doubling; 3 tries in all, as KIE documents).

KIE's limits, enforced with sliding logs (a limit of 0 turns one off):
  - createTask: create_limit per create_window_s (KIE: 20 per 10 s per account); over
    it the answer is HTTP 200 {"code":429}, counted in creates_refused_429;
  - recordInfo: query_limit per query_window_s (KIE: 10 per second per key); over it
    HTTP 200 {"code":429,"msg":"rate limited"}, counted in record_info_refused_429.
Forced refusals: until refuse_creates_until_ms (epoch ms) every createTask answers
refuse_code, 429 (rate limited) or 455 (maintenance), counted in creates_refused_429 /
creates_refused_455.

Credits and accounts (issue 20): a task's cost is set per model when it is created
(model_credits: nano-banana 4, nano-banana-edit 6, nano-banana-pro 18 by default) and
charged to its account when it succeeds (a failed task costs 0); recordInfo and the
callback of a final task say so in creditsConsumed, or, with credit_names "old", in
consumeCredits with the balance in remainedCredits. A createTask whose account's balance
is below the model's cost answers 402 (recordInfo and the other endpoints keep working);
GET /api/v1/chat/credit answers the account's balance. Every token is an account of its
own: the start-up --token is "default" (its balance is the config key credits); POST
/_fake/account {"name","token","credits"} adds another or changes one (credits: the new
balance, a refill). Each account has its own createTask and recordInfo limits (the same
create_limit/query_limit settings, its own sliding logs). Stats: accounts (name ->
{credits, charged_total, charged_by_model, charged_by_job, tasks_charged, creates_total,
creates_refused_402, creates_refused_429, credit_requests, max_creates_in_any_window}).

Stats (GET /_fake/stats): counters (creates_total, creates_by_job, creates_refused_429,
creates_refused_455, creates_refused_402, record_info_total, record_info_refused_429,
requests_total, callbacks_*, record_info_last_task_id: the taskId of the last recordInfo
query as decoded), credits, and max_creates_in_any_window /
max_queries_in_any_second: the most createTask calls that created a task within any
create_window_s, and the most recordInfo calls let through within any query_window_s
(1 s and 10 s when a window is 0), kept as calls arrive over the whole run. Without
?brief=1 also: tasks (id -> state, jobId, request: the createTask body KIE received,
createTime and completeTime, epoch ms),
create_times_ms (epoch-ms arrivals of createTask calls that created
a task), create_refused_times_ms (those refused with 429/455) and record_info_times_ms
(recordInfo calls let through), the last 20,000 of each.

Prompt markers: "[fake:fail]" ends the task in state fail (501); "[fake:400]" makes
createTask answer code 400; "[fake:slow=MS]" makes that task take MS ms;
"[fake:results=K,K,...]" gives the task one result URL per K (/files/<taskId>/<n>.<K>),
K one of: png (a real 32x24 PNG), jpeg (a real 24x16 baseline JPEG), big (a real PNG of
big_file_bytes), bignolen (the same, sent without Content-Length), liar (the JPEG's bytes
declared image/png), notimage (HTML declared image/png). Without it: one PNG
(/files/<taskId>.png). "[fake:file500=N]": the first N downloads of that task's result
files answer 500. More kinds: redirlo (302 to the same file as png on 127.0.0.1),
redirmeta (302 to http://169.254.169.254/latest/meta-data/), badtype (the PNG declared
"image/\xddpng", a byte that is not UTF-8), bigerr (the first download answers 503 with a
4 KiB error page, later ones a 1x1 PNG).

--files-host H (a loopback address such as 127.0.0.2): result files are also served on
H (a second listener, its own port), and resultUrls name that one; 127.0.0.1 keeps
serving them too (the redirlo target).

Result files: fail_next_file_http500 (config) answers that many downloads with 500 first.
Stats: file_downloads (served 200), file_downloads_500, and files_sha256 (kind -> SHA-256
hex of the bytes served for it).
"""
import argparse
import asyncio
import base64
import collections
import hashlib
import hmac
import ipaddress
import json
import os
import random
import re
import signal
import struct
import sys
import time
import urllib.parse
import zlib

MODEL = "google/nano-banana-edit"
RATIOS = {"1:1", "9:16", "16:9", "3:4", "4:3", "3:2", "2:3", "5:4", "4:5", "21:9", "auto"}
MAX_BODY = 1024 * 1024
# a valid 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")

def make_png(width, height, pixel):
    """A real PNG (8-bit RGB, filter 0 rows) from pixel(x, y) -> bytes of 3."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    raw = b"".join(b"\0" + b"".join(pixel(x, y) for x in range(width))
                   for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 0 if width * height > 10000 else 9)) +
            chunk(b"IEND", b""))


RESULT_PNG = make_png(32, 24, lambda x, y: bytes((x * 8, y * 10, 200)))
# a real 24x16 baseline JPEG (made once with Pillow: quality 85, not progressive)
RESULT_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAUDBAQEAwUEBAQFBQUGBwwIBwcHBw8LCwkMEQ8SEhEPERETFhwX"
    "ExQaFRERGCEYGh0dHx8fExciJCIeJBweHx7/2wBDAQUFBQcGBw4ICA4eFBEUHh4eHh4eHh4eHh4eHh4eHh4e"
    "Hh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh7/wAARCAAQABgDASIAAhEBAxEB/8QAHwAAAQUBAQEB"
    "AQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKB"
    "kaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1"
    "dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl"
    "5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcF"
    "BAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5"
    "OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0"
    "tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDwzTfC/T93"
    "+ldNpvhfp+7/AEr0rTfC/T93+ldPpvhfp+7/AEr18ZxJ5nz/AA1xdt7x5ppvhfp+7/SivcdN8L9P3f6UV8zW"
    "4k97c/bsu4u/cr3j/9k=")
RESULT_KINDS = ("png", "jpeg", "big", "bignolen", "liar", "notimage", "redirlo",
                "redirmeta", "badtype", "bigerr")
_big_cache = {}


def big_png(nbytes):
    """A real PNG of about nbytes (noise, stored uncompressed)."""
    if nbytes not in _big_cache:
        side = max(8, int((nbytes / 3) ** 0.5))
        rnd = random.Random(7)
        _big_cache.clear()
        _big_cache[nbytes] = make_png(side, side, lambda x, y: bytes(
            (rnd.getrandbits(8), rnd.getrandbits(8), rnd.getrandbits(8))))
    return _big_cache[nbytes]


def result_file(kind, big_bytes):
    """(declared Content-Type, bytes) of a result file kind."""
    if kind == "png":
        return "image/png", RESULT_PNG
    if kind == "jpeg":
        return "image/jpeg", RESULT_JPEG
    if kind in ("big", "bignolen"):
        return "image/png", big_png(big_bytes)
    if kind == "liar":
        return "image/png", RESULT_JPEG
    if kind in ("badtype",):
        return "image/\xddpng", RESULT_PNG  # sent as the byte 0xDD (latin-1 headers)
    if kind == "bigerr":
        return "image/png", PNG  # 70 bytes: under the smallest KIE_COPY_MAX_BYTES
    return "image/png", b"<!doctype html><html><body>not an image</body></html>\n"


REASONS = {200: "OK", 204: "No Content", 302: "Found", 503: "Service Unavailable",
           400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           411: "Length Required", 413: "Payload Too Large", 500: "Internal Server Error"}


def now_ms():
    return int(time.time() * 1000)


TIMES_KEPT = 20000  # arrival times kept per list in the stats


class SlidingLog:
    """Arrival times (monotonic seconds) within the last window: a limiter when limit > 0,
    and in any case the most arrivals ever seen within one window."""

    def __init__(self):
        self.times = collections.deque()
        self.max_in_window = 0

    def prune(self, now, window):
        while self.times and now - self.times[0] >= window:
            self.times.popleft()

    def full(self, now, window, limit):
        """True when one more call now would exceed limit calls per window."""
        if not limit:
            return False
        self.prune(now, window)
        return len(self.times) >= limit

    def add(self, now, window):
        self.prune(now, window)
        self.times.append(now)
        self.max_in_window = max(self.max_in_window, len(self.times))


class State:
    """Everything the fake remembers; reset() returns to the start-up settings."""

    def __init__(self, args):
        self.args = args
        self.reset()

    def reset(self):
        a = self.args
        self.cfg = {"task_ms": a.task_ms, "latency_ms": 0, "fail_next_create_http500": 0,
                    "fail_next_record_info_http500": 0, "malformed_next": 0,
                    "hang_next_ms": 0, "create_limit": a.create_limit,
                    "create_window_s": a.create_window_s, "query_limit": a.query_limit,
                    "query_window_s": a.query_window_s, "refuse_creates_until_ms": 0,
                    "refuse_code": 429, "credits": a.credits, "token": a.token,
                    "create_http500_rate": 0.0, "seed": 0, "task_id_style": "plain",
                    "fail_next_file_http500": 0, "big_file_bytes": 300000,
                    "drop_next_create": 0, "callback_retry_ms": 200,
                    "model_credits": dict(MODEL_CREDITS), "credit_names": "new"}
        self.tasks = {}
        self.counter = 0
        self.creates = SlidingLog()   # createTask calls that created a task
        self.queries = SlidingLog()   # recordInfo calls let through
        # epoch = monotonic + offset: the stats' times agree with the limiters' clock
        self.epoch_offset = time.time() - time.monotonic()
        self.create_times_ms = collections.deque(maxlen=TIMES_KEPT)
        self.create_refused_times_ms = collections.deque(maxlen=TIMES_KEPT)
        self.record_info_times_ms = collections.deque(maxlen=TIMES_KEPT)
        self.http500_flip = 0
        self.rnd = random.Random(0)
        self.stats = {"creates_http500": 0, "creates_http500_created": 0,"creates_total": 0, "creates_by_job": {}, "create_ms_by_job": {}, "creates_refused_429": 0,
                      "creates_refused_455": 0, "creates_refused_402": 0,
                      "record_info_total": 0, "record_info_refused_429": 0,
                      "requests_total": 0, "callbacks_sent": 0,
                      "callbacks_failed": 0, "callbacks_skipped_nonlocal": 0,
                      "callbacks_not_200": 0, "creates_dropped": 0,
                      "file_downloads": 0, "file_downloads_500": 0, "files_sha256": {},
                      "file_redirects": 0, "file_downloads_503": 0,
                      "record_info_last_task_id": None}
        self.bigerr_served = set()
        self.accounts = {}
        self.current = None  # the account of the request being answered
        add_account(self, "default", None, None)

    def epoch_ms(self, mono):
        return int((mono + self.epoch_offset) * 1000)

    def window(self, key, fallback):
        w = self.cfg[key]
        return w if w > 0 else fallback

    def finish_on_time(self, t):
        """Calls task_view at createTime + duration (again if the loop's timer woke early)."""
        left = t["createTime"] + t["duration_ms"] - now_ms()
        if left > 0:
            asyncio.get_event_loop().call_later(left / 1000, self.finish_on_time, t)
        else:
            self.task_view(t)

    def task_view(self, t):
        """Moves a task along waiting -> generating -> success/fail by elapsed time. A
        timer set at createTask calls it at createTime + duration, as KIE finishes a task
        whoever asks: completeTime is the moment of the transition, and the callback goes
        out then (a poll that comes first makes the same transition)."""
        now = now_ms()
        elapsed = now - t["createTime"]
        if t["state"] in ("success", "fail"):
            return t
        if elapsed >= t["duration_ms"]:
            t["state"] = "fail" if t["will_fail"] else "success"
            t["completeTime"] = now
            t["updateTime"] = t["completeTime"]
            if t["state"] == "success":
                charge(self, t)
            if t.get("callBackUrl"):
                asyncio.get_event_loop().create_task(send_callback(self, t))
        elif elapsed >= t["duration_ms"] // 3:
            t["state"] = "generating"
            t["updateTime"] = t["createTime"] + t["duration_ms"] // 3
        return t


def kie(code, msg, data=None):
    body = {"code": code, "msg": msg}
    if data is not None:
        body["data"] = data
    return body


def record(t, port, host="127.0.0.1", st=None):
    d = {"taskId": t["taskId"], "model": t["model"], "state": t["state"],
         "param": t["param"], "resultJson": "", "failCode": "", "failMsg": "",
         "costTime": None, "completeTime": t.get("completeTime"),
         "createTime": t["createTime"], "updateTime": t["updateTime"]}
    if t["state"] == "success":
        kinds = t.get("results")
        if kinds:
            urls = [f"http://{host}:{port}/files/{urllib.parse.quote(t['taskId'], safe='')}"
                    f"/{n}.{k}" for n, k in enumerate(kinds)]
        else:
            urls = [f"http://{host}:{port}/files/{t['taskId']}.png"]
        d["resultJson"] = json.dumps({"resultUrls": urls})
        d["costTime"] = t["duration_ms"]
    elif t["state"] == "fail":
        d["failCode"] = "501"
        d["failMsg"] = "generation failed (fake)"
        d["costTime"] = t["duration_ms"]
    if t["state"] in ("success", "fail") and st is not None:
        d.update(credit_fields(st, t))
    return d


def loopback_host(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def send_callback(st, t):
    """POSTs the callback kie-api.md describes: 15 s timeout, 3 tries; a try that is not
    answered 200 (another status, a timeout, a closed connection) is counted in
    callbacks_not_200 and made again after callback_retry_ms, then twice that."""
    url = urllib.parse.urlsplit(t["callBackUrl"])
    if url.scheme != "http" or not (st.args.private_network or
                                    loopback_host(url.hostname or "")):
        st.stats["callbacks_skipped_nonlocal"] += 1
        return
    port = st.files_port
    if t["state"] == "success":
        body = kie(200, "success", {
            "taskId": t["taskId"], "model": t["model"], "state": "success",
            "param": t["param"], "resultJson": record(t, port, st.files_host)["resultJson"],
            "costTime": t["duration_ms"] / 1000.0, "completeTime": t["completeTime"],
            "createTime": t["createTime"], "updateTime": t["updateTime"],
            **credit_fields(st, t)})
    else:
        body = kie(501, "generation failed", {
            "taskId": t["taskId"], "model": t["model"], "state": "fail",
            "failCode": "501", "failMsg": "generation failed (fake)",
            "completeTime": t["completeTime"], **credit_fields(st, t)})
    raw = json.dumps(body).encode()
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    headers = [f"POST {path} HTTP/1.1", f"Host: {url.hostname}:{url.port or 80}",
               "Content-Type: application/json", "User-Agent: kie-fake-callback",
               f"Content-Length: {len(raw)}", "Connection: close"]
    if st.args.hmac_key:
        ts = str(int(time.time()))
        sig = base64.b64encode(hmac.new(st.args.hmac_key.encode(),
                                        f"{t['taskId']}.{ts}".encode(),
                                        hashlib.sha256).digest()).decode()
        headers += [f"X-Webhook-Timestamp: {ts}", f"X-Webhook-Signature: {sig}"]
    req = ("\r\n".join(headers) + "\r\n\r\n").encode() + raw
    for attempt in range(3):
        if attempt:
            await asyncio.sleep(st.cfg["callback_retry_ms"] / 1000 * 2 ** (attempt - 1))
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(url.hostname, url.port or 80), 15)
            writer.write(req)
            await writer.drain()
            status = await asyncio.wait_for(reader.readline(), 15)
            parts = status.split()
            if len(parts) >= 2 and parts[1] == b"200":
                st.stats["callbacks_sent"] += 1
                return
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            if writer:
                writer.close()
        st.stats["callbacks_not_200"] += 1
    st.stats["callbacks_failed"] += 1


def validate_input(inp):
    """Returns an error message naming the field, or None (nano-banana-edit's rules)."""
    if not isinstance(inp, dict):
        return "input must be an object"
    prompt = inp.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return "input.prompt is required"
    if len(prompt) > 5000:
        return f"input.prompt is {len(prompt)} characters; the maximum is 5000"
    urls = inp.get("image_urls")
    if not isinstance(urls, list) or not 1 <= len(urls) <= 10:
        return "input.image_urls must hold 1 to 10 URLs"
    for u in urls:
        if not isinstance(u, str) or not re.match(r"^https?://", u):
            return "input.image_urls must be http(s) URLs"
    fmt = inp.get("output_format", "png")
    if fmt not in ("png", "jpeg"):
        return "input.output_format must be png or jpeg"
    ratio = inp.get("aspect_ratio", inp.get("image_size", "1:1"))
    if ratio not in RATIOS:
        return "input.aspect_ratio is not a supported ratio"
    return None


def config_error(upd):
    """Checks the values of the keys that a wrong type would turn into a crash or a
    limit that is silently off. Returns a message or None."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
    for k in ("create_limit", "query_limit", "refuse_creates_until_ms"):
        if k in upd and not (number(upd[k]) and int(upd[k]) == upd[k]):
            return f"{k} must be an integer >= 0"
    for k in ("create_window_s", "query_window_s"):
        if k in upd and not number(upd[k]):
            return f"{k} must be a number >= 0"
    if "refuse_code" in upd and upd["refuse_code"] not in (429, 455):
        return "refuse_code must be 429 or 455"
    if "create_http500_rate" in upd and not (number(upd["create_http500_rate"]) and
                                             upd["create_http500_rate"] <= 1):
        return "create_http500_rate must be a number from 0 to 1"
    for k in ("fail_next_file_http500", "big_file_bytes", "drop_next_create",
              "callback_retry_ms"):
        if k in upd and not (number(upd[k]) and int(upd[k]) == upd[k]):
            return f"{k} must be an integer >= 0"
    if "model_credits" in upd and not (isinstance(upd["model_credits"], dict) and all(
            isinstance(k, str) and number(v) for k, v in upd["model_credits"].items())):
        return "model_credits must map model names to numbers >= 0"
    if "credit_names" in upd and upd["credit_names"] not in ("new", "old"):
        return "credit_names must be new or old"
    if "task_id_style" in upd and upd["task_id_style"] not in ("plain", "slash", "long"):
        return "task_id_style must be plain, slash or long"
    return None


# ---- credits and accounts (issue 20) ----

MODELS = {"google/nano-banana-edit", "google/nano-banana", "google/nano-banana-pro"}
MODEL_CREDITS = {"google/nano-banana": 4, "google/nano-banana-edit": 6,
                 "google/nano-banana-pro": 18}


class Account:
    """One token: its balance, its own limiters' logs, what it was charged."""

    def __init__(self, st, name, token, credits):
        self.st, self.name, self.token, self.credits = st, name, token, credits
        default = token is None
        self.creates = st.creates if default else SlidingLog()
        self.queries = st.queries if default else SlidingLog()
        self.stats = {"charged_total": 0, "charged_by_model": {}, "charged_by_job": {},
                      "tasks_charged": 0, "creates_total": 0, "creates_refused_402": 0,
                      "creates_refused_429": 0, "credit_requests": 0}

    def is_default(self):
        return self.token is None

    def balance(self):
        return self.st.cfg["credits"] if self.is_default() else self.credits

    def debit(self, amount):
        if self.is_default():
            self.st.cfg["credits"] -= amount
        else:
            self.credits -= amount


def add_account(st, name, token, credits):
    st.accounts[name] = Account(st, name, token, credits)
    return st.accounts[name]


def account_for(st, authorization):
    """The account whose token the Authorization header carries, or None."""
    if authorization == "Bearer " + st.cfg["token"]:
        return st.accounts["default"]
    for a in st.accounts.values():
        if not a.is_default() and authorization == "Bearer " + a.token:
            return a
    return None


def model_cost(st, model):
    return st.cfg["model_credits"].get(model, 0)


def charge(st, t):
    """A task succeeded: its account pays its cost."""
    a = st.accounts.get(t.get("account", "default")) or st.accounts["default"]
    cost = t.get("cost", 1)
    a.debit(cost)
    s = a.stats
    s["charged_total"] += cost
    s["tasks_charged"] += 1
    s["charged_by_model"][t["model"]] = s["charged_by_model"].get(t["model"], 0) + cost
    key = t.get("jobId") or "-"
    s["charged_by_job"][key] = s["charged_by_job"].get(key, 0) + cost


def credit_fields(st, t):
    """What a final task's record and callback say it cost (0 for a failure)."""
    cost = t.get("cost", 1) if t["state"] == "success" else 0
    if st.cfg["credit_names"] == "old":
        a = st.accounts.get(t.get("account", "default")) or st.accounts["default"]
        return {"consumeCredits": cost, "remainedCredits": a.balance()}
    return {"creditsConsumed": cost}


def account_control(st, body):
    """POST /_fake/account {"name", "token", "credits"}: adds an account or changes one
    (the default one: its credits only)."""
    try:
        upd = json.loads(body or b"{}")
        assert isinstance(upd, dict) and isinstance(upd.get("name"), str) and upd["name"]
    except (ValueError, AssertionError):
        return 400, "application/json", b'{"error":"a JSON object with a name is required"}'
    credits = upd.get("credits")
    if credits is not None and not (isinstance(credits, (int, float)) and
                                    not isinstance(credits, bool)):
        return 400, "application/json", b'{"error":"credits must be a number"}'
    a = st.accounts.get(upd["name"])
    if a is None:
        tok = upd.get("token")
        if not isinstance(tok, str) or not tok or tok == st.cfg["token"] or any(
                x.token == tok for x in st.accounts.values()):
            return 400, "application/json", b'{"error":"a new account needs a token of its own"}'
        a = add_account(st, upd["name"], tok, credits if credits is not None else 1000000)
    elif credits is not None:
        if a.is_default():
            st.cfg["credits"] = credits
        else:
            a.credits = credits
    return 200, "application/json", json.dumps(
        {"name": a.name, "credits": a.balance()}).encode()


def validate_model_input(model, inp):
    """validate_input for nano-banana-edit; nano-banana takes no reference images,
    nano-banana-pro 0..8 as image_input."""
    if model == MODEL:
        return validate_input(inp)
    if not isinstance(inp, dict):
        return "input must be an object"
    if model == "google/nano-banana" and "image_urls" in inp:
        return "input.image_urls is not a field of google/nano-banana"
    if model == "google/nano-banana-pro":
        imgs = inp.get("image_input", [])
        if not isinstance(imgs, list) or len(imgs) > 8:
            return "input.image_input must hold 0 to 8 URLs"
    return validate_input(dict(inp, image_urls=["https://x/y.png"]))


class Handler:
    def __init__(self, st):
        self.st = st

    async def handle(self, method, target, headers, body):
        """Returns (status, content_type, body_bytes)."""
        st = self.st
        st.stats["requests_total"] += 1
        url = urllib.parse.urlsplit(target)
        path, query = url.path, urllib.parse.parse_qs(url.query)
        if path.startswith("/_fake/"):
            return self.control(method, path, query, body)
        if path.startswith("/files/") and method in ("GET", "HEAD"):
            rest = path[len("/files/"):]
            m = re.fullmatch(r"([^/]+)/(\d+)\.([a-z]+)", rest)
            tid = urllib.parse.unquote(m.group(1)) if m else rest.rsplit(".", 1)[0]
            t = st.tasks.get(tid)
            if not t or t["state"] != "success" or (m and m.group(3) not in RESULT_KINDS):
                return 404, "application/json", json.dumps(kie(404, "not found")).encode()
            if method == "GET" and (st.cfg["fail_next_file_http500"] or t.get("file500")):
                if t.get("file500"):
                    t["file500"] -= 1
                else:
                    st.cfg["fail_next_file_http500"] -= 1
                st.stats["file_downloads_500"] += 1
                return 500, "text/plain", b"internal error (fake)"
            kind = m.group(3) if m else "png"
            if kind in ("redirlo", "redirmeta"):
                to = (f"http://127.0.0.1:{st.server_port}/files/{m.group(1)}/{m.group(2)}.png"
                      if kind == "redirlo" else "http://169.254.169.254/latest/meta-data/")
                st.stats["file_redirects"] += 1
                return 302, "text/plain", b"moved\n", {"Location": to}
            if kind == "bigerr" and method == "GET" and path not in st.bigerr_served:
                st.bigerr_served.add(path)
                st.stats["file_downloads_503"] += 1
                return 503, "text/html", b"<html>" + b"busy " * 820 + b"</html>\n"
            ctype, data = result_file(kind, st.cfg["big_file_bytes"]) if m else ("image/png", PNG)
            if method == "GET":
                st.stats["file_downloads"] += 1
                st.stats["files_sha256"][kind] = hashlib.sha256(data).hexdigest()
            if kind == "bignolen":
                return 200, ctype, data, "no-length"
            return 200, ctype, data
        if not path.startswith("/api/"):
            return 404, "application/json", json.dumps(kie(404, "not found")).encode()
        if not headers.get("user-agent"):
            return 403, "text/plain", b"error code: 1010"
        st.current = account_for(st, headers.get("authorization"))
        if st.current is None:
            return 401, "application/json", json.dumps(
                kie(401, "Unauthorized: invalid or missing API key")).encode()
        if st.cfg["hang_next_ms"]:
            hang, st.cfg["hang_next_ms"] = st.cfg["hang_next_ms"], 0
            await asyncio.sleep(hang / 1000)
        if st.cfg["latency_ms"]:
            await asyncio.sleep(st.cfg["latency_ms"] / 1000)
        if st.cfg["malformed_next"]:
            st.cfg["malformed_next"] -= 1
            # still do the work, so a malformed createTask answer may hide a real task
            status, obj = self.api(method, path, query, body)
            return 200, "application/json", b'{"code":200,"data":'
        status, obj = self.api(method, path, query, body)
        if (path == "/api/v1/jobs/createTask" and st.cfg["drop_next_create"] and
                status == 200 and obj.get("code") == 200):
            # the task exists (and is charged); the answer never leaves
            st.cfg["drop_next_create"] -= 1
            st.stats["creates_dropped"] += 1
            return None
        return status, "application/json", json.dumps(obj).encode()

    def api(self, method, path, query, body):
        st = self.st
        routes = {"/api/v1/jobs/createTask": "POST", "/api/v1/jobs/recordInfo": "GET",
                  "/api/v1/chat/credit": "GET", "/api/v1/common/download-url": "POST"}
        if path not in routes:
            return 404, kie(404, "not found")
        if routes[path] != method:
            return 405, kie(405, "method not allowed")
        if path == "/api/v1/jobs/createTask":
            return self.create(body)
        if path == "/api/v1/jobs/recordInfo":
            st.stats["record_info_total"] += 1
            now, window = time.monotonic(), st.window("query_window_s", 1)
            queries = st.current.queries
            if queries.full(now, window, st.cfg["query_limit"]):
                st.stats["record_info_refused_429"] += 1
                return 200, kie(429, "rate limited")
            queries.add(now, window)
            st.record_info_times_ms.append(st.epoch_ms(now))
            if st.cfg["fail_next_record_info_http500"]:
                st.cfg["fail_next_record_info_http500"] -= 1
                return 500, kie(500, "internal error (fake)")
            tid = (query.get("taskId") or [""])[0]
            st.stats["record_info_last_task_id"] = tid  # as decoded: the client's encoding
            if not tid:
                return 200, kie(400, "taskId is required")
            t = st.tasks.get(tid)
            if not t:
                return 200, kie(404, "task not found")
            return 200, kie(200, "success", record(st.task_view(t), st.files_port,
                                                   st.files_host, st))
        if path == "/api/v1/chat/credit":
            st.current.stats["credit_requests"] += 1
            return 200, kie(200, "success", st.current.balance())
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return 200, kie(400, "malformed JSON")
        u = req.get("url") if isinstance(req, dict) else None
        if not isinstance(u, str) or f"127.0.0.1:{st.server_port}/files/" not in u:
            return 200, kie(422, "url is not a KIE result URL")
        return 200, kie(200, "success", u + "?expires=" + str(int(time.time()) + 1200))

    def create(self, body):
        st = self.st
        try:
            req = json.loads(body or b"")
        except ValueError:
            return 200, kie(400, "malformed JSON body")
        if not isinstance(req, dict) or not isinstance(req.get("model"), str):
            return 200, kie(422, "model is required")
        if req["model"] not in MODELS:
            return 200, kie(404, f"model {req['model']} not found")
        err = validate_model_input(req["model"], req.get("input"))
        if err:
            return 200, kie(422, err)
        prompt = req["input"]["prompt"]
        if "[fake:400]" in prompt:
            return 200, kie(400, "content policy violation (fake)")
        now, window = time.monotonic(), st.window("create_window_s", 10)
        if now_ms() < st.cfg["refuse_creates_until_ms"]:
            code = st.cfg["refuse_code"]
            st.stats[f"creates_refused_{code}"] += 1
            st.create_refused_times_ms.append(st.epoch_ms(now))
            return 200, kie(code, "rate limited (fake: refusing until "
                            f"{st.cfg['refuse_creates_until_ms']})" if code == 429 else
                            "service under maintenance (fake)")
        acct = st.current
        if acct.creates.full(now, window, st.cfg["create_limit"]):
            st.stats["creates_refused_429"] += 1
            acct.stats["creates_refused_429"] += 1
            st.create_refused_times_ms.append(st.epoch_ms(now))
            return 200, kie(429, "rate limited: too many createTask requests")
        cost = model_cost(st, req["model"])
        if acct.balance() < cost or acct.balance() <= 0:
            st.stats["creates_refused_402"] += 1
            acct.stats["creates_refused_402"] += 1
            return 200, kie(402, "insufficient credits")
        fail500 = False
        inject = False
        if st.cfg["fail_next_create_http500"]:
            st.cfg["fail_next_create_http500"] -= 1
            inject = True
        elif st.cfg["create_http500_rate"] and st.rnd.random() < st.cfg["create_http500_rate"]:
            inject = True
        if inject:
            st.stats["creates_http500"] += 1
            st.http500_flip ^= 1
            if not st.http500_flip:  # every other injected 500 creates nothing
                return 500, kie(500, "internal error (fake)")
            st.stats["creates_http500_created"] += 1
            fail500 = True
        acct.creates.add(now, window)
        acct.stats["creates_total"] += 1
        st.create_times_ms.append(st.epoch_ms(now))
        st.counter += 1
        tid = f"task_google_{now_ms()}{st.counter:06d}"
        if st.cfg["task_id_style"] == "slash":  # ids KIE may return, unsafe as file names
            tid = f"task/google/{now_ms()}/{st.counter:06d}"
        elif st.cfg["task_id_style"] == "long":
            tid = f"task_google_{st.counter:06d}_" + "x" * 300
        cb = req.get("callBackUrl") if isinstance(req.get("callBackUrl"), str) else None
        job_id = None
        if cb:
            job_id = (urllib.parse.parse_qs(urllib.parse.urlsplit(cb).query).get("jobId")
                      or [None])[0]
        slow = re.search(r"\[fake:slow=(\d+)\]", prompt)
        t = {"taskId": tid, "model": req["model"], "state": "waiting",
             "param": json.dumps(req), "createTime": now_ms(), "updateTime": now_ms(),
             "duration_ms": int(slow.group(1)) if slow else st.cfg["task_ms"],
             "will_fail": "[fake:fail]" in prompt, "callBackUrl": cb, "jobId": job_id,
             "account": acct.name, "cost": cost}
        kinds = re.search(r"\[fake:results=([a-z,]+)\]", prompt)
        if kinds:
            t["results"] = [k for k in kinds.group(1).split(",") if k]
        file500 = re.search(r"\[fake:file500=(\d+)\]", prompt)
        if file500:
            t["file500"] = int(file500.group(1))
        st.tasks[tid] = t
        st.stats["creates_total"] += 1
        key = job_id or "-"
        st.stats["creates_by_job"][key] = st.stats["creates_by_job"].get(key, 0) + 1
        # when each job's (first) task was created, epoch ms: the scheduling tests' clock
        st.stats["create_ms_by_job"].setdefault(key, st.epoch_ms(now))
        if t["duration_ms"] <= 0:
            st.task_view(t)
        else:  # on time, with or without a callback URL (completeTime: the transition)
            st.finish_on_time(t)
        if fail500:
            return 500, kie(500, "internal error (fake)")
        return 200, kie(200, "success", {"taskId": tid})

    def control(self, method, path, query, body):
        st = self.st
        if path == "/_fake/health":
            return 200, "text/plain", b"ok"
        if path == "/_fake/stats" and method == "GET":
            out = dict(st.stats)
            out["credits"] = st.cfg["credits"]
            out["max_creates_in_any_window"] = st.creates.max_in_window
            out["max_queries_in_any_second"] = st.queries.max_in_window
            out["accounts"] = {a.name: dict(a.stats, credits=a.balance(),
                                            max_creates_in_any_window=a.creates.max_in_window)
                               for a in st.accounts.values()}
            if not query.get("brief"):
                out["tasks"] = {k: {"state": st.task_view(v)["state"], "jobId": v["jobId"],
                                    "request": json.loads(v["param"]),
                                    "createTime": v["createTime"],
                                    "completeTime": v.get("completeTime")}
                                for k, v in st.tasks.items()}
                out["create_times_ms"] = list(st.create_times_ms)
                out["create_refused_times_ms"] = list(st.create_refused_times_ms)
                out["record_info_times_ms"] = list(st.record_info_times_ms)
            return 200, "application/json", json.dumps(out).encode()
        if path == "/_fake/config" and method == "POST":
            try:
                upd = json.loads(body or b"{}")
                assert isinstance(upd, dict)
            except (ValueError, AssertionError):
                return 400, "application/json", b'{"error":"config must be a JSON object"}'
            unknown = set(upd) - set(st.cfg)
            if unknown:
                return 400, "application/json", json.dumps(
                    {"error": f"unknown config keys: {sorted(unknown)}"}).encode()
            bad = config_error(upd)
            if bad:
                return 400, "application/json", json.dumps({"error": bad}).encode()
            if "seed" in upd:
                st.rnd = random.Random(upd["seed"])
            st.cfg.update(upd)
            return 200, "application/json", json.dumps(st.cfg).encode()
        if path == "/_fake/account" and method == "POST":
            return account_control(st, body)
        if path == "/_fake/reset" and method == "POST":
            st.reset()
            return 200, "application/json", b'{"ok":true}'
        return 404, "application/json", b'{"error":"no such control endpoint"}'


class HttpProtocol(asyncio.Protocol):
    """A small HTTP/1.1 server: keep-alive, Content-Length bodies, one request at a time
    per connection (pipelined requests wait their turn)."""

    def __init__(self, handler):
        self.handler = handler
        self.buf = b""
        self.busy = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if len(self.buf) > MAX_BODY + 65536:
            self.reply(413, "application/json", b'{"code":413,"msg":"too large"}', close=True)
            return
        if not self.busy:
            self.next_request()

    def next_request(self):
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        try:
            head = self.buf[:head_end].decode("latin-1").split("\r\n")
            method, target, version = head[0].split(" ", 2)
            headers = {}
            for line in head[1:]:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        except ValueError:
            self.transport.close()
            return
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.reply(411, "application/json", b'{"code":411,"msg":"length required"}',
                       close=True)
            return
        try:
            n = int(headers.get("content-length", "0"))
        except ValueError:
            self.transport.close()
            return
        if n > MAX_BODY:
            self.reply(413, "application/json", b'{"code":413,"msg":"too large"}', close=True)
            return
        if len(self.buf) < head_end + 4 + n:
            return
        body = self.buf[head_end + 4:head_end + 4 + n]
        self.buf = self.buf[head_end + 4 + n:]
        close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        self.busy = True
        asyncio.get_event_loop().create_task(self.run(method, target, headers, body, close))

    async def run(self, method, target, headers, body, close):
        no_length = False
        extra = {}
        try:
            res = await self.handler.handle(method, target, headers, body)
            if res is None:  # drop the connection without a byte of answer
                self.transport.close()
                return
            status, ctype, out = res[:3]
            no_length = len(res) > 3 and res[3] == "no-length"
            extra = res[3] if len(res) > 3 and isinstance(res[3], dict) else {}
        except Exception as e:  # a bug in the fake must not kill the server
            status, ctype, out = 500, "text/plain", f"fake error: {e!r}".encode()
        if no_length and method == "GET":  # the body ends when the connection closes
            head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                    f"Content-Type: {ctype}\r\nConnection: close\r\n\r\n")
            self.transport.write(head.encode() + out)
            self.transport.close()
            return
        if method == "HEAD":
            out_len, out = len(out), b""
            self.reply(status, ctype, out, close, length=out_len, extra=extra)
        else:
            self.reply(status, ctype, out, close, extra=extra)
        self.busy = False
        if not close and self.buf and not self.transport.is_closing():
            self.next_request()

    def reply(self, status, ctype, body, close=False, length=None, extra=None):
        if self.transport.is_closing():
            return
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: "
                f"{len(body) if length is None else length}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in (extra or {}).items()) +
                f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n")
        # latin-1: a header's characters U+0080..U+00FF go out as those bytes (badtype)
        self.transport.write(head.encode("latin-1") + body)
        if close:
            self.transport.close()


async def main():
    ap = argparse.ArgumentParser(description="a local fake of KIE's jobs API")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--token", default="fake-token")
    ap.add_argument("--task-ms", type=int, default=300)
    ap.add_argument("--hmac-key", default="")
    ap.add_argument("--create-limit", type=int, default=20)
    ap.add_argument("--create-window-s", type=float, default=10)
    ap.add_argument("--query-limit", type=int, default=10)
    ap.add_argument("--query-window-s", type=float, default=1)
    ap.add_argument("--credits", type=int, default=1000000)
    ap.add_argument("--files-host", default="",
                    help="also serve result files on this loopback address (own port); "
                         "resultUrls name it")
    ap.add_argument("--private-network", action="store_true",
                    help="allow a non-loopback --host, and callbacks to any http host: only "
                         "on a network of its own (the docker-compose local stack)")
    args = ap.parse_args()
    if not args.private_network and not loopback_host(args.host):
        sys.exit("fake_kie: refusing to bind a non-loopback address (--private-network "
                 "allows it on a network of its own)")
    st = State(args)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: HttpProtocol(Handler(st)), args.host, args.port)
    st.server_port = server.sockets[0].getsockname()[1]
    st.files_host, st.files_port = "127.0.0.1", st.server_port
    if args.files_host:
        if not loopback_host(args.files_host):
            sys.exit("fake_kie: --files-host must be a loopback address")
        files = await loop.create_server(lambda: HttpProtocol(Handler(st)), args.files_host, 0)
        st.files_host, st.files_port = args.files_host, files.sockets[0].getsockname()[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(st.server_port))
        os.replace(tmp, args.port_file)
    print(f"fake-kie listening on {args.host}:{st.server_port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
