#!/usr/bin/python3
"""fake_s3.py — an S3-compatible endpoint on loopback that VERIFIES AWS Signature V4 on
every request, with botocore's signer as the oracle. It stands in for Cloudflare R2:
s3rver-like fakes accept any signature, so a wrong one would pass them; this one does not.

  /usr/bin/python3 tests/fake_s3.py --access-key AK --secret-key SK [--port 0]
      [--port-file F] [--region auto] [--bucket NAME ...] [--private-network]

Path-style: PUT/GET/HEAD/DELETE /<bucket>/<key>, PUT /<bucket>, GET /<bucket>?list-type=2.
Checks, in order, as R2 does: a V2 "AWS AK:sig" header is refused ("SigV2 authorization
is not supported"); the access key must be known; the credential scope's region must
match; x-amz-content-sha256 must be present and equal the body's SHA-256 (unless
UNSIGNED-PAYLOAD); x-amz-date must be within 15 minutes; and the signature must equal
the one botocore computes from the method, path, query, the SignedHeaders and the
payload hash. Errors are S3 XML. A PUT with If-None-Match: * (a conditional write, as S3
and R2 take it; signed like any header) answers 412 PreconditionFailed when the key
exists, the check and the write done under one lock.

Control, no auth: GET /_fake/stats, /_fake/health, /_fake/object?key=K[&bucket=B] (the
stored bytes, 404 when none); POST /_fake/config {"put_delay_ms": N, "put_delay_prefix":
P}: the first PUT of each key starting with P waits N ms after its body is read and its
signature checked, before it is applied (a slow write, to let another land first);
stats count puts_held (held PUTs done) and put_precondition_failed (412s).
"""
import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/"
                     r"aws4_request,\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$")


def xml_error(code, message, **extra):
    parts = [f"<Code>{code}</Code>", f"<Message>{escape(message)}</Message>"]
    for k, v in extra.items():
        parts.append(f"<{k}>{escape(v)}</{k}>")
    return ('<?xml version="1.0" encoding="UTF-8"?><Error>' + "".join(parts) +
            "</Error>").encode()


class Store:
    def __init__(self, buckets):
        self.lock = threading.RLock()  # reject() may run while route() holds it
        self.buckets = {b: {} for b in buckets}
        self.stats = {"requests": 0, "rejected_by_code": {}, "accepted": 0,
                      "put_precondition_failed": 0, "puts_held": 0}
        self.cfg = {"put_delay_ms": 0, "put_delay_prefix": ""}
        self.delayed = set()  # keys whose first PUT was delayed


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-s3"

    def log_message(self, fmt, *args):
        pass

    # --- plumbing ---
    def send(self, status, body=b"", ctype="application/xml", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def reject(self, status, code, message, **extra):
        st = self.server.store.stats
        with self.server.store.lock:
            st["rejected_by_code"][code] = st["rejected_by_code"].get(code, 0) + 1
        self.send(status, xml_error(code, message, **extra))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    # --- SigV4 verification ---
    def verify(self, body):
        """Returns None when the request is properly signed, else sends the error."""
        a = self.server.args
        auth = self.headers.get("Authorization", "")
        if auth.startswith("AWS "):
            self.reject(400, "InvalidRequest",
                        "SigV2 authorization is not supported. Please use SigV4 instead.")
            return False
        m = AUTH_RE.match(auth.strip())
        if not m:
            self.reject(403, "AccessDenied", "Missing or malformed AWS4-HMAC-SHA256 "
                        "Authorization header")
            return False
        key, date, region, service, signed, sig = m.groups()
        if key != a.access_key:
            self.reject(403, "InvalidAccessKeyId",
                        "The AWS Access Key Id you provided does not exist in our records.")
            return False
        if region != a.region or service != "s3":
            self.reject(400, "AuthorizationHeaderMalformed",
                        f"The authorization header is malformed; the region '{region}' is "
                        f"wrong; expecting '{a.region}'")
            return False
        payload_hash = self.headers.get("x-amz-content-sha256")
        if not payload_hash:
            self.reject(400, "InvalidRequest", "Missing required header for this request: "
                        "x-amz-content-sha256")
            return False
        if payload_hash != "UNSIGNED-PAYLOAD" and \
                payload_hash != hashlib.sha256(body).hexdigest():
            self.reject(400, "XAmzContentSHA256Mismatch", "The provided "
                        "'x-amz-content-sha256' header does not match what was computed.")
            return False
        amz_date = self.headers.get("x-amz-date", "")
        try:
            t = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        except ValueError:
            self.reject(403, "AccessDenied", "x-amz-date is missing or malformed")
            return False
        if abs(time.time() - t.timestamp()) > 900 or amz_date[:8] != date:
            self.reject(403, "RequestTimeTooSkewed", "The difference between the request "
                        "time and the current time is too large.")
            return False
        names = signed.split(";")
        if "host" not in names:
            self.reject(403, "AccessDenied", "SignedHeaders must include host")
            return False
        headers = {}
        for n in names:
            v = self.headers.get_all(n)
            if v is None:
                self.reject(403, "AccessDenied", f"signed header {n} is missing")
                return False
            headers[n] = ",".join(v)
        url = f"http://{self.headers.get('Host')}{self.path}"
        req = AWSRequest(method=self.command, url=url, data=body, headers=headers)
        req.context["timestamp"] = amz_date
        signer = S3SigV4Auth(Credentials(a.access_key, a.secret_key), "s3", a.region)
        canonical = signer.canonical_request(req)
        sts = signer.string_to_sign(req, canonical)
        expect = signer.signature(sts, req)
        if not hmac.compare_digest(expect, sig):
            self.reject(403, "SignatureDoesNotMatch",
                        "The request signature we calculated does not match the signature "
                        "you provided. Check your key and signing method.",
                        CanonicalRequest=canonical, StringToSign=sts)
            return False
        with self.server.store.lock:
            self.server.store.stats["accepted"] += 1
        return True

    # --- routing ---
    def route(self):
        store = self.server.store
        with store.lock:
            store.stats["requests"] += 1
        parts = urlsplit(self.path)
        if parts.path == "/_fake/health":
            return self.send(200, b"ok", "text/plain")
        if parts.path == "/_fake/stats":
            with store.lock:
                out = dict(store.stats,
                           objects=sum(len(b) for b in store.buckets.values()))
            return self.send(200, json.dumps(out).encode(), "application/json")
        if parts.path == "/_fake/object":
            q = parse_qs(parts.query)
            bucket = (q.get("bucket") or [next(iter(store.buckets))])[0]
            with store.lock:
                obj = store.buckets.get(bucket, {}).get((q.get("key") or [""])[0])
            if obj is None:
                return self.send(404, b"no such object", "text/plain")
            return self.send(200, obj[0], obj[1])
        if parts.path == "/_fake/config" and self.command == "POST":
            try:
                upd = json.loads(self.body() or b"{}")
                assert isinstance(upd, dict) and set(upd) <= set(store.cfg)
            except (ValueError, AssertionError):
                return self.send(400, b'{"error":"unknown or malformed config"}',
                                 "application/json")
            with store.lock:
                store.cfg.update(upd)
                return self.send(200, json.dumps(store.cfg).encode(), "application/json")
        body = self.body()
        if not self.verify(body):
            return
        path = unquote(parts.path)
        bucket, _, key = path.lstrip("/").partition("/")
        if self.command == "PUT" and key:
            with store.lock:
                delay = store.cfg["put_delay_ms"] if (
                    store.cfg["put_delay_prefix"] and key.startswith(store.cfg["put_delay_prefix"])
                    and key not in store.delayed) else 0
                store.delayed.add(key)
            if delay:
                time.sleep(delay / 1000)
        with store.lock:
            if self.command == "PUT" and key and delay:
                store.stats["puts_held"] += 1  # seen by /_fake/stats once applied or refused
            if not key:
                return self.bucket_op(bucket, parse_qs(parts.query))
            objs = store.buckets.get(bucket)
            if objs is None:
                return self.reject(404, "NoSuchBucket", "The specified bucket does not exist.",
                                   BucketName=bucket)
            if self.command == "PUT":
                if self.headers.get("If-None-Match", "").strip() == "*" and key in objs:
                    store.stats["put_precondition_failed"] += 1
                    return self.reject(412, "PreconditionFailed", "At least one of the "
                                       "pre-conditions you specified did not hold",
                                       Condition="If-None-Match")
                etag = '"' + hashlib.md5(body).hexdigest() + '"'
                objs[key] = (body, self.headers.get("Content-Type",
                                                    "binary/octet-stream"), etag, time.time())
                return self.send(200, b"", headers={"ETag": etag})
            if self.command in ("GET", "HEAD"):
                if key not in objs:
                    return self.reject(404, "NoSuchKey", "The specified key does not exist.",
                                       Key=key)
                data, ctype, etag, _ = objs[key]
                return self.send(200, data, ctype, {"ETag": etag})
            if self.command == "DELETE":
                objs.pop(key, None)
                return self.send(204)
        return self.reject(405, "MethodNotAllowed", "The method is not allowed.")

    def bucket_op(self, bucket, query):
        store = self.server.store
        if self.command == "PUT":
            store.buckets.setdefault(bucket, {})
            return self.send(200)
        objs = store.buckets.get(bucket)
        if objs is None:
            return self.reject(404, "NoSuchBucket", "The specified bucket does not exist.",
                               BucketName=bucket)
        if self.command == "GET":
            prefix = (query.get("prefix") or [""])[0]
            items = "".join(
                f"<Contents><Key>{escape(k)}</Key><Size>{len(v[0])}</Size>"
                f"<ETag>{escape(v[2])}</ETag><LastModified>"
                f"{datetime.fromtimestamp(v[3], timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.000Z')}"
                f"</LastModified></Contents>"
                for k, v in sorted(objs.items()) if k.startswith(prefix))
            xml = ('<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                   f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
                   f"<KeyCount>{items.count('<Contents>')}</KeyCount>"
                   f"<IsTruncated>false</IsTruncated>{items}</ListBucketResult>")
            return self.send(200, xml.encode())
        if self.command == "HEAD":  # HeadBucket: it exists and the signature is good
            return self.send(200)
        return self.reject(405, "MethodNotAllowed", "The method is not allowed.")

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = route


def main():
    ap = argparse.ArgumentParser(description="a SigV4-verifying S3 endpoint on loopback")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--region", default="auto")
    ap.add_argument("--bucket", action="append")
    ap.add_argument("--private-network", action="store_true",
                    help="allow a non-loopback --host: only on a network of its own (the "
                         "docker-compose local stack)")
    a = ap.parse_args()
    if (not a.private_network and a.host != "localhost"
            and not ipaddress.ip_address(a.host).is_loopback):
        sys.exit("fake_s3: refusing to bind a non-loopback address (--private-network "
                 "allows it on a network of its own)")
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    srv.args = a
    srv.store = Store(a.bucket or ["kie-test"])
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"fake-s3 listening on {a.host}:{port}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever()


if __name__ == "__main__":
    main()
