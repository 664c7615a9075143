#!/usr/bin/python3
"""produce.py — enqueue kie-worker jobs from Python (redis-py) and wait for their events.

usage: scripts/produce.py [--count N] [--type TYPE] [--prefix kie] [--wait-s 120]
Prints one completion event (JSON) per line, in the order they arrive.
"""
import argparse
import json
import os
import sys
import uuid

import redis

EXAMPLES = {
    "generate_image": {"description": "淡紫色丝绒短外套 + 高腰直筒牛仔裤",
                       "imageUrl": "https://example.com/model.png", "wearMask": True},
    "model_pose": {"imageUrl": "https://example.com/model.png",
                   "pose": "walking towards the camera"},
    "extract_clothing": {"imageUrl": "https://example.com/look.png",
                         "recommendMatches": True},
    "outfit_change_v2": {"clothingImageUrl": "https://example.com/jacket.png",
                         "modelImageUrl": "https://example.com/model.png",
                         "poseTweak": True, "seed": 7},
    "raw": {"prompt": "A studio photo of a red wool coat on a mannequin",
            "imageUrls": ["https://example.com/coat.png"]},
}


def job(job_type, reply_to, job_id=None):
    """Builds a v1 descriptor (docs/protocol.md)."""
    return {"v": 1, "id": job_id or f"py-{uuid.uuid4().hex[:16]}", "type": job_type,
            "input": EXAMPLES[job_type], "replyTo": reply_to,
            "meta": {"producer": "python"}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--type", default="generate_image", choices=sorted(EXAMPLES))
    ap.add_argument("--prefix", default=os.environ.get("KIE_REDIS_PREFIX", "kie"))
    ap.add_argument("--wait-s", type=float, default=120)
    a = ap.parse_args()
    r = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                             decode_responses=True)
    reply = f"{a.prefix}:replies:py-{uuid.uuid4().hex[:8]}"
    ids = set()
    for _ in range(a.count):
        d = job(a.type, reply)
        ids.add(d["id"])
        r.lpush(f"{a.prefix}:queue", json.dumps(d, ensure_ascii=False))
    print(f"enqueued {len(ids)} job(s); replies on {reply}", file=sys.stderr)
    while ids:
        got = r.brpop(reply, timeout=a.wait_s)
        if got is None:
            print(f"timed out; {len(ids)} job(s) without an event", file=sys.stderr)
            return 1
        event = json.loads(got[1])
        ids.discard(event["jobId"])
        print(json.dumps(event, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
