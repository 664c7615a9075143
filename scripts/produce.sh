#!/bin/sh
# produce.sh — enqueue one kie-worker job with redis-cli and wait for its completion event.
# usage: scripts/produce.sh [JOB_ID]   (REDIS_URL, KIE_REDIS_PREFIX as for the worker)
set -eu
URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
P="${KIE_REDIS_PREFIX:-kie}"
ID="${1:-cli-$(date +%s)-$$}"
REPLY="$P:replies:$ID"
JOB=$(cat <<JSON
{"v":1,"id":"$ID","type":"generate_image","replyTo":"$REPLY",
 "input":{"description":"a lavender velvet cropped jacket with high-waisted straight jeans",
          "imageUrl":"https://example.com/model.png","wearMask":true}}
JSON
)
redis-cli -u "$URL" LPUSH "$P:queue" "$JOB" >/dev/null
echo "enqueued $ID; waiting for its event on $REPLY" >&2
# BRPOP answers "key\nvalue"; print the value (the completion event)
redis-cli -u "$URL" --raw BRPOP "$REPLY" "${WAIT_S:-120}" | tail -n 1
