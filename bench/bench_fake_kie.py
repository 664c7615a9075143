#!/usr/bin/python3
"""bench_fake_kie.py — requests per second the KIE fake answers (recordInfo over
keep-alive connections), to show it is not a benchmark's bottleneck.

usage: bench/bench_fake_kie.py [--seconds 5] [--connections 4]
"""
import argparse
import json
import os
import sys
import threading
import time
import http.client
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "system"))
from conftest import FakeKie, TOKEN  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--connections", type=int, default=4)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fake = FakeKie(tmp, task_ms=100, create_limit=0)
        h = {"Authorization": "Bearer " + TOKEN, "User-Agent": "bench",
             "Content-Type": "application/json"}
        c = http.client.HTTPConnection("127.0.0.1", fake.port)
        c.request("POST", "/api/v1/jobs/createTask", json.dumps(
            {"model": "google/nano-banana-edit",
             "input": {"prompt": "x", "image_urls": ["https://a.b/c.png"]}}), h)
        tid = json.loads(c.getresponse().read())["data"]["taskId"]
        counts = [0] * a.connections
        stop = time.monotonic() + a.seconds

        def loop(i):
            conn = http.client.HTTPConnection("127.0.0.1", fake.port)
            while time.monotonic() < stop:
                conn.request("GET", f"/api/v1/jobs/recordInfo?taskId={tid}", headers=h)
                conn.getresponse().read()
                counts[i] += 1
        ts = [threading.Thread(target=loop, args=(i,)) for i in range(a.connections)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        fake.stop()
        print(f"fake KIE: {sum(counts) / a.seconds:.0f} recordInfo requests/s over "
              f"{a.connections} keep-alive connections (one server core; the client "
              f"shares the other)")


if __name__ == "__main__":
    main()
