#!/bin/sh
# demo.sh — run kie-worker on embedded defaults: a throwaway redis-server when REDIS_URL
# is unset, the local KIE fake when KIE_API_TOKEN is unset (demo mode), the fs metadata
# store when R2 is unset. Enqueues one job of every type, shows the completion events
# and the metadata files, and cleans up after itself.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${KIE_BIN_DIR:-$ROOT/build}"
PY=/usr/bin/python3
TMP=$(mktemp -d /tmp/kie-demo.XXXXXX)
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port_file() { # file, what
	i=0
	while [ ! -s "$1" ]; do
		i=$((i+1)); [ $i -gt 300 ] && { echo "demo: $2 did not start" >&2; exit 1; }
		sleep 0.05
	done
}

if [ -z "${REDIS_URL:-}" ]; then
	# another program may take the free port before redis-server binds it (tests run in
	# parallel): then redis-server exits, and another port is tried
	tries=0
	while :; do
		port=$(free_port)
		redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
			--dir "$TMP" --logfile "$TMP/redis.log" &
		rpid=$!
		i=0
		until redis-cli -p "$port" ping >/dev/null 2>&1; do
			kill -0 "$rpid" 2>/dev/null || break
			i=$((i+1)); [ $i -gt 200 ] && { echo "demo: redis-server did not start" >&2; exit 1; }
			sleep 0.05
		done
		if kill -0 "$rpid" 2>/dev/null; then
			PIDS="$PIDS $rpid"
			break
		fi
		tries=$((tries+1))
		[ $tries -lt 5 ] || { echo "demo: redis-server did not start" >&2; exit 1; }
	done
	export REDIS_URL="redis://127.0.0.1:$port/0"
	echo "demo: throwaway redis-server at $REDIS_URL"
fi
if [ -z "${KIE_API_TOKEN:-}" ]; then
	$PY "$ROOT/tests/fake_kie.py" --port 0 --port-file "$TMP/kie.port" --token demo-token \
		--task-ms 1500 >"$TMP/fake-kie.log" 2>&1 &
	PIDS="$PIDS $!"
	wait_port_file "$TMP/kie.port" "the KIE fake"
	export KIE_BASE_URL="http://127.0.0.1:$(cat "$TMP/kie.port")"
	export KIE_API_TOKEN=demo-token
	# the fake serves result files from loopback, which copies refuse by default
	export KIE_COPY_ALLOW_PRIVATE="${KIE_COPY_ALLOW_PRIVATE:-127.0.0.1}"
	echo "demo: DEMO MODE — KIE_API_TOKEN is unset, so jobs go to the local KIE fake at $KIE_BASE_URL (no credits spent)"
fi
export KIE_METADATA_DIR="${KIE_METADATA_DIR:-$ROOT/demo-data}"
export KIE_POLL_INITIAL_MS="${KIE_POLL_INITIAL_MS:-500}"
P="${KIE_REDIS_PREFIX:-kie}"
REPLY="$P:replies:demo-$$"

echo "demo: enqueueing one job of every type (docs/protocol.md)"
for t in generate_image model_pose extract_clothing outfit_change_v2 raw; do
	case $t in
	generate_image) input='{"description":"淡紫色丝绒短外套 + 高腰直筒牛仔裤","imageUrl":"https://example.com/model.png","wearMask":true}' ;;
	model_pose) input='{"imageUrl":"https://example.com/model.png","pose":"walking towards the camera"}' ;;
	extract_clothing) input='{"imageUrl":"https://example.com/look.png","recommendMatches":true}' ;;
	outfit_change_v2) input='{"clothingImageUrl":"https://example.com/jacket.png","modelImageUrl":"https://example.com/model.png","poseTweak":true,"seed":7}' ;;
	raw) input='{"prompt":"A studio photo of a red wool coat","imageUrls":["https://example.com/coat.png"]}' ;;
	esac
	redis-cli -u "$REDIS_URL" LPUSH "$P:queue" \
		"{\"v\":1,\"id\":\"demo-$t-$$\",\"type\":\"$t\",\"replyTo\":\"$REPLY\",\"input\":$input}" >/dev/null
done

echo "demo: running kie-worker --drain (exits when every job is done)"
"$BIN/kie-worker" --drain
echo
echo "demo: completion events ($REPLY):"
redis-cli -u "$REDIS_URL" --raw LRANGE "$REPLY" 0 -1
echo
echo "demo: metadata records in $KIE_METADATA_DIR/kie-tasks:"
for f in $(redis-cli -u "$REDIS_URL" --raw LRANGE "$REPLY" 0 -1 |
	$PY -c 'import json,sys; [print(json.loads(l)["taskId"]) for l in sys.stdin if l.strip()]'); do
	echo "--- $f.json"
	cat "$KIE_METADATA_DIR/kie-tasks/$f.json"
	echo
done
